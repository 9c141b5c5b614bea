//! Failed sign-ins: `login_throttle` (failures and locks per key, with exponential back-off),
//! `login_address_failures` (which accounts failed from which address) and
//! `login_known_sources` (where each account signed in before). The policy that uses them is
//! in `auth::throttle`.

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
    back_off(i64::from(failures), i64::from(FREE_FAILURES))
}

/// Exponential back-off: none below `free`, [`FIRST_LOCK_SECS`] at `free`, doubling with each
/// one more, at most [`MAX_LOCK_SECS`].
pub fn back_off(count: i64, free: i64) -> i64 {
    if count < free {
        return 0;
    }
    let exponent = u32::try_from(count - free).unwrap_or(u32::MAX).min(20);
    (FIRST_LOCK_SECS << exponent).min(MAX_LOCK_SECS)
}

/// Locks `key` for `secs` seconds from now (a lock already running longer is kept).
pub async fn lock(db: impl PgExecutor<'_>, key: &str, secs: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE login_throttle
            SET locked_until = greatest(locked_until, now() + make_interval(secs => $2))
          WHERE key = $1",
        key,
        secs as f64
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Notes that `username` failed from `group`; returns how many different usernames failed from
/// it within [`FORGET_AFTER_SECS`].
pub async fn record_address_failure(
    db: &mut sqlx::PgConnection,
    group: &str,
    username: &str,
) -> sqlx::Result<i64> {
    sqlx::query!(
        r#"INSERT INTO login_address_failures AS f (addr_group, username) VALUES ($1, $2)
           ON CONFLICT (addr_group, username) DO UPDATE
              SET failures = f.failures + 1, last_failed_at = now()"#,
        group,
        username
    )
    .execute(&mut *db)
    .await?;
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM login_address_failures
            WHERE addr_group = $1 AND last_failed_at > now() - make_interval(secs => $2)"#,
        group,
        FORGET_AFTER_SECS as f64
    )
    .fetch_one(&mut *db)
    .await
}

/// Forgets that `username` failed from `group` (it signed in from there): a team member's typo
/// no longer counts against the address; other usernames' failures still do.
pub async fn forget_address_failure(
    db: impl PgExecutor<'_>,
    group: &str,
    username: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_address_failures WHERE addr_group = $1 AND username = $2",
        group,
        username
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether `username` signed in from `group` before.
pub async fn known_source(
    db: impl PgExecutor<'_>,
    username: &str,
    group: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM login_known_sources
                           WHERE username = $1 AND addr_group = $2) AS "known!""#,
        username,
        group
    )
    .fetch_one(db)
    .await
}

/// Remembers that `username` signed in from `group`.
pub async fn remember_source(
    db: impl PgExecutor<'_>,
    username: &str,
    group: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO login_known_sources (username, addr_group) VALUES ($1, $2)
         ON CONFLICT (username, addr_group) DO UPDATE SET last_success_at = now()",
        username,
        group
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Removes what no longer matters: failures and locks a day old, sources unused for 90 days.
pub async fn prune(db: &mut sqlx::PgConnection) -> sqlx::Result<u64> {
    let mut removed = sqlx::query!(
        "DELETE FROM login_throttle
          WHERE updated_at < now() - interval '1 day'
            AND (locked_until IS NULL OR locked_until < now())"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    removed += sqlx::query!(
        "DELETE FROM login_address_failures WHERE last_failed_at < now() - interval '1 day'"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    removed += sqlx::query!(
        "DELETE FROM login_known_sources WHERE last_success_at < now() - interval '90 days'"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(removed)
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
