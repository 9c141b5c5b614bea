//! Usernames: what a person types becomes one canonical name, or a reason it can't.

/// Shortest and longest allowed username.
pub const USERNAME_LEN: (usize, usize) = (3, 32);

/// Normalises and checks a username: trimmed, lower-cased, then 3 to 32 characters of
/// lower-case ASCII letters, digits, dots, dashes or underscores, starting with a letter or
/// digit. The result is ASCII and normalising it again changes nothing.
pub fn normalize_username(input: &str) -> Result<String, String> {
    let name = input.trim().to_lowercase();
    let (min, max) = USERNAME_LEN;
    let len = name.chars().count();
    if len < min || len > max {
        return Err(format!("A username has {min} to {max} characters."));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if !first_ok || !rest_ok {
        return Err(
            "Use lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit."
                .into(),
        );
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_name_is_ascii_canonical_and_stable(input in "\\PC{0,40}") {
            if let Ok(name) = normalize_username(&input) {
                prop_assert!(name.is_ascii());
                prop_assert!((USERNAME_LEN.0..=USERNAME_LEN.1).contains(&name.len()));
                prop_assert_eq!(normalize_username(&name), Ok(name.clone()));
            }
        }
    }
}
