//! Random secrets: invitation tokens, session stamps, one-time passwords.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not something a web request can recover from.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A new session stamp: changing a user's stamp ends all of their sessions.
pub fn new_stamp() -> Vec<u8> {
    random_bytes::<16>().to_vec()
}

/// A new secret for a link, and the hash to store in its place.
pub fn new_token() -> (String, Vec<u8>) {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a link secret.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A one-time password people can type: 20 characters from an unambiguous alphabet
/// (about 100 bits).
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    random_bytes::<20>()
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a), hash_a);
        assert_eq!(hash_a.len(), 32);
    }

    #[test]
    fn one_time_passwords_pass_the_policy() {
        let pw = one_time_password();
        assert_eq!(pw.chars().count(), 20);
        assert!(crate::model::check_password(&pw, "admin").is_ok());
        assert_ne!(pw, one_time_password());
    }
}
