//! What the API server accepts as names and labels (DNS-1123 labels and subdomains, label keys
//! and values): settings are checked with them before any request, and the in-test API server
//! refuses what a real one would.

/// A DNS-1123 label: lower-case letters, digits and dashes, 1–63, letters or digits at the
/// ends.
pub fn dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253.
pub fn subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(dns_label)
}

/// A label value: empty, or 1–63 letters, digits, `-_.` with a letter or digit at the ends.
pub fn label_value(text: &str) -> bool {
    text.is_empty()
        || (text.len() <= 63
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label key: `[prefix/]name`, the prefix a subdomain, the name a non-empty label value.
pub fn label_key(text: &str) -> bool {
    let (prefix, name) = match text.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    prefix.is_none_or(subdomain) && !name.is_empty() && label_value(name)
}

/// Whether `key=value` is a label.
pub fn is_label(key: &str, value: &str) -> bool {
    label_key(key) && label_value(value)
}
