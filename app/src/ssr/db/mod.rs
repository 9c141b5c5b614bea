//! Repository functions: one module per table, each function one statement (or a short
//! sequence inside the caller's transaction). They take any executor, so callers choose
//! between the pool and a transaction.

pub mod audit;
pub mod invitations;
pub mod sessions;
pub mod throttle;
pub mod users;

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
