//! Gateway keys: `clk_` and 256 random bits, stored as their SHA-256 (plus, for a runtime's key,
//! sealed so the runtime's configuration can be rendered again). One runtime key per user at a
//! time; personal keys are the user's own.

use crate::seal::{SealError, Sealer};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "clk_";
/// How many of a key's characters lists show.
const SHOWN: usize = 12;
/// The sealing purpose of runtime keys.
const RUNTIME_PURPOSE: &str = "runtime-key";

/// A key just made: its secret exists only here.
pub struct NewKey {
    pub id: uuid::Uuid,
    pub secret: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewKey({}…)", self.prefix)
    }
}

/// Why a key could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A fresh key.
pub fn generate() -> Result<NewKey, SealError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SealError::Random)?;
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(NewKey {
        id: uuid::Uuid::new_v4(),
        prefix: secret[..SHOWN].to_owned(),
        hash: hash(&secret).to_vec(),
        secret,
    })
}

/// Whether `secret` has the shape of a key this installation issues (`clk_` and 43 base64url
/// characters): anything else is refused without a database lookup.
pub fn well_formed(secret: &str) -> bool {
    secret.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The stored form of a key.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The user's runtime key, made when there is none; with `rotate` the current one is revoked and
/// a new one made (a recovered runtime gets a new key).
pub async fn runtime_key(
    conn: &mut sqlx::PgConnection,
    sealer: &Sealer,
    user_id: uuid::Uuid,
    rotate: bool,
) -> Result<String, KeyError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if rotate {
        revoke_runtime_key(&mut tx, user_id, "rotated").await?;
    } else if let Some(row) = sqlx::query!(
        r#"SELECT id, sealed AS "sealed!" FROM api_keys
           WHERE user_id = $1 AND kind = 'runtime' AND revoked_at IS NULL"#,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    {
        tx.commit().await?;
        return Ok(sealer
            .open(RUNTIME_PURPOSE, row.id, &row.sealed)?
            .expose_secret()
            .to_owned());
    }
    let key = generate()?;
    let sealed = sealer.seal(RUNTIME_PURPOSE, key.id, &key.secret)?;
    sqlx::query!(
        "INSERT INTO api_keys (id, user_id, kind, name, prefix, hash, sealed)
         VALUES ($1, $2, 'runtime', 'Runtime', $3, $4, $5)",
        key.id,
        user_id,
        key.prefix,
        key.hash,
        sealed
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(key.secret)
}

/// Revokes the user's runtime key (the runtime was disabled, deleted or recovered).
pub async fn revoke_runtime_key(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    revoke_kind(conn, user_id, "runtime", reason).await
}

/// Revokes every personal key of the user (account recovery); returns how many.
pub async fn revoke_personal_keys(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    revoke_kind(conn, user_id, "personal", reason).await
}

/// Revokes the user's live keys of one kind (`runtime` or `personal`); returns how many.
async fn revoke_kind(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    kind: &str,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE api_keys SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND kind = $2 AND revoked_at IS NULL",
        user_id,
        kind,
        reason
    )
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let a = generate().expect("key");
        let b = generate().expect("key");
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_eq!(a.secret.len(), KEY_PREFIX.len() + 43);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash(&a.secret).to_vec());
        assert!(!format!("{a:?}").contains(&a.secret));
        assert!(well_formed(&a.secret));
        for junk in [
            "clk_short",
            "",
            "sk-anything",
            &a.secret.replacen("clk_", "clx_", 1),
        ] {
            assert!(!well_formed(junk), "{junk}");
        }
        assert!(!well_formed(&format!(
            "{}=",
            &a.secret[..a.secret.len() - 1]
        )));
    }
}
