//! A new account's username from a provider's claims: the same rules as a chosen one.

use super::admit::Person;
use crate::model::normalize_username;

/// A username from the claims, by today's rules: the username claim, else the e-mail's local
/// part, lower-cased, other characters made dashes; `user` when nothing usable is left.
pub fn from_claims(person: &Person) -> String {
    let max = crate::model::USERNAME_LEN.1 - 3;
    let candidates = [
        person.username.as_deref(),
        person
            .email
            .as_deref()
            .and_then(|e| e.split_once('@'))
            .map(|(local, _)| local),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|raw| {
            let cleaned: String = raw
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| match c {
                    'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
                    _ => '-',
                })
                .collect();
            let cleaned = cleaned.trim_matches(['-', '.', '_']);
            let cut: String = cleaned.chars().take(max).collect();
            normalize_username(cut.trim_end_matches(['-', '.', '_'])).ok()
        })
        .unwrap_or_else(|| "user".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(username: Option<&str>, email: Option<&str>) -> Person {
        Person {
            subject: "s".into(),
            email: email.map(str::to_owned),
            email_verified: true,
            username: username.map(str::to_owned),
            groups: Vec::new(),
        }
    }

    #[test]
    fn usernames_follow_todays_rules_whatever_the_claims_say() {
        let name = |u, e| from_claims(&person(u, e));
        assert_eq!(name(Some("Alice.Smith"), None), "alice.smith");
        assert_eq!(name(Some("José Núñez"), None), "jos--n--ez");
        assert_eq!(name(Some("__"), Some("b.o-b@example.com")), "b.o-b");
        assert_eq!(
            name(Some("x"), Some("yy@example.com")),
            "user",
            "too short both"
        );
        assert_eq!(name(None, None), "user");
        let sixty = "a".repeat(60);
        let long = name(Some(&sixty), None);
        assert_eq!(long.len(), 29, "room left for a -NN suffix");
        for raw in ["../../etc", "admin\u{0}", "<script>", "ALICE@corp"] {
            let made = name(Some(raw), None);
            assert!(normalize_username(&made).is_ok(), "{raw} → {made}");
        }
    }
}
