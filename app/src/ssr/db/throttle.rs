//! The `login_throttle` table: failed sign-ins per key, with exponential back-off.

use sqlx::PgExecutor;
use time::OffsetDateTime;

/// The failure that starts the back-off.
pub const FREE_FAILURES: i32 = 5;
/// The first lock-out, in seconds.
pub const FIRST_LOCK_SECS: i64 = 30;
/// The longest lock-out, in seconds.
pub const MAX_LOCK_SECS: i64 = 15 * 60;
/// Failures older than this are forgotten, in seconds.
pub const FORGET_AFTER_SECS: i64 = 60 * 60;

/// When the first of `keys` that is locked opens again, if any is locked now.
pub async fn locked_until(
    db: impl PgExecutor<'_>,
    keys: &[String],
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "SELECT max(locked_until) FROM login_throttle
          WHERE key = ANY($1) AND locked_until > now()",
        keys
    )
    .fetch_one(db)
    .await
}

/// Counts one more failure for `key` (failures older than [`FORGET_AFTER_SECS`] are forgotten
/// first). Returns the failure count.
pub async fn record_failure(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"INSERT INTO login_throttle AS t (key, failures, updated_at) VALUES ($1, 1, now())
           ON CONFLICT (key) DO UPDATE
              SET failures = CASE WHEN t.updated_at < now() - make_interval(secs => $2)
                                  THEN 1 ELSE t.failures + 1 END,
                  updated_at = now()
           RETURNING failures"#,
        key,
        FORGET_AFTER_SECS as f64
    )
    .fetch_one(db)
    .await
}

/// Sets the lock for `key` from its failure count.
pub async fn apply_lock(db: impl PgExecutor<'_>, key: &str, failures: i32) -> sqlx::Result<()> {
    if failures < FREE_FAILURES {
        return Ok(());
    }
    let secs = lock_seconds(failures);
    sqlx::query!(
        "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE key = $1",
        key,
        secs as f64
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The lock length after `failures` failures: none for the first four, then 30 s after the
/// fifth, doubling with each further failure, at most [`MAX_LOCK_SECS`].
pub fn lock_seconds(failures: i32) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let exponent = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(20);
    (FIRST_LOCK_SECS << exponent).min(MAX_LOCK_SECS)
}

/// Forgets the failures of `key` (after a successful sign-in).
pub async fn clear(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM login_throttle WHERE key = $1", key)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!(lock_seconds(4), 0);
        assert_eq!(lock_seconds(5), 30);
        assert_eq!(lock_seconds(6), 60);
        assert_eq!(lock_seconds(9), 480);
        assert_eq!(lock_seconds(40), MAX_LOCK_SECS);
    }
}
