//! What the repositories that list rows share: a page of rows with the total, and the pattern
//! for a case-insensitive substring search.

/// A page of rows and how many there are in all.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows of this page.
    pub rows: Vec<T>,
    /// Rows matching the filter across all pages.
    pub total: i64,
}

/// `LIKE` pattern for a case-insensitive substring search, with `%`, `_` and `\` escaped.
pub fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
