//! Domain types shared by the browser and the server: roles, statuses and the rules for
//! usernames and passwords (the forms check them as you type; the server checks them again).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(feature = "ssr", sqlx(type_name = "text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uses their own runtime.
    User,
    /// Also governs users, invitations, runtimes and models.
    Admin,
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(feature = "ssr", sqlx(type_name = "text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// May not sign in; all sessions ended.
    Disabled,
}

/// Where an invitation stands (computed from its timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    /// Can still be accepted.
    Pending,
    /// Its time ran out before anyone accepted it.
    Expired,
    /// Accepted: an account was made with it.
    Consumed,
    /// Withdrawn by an admin.
    Revoked,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal / $label:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in display order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored and serialised form.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// The word shown to people.
            pub fn label(self) -> &'static str {
                match self { $($ty::$variant => $label),+ }
            }

            /// Parses the stored form; `None` for anything else.
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

text_enum!(Role { User => "user" / "User", Admin => "admin" / "Admin" });
text_enum!(UserStatus { Active => "active" / "Active", Disabled => "disabled" / "Disabled" });
text_enum!(InvitationStatus {
    Pending => "pending" / "Pending",
    Expired => "expired" / "Expired",
    Consumed => "consumed" / "Accepted",
    Revoked => "revoked" / "Revoked",
});

pub use clawloops_wire::names::{USERNAME_LEN, normalize_username};
/// Shortest and longest allowed password, in characters.
pub const PASSWORD_LEN: (usize, usize) = (10, 128);
/// The password rules in words, shown next to every password field.
pub const PASSWORD_POLICY: &str =
    "10 to 128 characters, not your username and not a common password.";
/// The username rules in words.
pub const USERNAME_POLICY: &str = "3 to 32 characters: lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit.";
/// Longest accepted e-mail address.
pub const EMAIL_MAX: usize = 254;

/// Checks a new password against [`PASSWORD_POLICY`].
pub fn check_password(password: &str, username: &str) -> Result<(), String> {
    let (min, max) = PASSWORD_LEN;
    let len = password.chars().count();
    if len < min {
        return Err(format!("Use at least {min} characters."));
    }
    if len > max {
        return Err(format!("Use at most {max} characters."));
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower == username.to_lowercase() {
        return Err("The password must not be your username.".into());
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err("This password is too common; choose another.".into());
    }
    Ok(())
}

/// Checks an optional e-mail address: empty means none; otherwise something@something.
pub fn normalize_email(input: &str) -> Result<Option<String>, String> {
    let email = input.trim();
    if email.is_empty() {
        return Ok(None);
    }
    if email.chars().count() > EMAIL_MAX {
        return Err(format!(
            "An e-mail address has at most {EMAIL_MAX} characters."
        ));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace) =>
        {
            Ok(Some(email.to_owned()))
        }
        _ => Err("Enter an e-mail address like name@example.com, or leave it empty.".into()),
    }
}

/// Passwords people pick first; refused whatever their length.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "0123456789",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "asdfghjkl1",
    "zxcvbnm123",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "p@ssw0rd123",
    "iloveyou12",
    "sunshine12",
    "princess12",
    "football12",
    "baseball12",
    "welcome123",
    "welcome1234",
    "admin12345",
    "administrator",
    "letmein123",
    "changeme123",
    "changeme1234",
    "trustno1234",
    "monkey1234",
    "dragon1234",
    "master1234",
    "superman12",
    "starwars12",
    "whatever12",
    "abc1234567",
    "abcdefghij",
    "aaaaaaaaaa",
    "1111111111",
    "0000000000",
    "9876543210",
    "qazwsxedcr",
    "secret1234",
    "clawloops1",
    "clawloops123",
    "openclaw123",
    "default123",
    "passwordpassword",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(normalize_username("  Alice.B ").as_deref(), Ok("alice.b"));
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username(&"a".repeat(33)).is_err());
        assert!(normalize_username("_alice").is_err());
        assert!(normalize_username("al ice").is_err());
        assert!(normalize_username("älice").is_err());
        assert!(normalize_username("bob-2_x").is_ok());
    }

    #[test]
    fn passwords_follow_the_policy() {
        assert!(check_password("short", "bob").is_err());
        assert!(check_password(&"x".repeat(129), "bob").is_err());
        assert!(check_password("bobbybobby", "bobbybobby").is_err());
        assert!(
            check_password("Password123", "bob").is_err(),
            "common, any case"
        );
        assert!(check_password("correct horse battery", "bob").is_ok());
        assert!(
            check_password(&"é".repeat(10), "bob").is_ok(),
            "counts characters"
        );
    }

    #[test]
    fn emails_are_optional_but_plausible() {
        assert_eq!(normalize_email(" "), Ok(None));
        assert_eq!(
            normalize_email("a@b.io").ok().flatten().as_deref(),
            Some("a@b.io")
        );
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a@b").is_err());
        assert!(normalize_email("a b@c.io").is_err());
    }

    #[test]
    fn enums_round_trip_their_text() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(*role));
        }
        assert_eq!(UserStatus::parse("gone"), None);
        assert_eq!(InvitationStatus::Consumed.label(), "Accepted");
    }
}
