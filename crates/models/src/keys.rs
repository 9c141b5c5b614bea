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

/// A key as its owner's list shows it (never its secret or hash).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub prefix: String,
    pub kind: String,
    pub created_at: time::OffsetDateTime,
    pub expires_at: Option<time::OffsetDateTime>,
    pub last_used_at: Option<time::OffsetDateTime>,
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// The user's keys: live ones first, then those revoked in the last 30 days.
pub async fn of_user(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as!(
        KeyRow,
        "SELECT id, name, prefix, kind, created_at, expires_at, last_used_at, revoked_at FROM api_keys
         WHERE user_id = $1 AND (revoked_at IS NULL OR revoked_at > now() - interval '30 days')
         ORDER BY revoked_at IS NOT NULL, created_at DESC",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// How many live personal keys the user holds, counted under a lock on the user's row (so two
/// creations at once cannot both pass a limit on the count).
pub async fn lock_and_count_personal(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user_id)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM api_keys
            WHERE user_id = $1 AND kind = 'personal' AND revoked_at IS NULL"#,
        user_id
    )
    .fetch_one(conn)
    .await
}

/// Stores a new personal key (its hash; the secret stays with the caller).
pub async fn insert_personal(
    conn: &mut sqlx::PgConnection,
    key: &NewKey,
    user_id: uuid::Uuid,
    name: &str,
    expires_at: Option<time::OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO api_keys (id, user_id, kind, name, prefix, hash, expires_at)
         VALUES ($1, $2, 'personal', $3, $4, $5, $6)",
        key.id,
        user_id,
        name,
        key.prefix,
        key.hash,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes one live personal key of the user; its name, or None when there is no such key.
pub async fn revoke_personal(
    conn: &mut sqlx::PgConnection,
    id: uuid::Uuid,
    user_id: uuid::Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE api_keys SET revoked_at = now(), revoked_reason = 'revoked by its owner'
         WHERE id = $1 AND user_id = $2 AND kind = 'personal' AND revoked_at IS NULL RETURNING name",
        id,
        user_id
    )
    .fetch_optional(conn)
    .await
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

/// A key as the gateway checks it: whose it is, whether it may still be used, and the owner's
/// limits (all `None` without a `user_limits` row) and the budgets that apply (`user_budgets`).
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub id: uuid::Uuid,
    pub kind: String,
    pub user_id: uuid::Uuid,
    pub expires_at: Option<time::OffsetDateTime>,
    pub revoked_at: Option<time::OffsetDateTime>,
    pub revoked_reason: Option<String>,
    pub username: String,
    pub status: String,
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub budget_tokens: Option<i64>,
    pub budget_usd_micro: Option<i64>,
    pub budget_period: Option<String>,
    pub keys_suspended_at: Option<time::OffsetDateTime>,
    /// The user's open breaker trip, in words, and from when they may resume.
    pub trip_words: Option<String>,
    pub trip_resume_after: Option<time::OffsetDateTime>,
    /// The breaker's rules count personal keys too (and refuse them on a trip).
    pub breaker_personal: bool,
}

/// The key with this hash, or `None` for a key that does not exist.
pub async fn holder(pool: &sqlx::PgPool, hash: &[u8]) -> Result<Option<KeyHolder>, sqlx::Error> {
    sqlx::query_as!(
        KeyHolder,
        r#"SELECT k.id, k.kind, k.user_id, k.expires_at, k.revoked_at, k.revoked_reason,
                  u.username, u.status,
                  l.rpm AS "rpm?", l.tpm AS "tpm?", b.budget_tokens AS "budget_tokens?",
                  b.budget_usd_micro AS "budget_usd_micro?", b.budget_period AS "budget_period?",
                  l.keys_suspended_at AS "keys_suspended_at?", t.words AS "trip_words?",
                  t.resume_after AS "trip_resume_after?",
                  (SELECT include_personal_keys FROM breaker_rules) AS "breaker_personal!"
           FROM api_keys k JOIN users u ON u.id = k.user_id
           LEFT JOIN user_limits l ON l.user_id = k.user_id
           LEFT JOIN user_budgets b ON b.user_id = k.user_id
           LEFT JOIN breaker_trips t ON t.user_id = k.user_id AND t.resumed_at IS NULL
           WHERE k.hash = $1"#,
        hash
    )
    .fetch_optional(pool)
    .await
}
