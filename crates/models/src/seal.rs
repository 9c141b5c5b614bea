//! Secrets at rest (provider credentials, runtime keys): XChaCha20-Poly1305 with a 256-bit
//! installation key and the row's purpose and id as associated data, so a sealed value copied to
//! another row does not open.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::SecretString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

const NONCE_LEN: usize = 24;

/// The sealing purpose of provider credentials.
pub const CREDENTIAL: &str = "provider-credential";

/// Why a key could not be loaded or a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "the secret key must be 32 bytes, base64-encoded (make one with `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the operating system's random generator failed")]
    Random,
    #[error("a sealed secret does not open with this installation's key (was the key changed?)")]
    Open,
}

/// Seals and opens secrets with the installation's key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// The installation key itself, for [`Sealer::derive`].
    root: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// From the key as base64 text.
    pub fn from_base64(text: &str) -> Result<Sealer, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Sealer {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
            root: key,
        })
    }

    /// A key of its own for `purpose` (e.g. signing session cookies), derived from the
    /// installation key: HMAC-SHA-512(installation key, "clawloops/" + purpose). Knowing one
    /// derived key reveals neither the installation key nor another purpose's key.
    pub fn derive(&self, purpose: &str) -> [u8; 64] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice(&self.root)
            .expect("HMAC takes a key of any length");
        mac.update(b"clawloops/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A sealer with a fresh random key (tests, benchmarks).
    pub fn random() -> Result<Sealer, SealError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| SealError::Random)?;
        Sealer::from_base64(&STANDARD.encode(key))
    }

    /// Reads the key file, or creates it (mode 0600, a fresh random key) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        let fail = |source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Sealer::from_base64(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(fail)?;
                }
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|_| SealError::Random)?;
                let text = STANDARD.encode(key);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(fail)?;
                file.write_all(format!("{text}\n").as_bytes())
                    .map_err(fail)?;
                Sealer::from_base64(&text)
            }
            Err(err) => Err(fail(err)),
        }
    }

    /// Seals `secret` for the row `(purpose, id)`: nonce followed by the ciphertext.
    pub fn seal(&self, purpose: &str, id: uuid::Uuid, secret: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let aad = aad(purpose, id);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Sealer::seal`] made for the same row.
    pub fn open(
        &self,
        purpose: &str,
        id: uuid::Uuid,
        sealed: &[u8],
    ) -> Result<SecretString, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = aad(purpose, id);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SealError::Open)
    }
}

fn aad(purpose: &str, id: uuid::Uuid) -> Vec<u8> {
    format!("clawloops/{purpose}/{id}").into_bytes()
}

/// Shows a secret's last four characters only.
pub fn hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if secret.chars().count() <= 8 {
        "…".into()
    } else {
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn expose(s: &SecretString) -> &str {
        s.expose_secret()
    }

    #[test]
    fn sealed_values_open_only_for_their_row_and_key() {
        let sealer = Sealer::random().expect("key");
        let id = uuid::Uuid::new_v4();
        let sealed = sealer
            .seal("credential", id, "sk-secret-value")
            .expect("seal");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            expose(&sealer.open("credential", id, &sealed).expect("open")),
            "sk-secret-value"
        );
        assert!(
            sealer
                .open("credential", uuid::Uuid::new_v4(), &sealed)
                .is_err()
        );
        assert!(sealer.open("runtime-key", id, &sealed).is_err());
        let other = Sealer::random().expect("key");
        assert!(other.open("credential", id, &sealed).is_err());
        assert!(sealer.open("credential", id, &sealed[..10]).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("seal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("secret.key");
        let first = Sealer::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let reloaded = Sealer::load_or_create(&path).expect("reload");
        assert_eq!(
            reloaded.derive("session-cookie"),
            first.derive("session-cookie"),
            "the same key, the same derived keys"
        );
        assert_ne!(first.derive("session-cookie"), first.derive("other"));
        assert_ne!(
            Sealer::random().expect("random").derive("session-cookie"),
            first.derive("session-cookie")
        );
        let id = uuid::Uuid::new_v4();
        let sealed = first.seal("x", id, "v").expect("seal");
        let again = Sealer::load_or_create(&path).expect("read");
        assert_eq!(expose(&again.open("x", id, &sealed).expect("open")), "v");
        std::fs::write(&path, "short").expect("write");
        assert!(matches!(
            Sealer::load_or_create(&path),
            Err(SealError::BadKey)
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn hints_show_at_most_four_characters() {
        assert_eq!(hint("sk-abcdefghijkl"), "…ijkl");
        assert_eq!(hint("short"), "…");
    }
}
