//! The gateway's quota windows in PostgreSQL: `quota_usage` holds what was settled in a window,
//! `quota_leases` what each replica holds reserved. The gateway's in-memory accounting
//! (`server/src/gateway/quota.rs`) takes leases and writes settled use back through these.

use time::OffsetDateTime;
use uuid::Uuid;

/// The kinds of quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    Rpm,
    Tpm,
    Tokens,
    /// Spending: model requests and runtime time together (nano-dollars).
    Cost,
    /// The runtime-time part of `Cost` (the meter writes it; nothing reserves it).
    Compute,
}

impl Quota {
    /// As stored in the `quota` column.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Rpm => "rpm",
            Quota::Tpm => "tpm",
            Quota::Tokens => "tokens",
            Quota::Cost => "cost",
            Quota::Compute => "compute",
        }
    }
}

/// One user's quota window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub user: Uuid,
    pub quota: Quota,
    pub start: OffsetDateTime,
}

/// Grants `replica` up to `chunk` more of the window (at least `need`, or nothing: 0), under a
/// row lock on the window's settled use, so that settled use and every replica's leases never
/// add up to more than `limit`.
pub async fn lease(
    pool: &sqlx::PgPool,
    replica: Uuid,
    window: Window,
    limit: i64,
    need: i64,
    chunk: i64,
) -> Result<i64, sqlx::Error> {
    let Window { user, quota, start } = window;
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO quota_usage (user_id, quota, window_start) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        user,
        quota.name(),
        start
    )
    .execute(&mut *tx)
    .await?;
    let used = sqlx::query_scalar!(
        "SELECT used FROM quota_usage WHERE user_id = $1 AND quota = $2 AND window_start = $3 FOR UPDATE",
        user,
        quota.name(),
        start
    )
    .fetch_one(&mut *tx)
    .await?;
    let leased = sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(amount), 0)::bigint AS "sum!" FROM quota_leases
           WHERE user_id = $1 AND quota = $2 AND window_start = $3"#,
        user,
        quota.name(),
        start
    )
    .fetch_one(&mut *tx)
    .await?;
    let room = limit.saturating_sub(used).saturating_sub(leased);
    let grant = chunk.min(room);
    if grant < need {
        return Ok(0);
    }
    sqlx::query!(
        "INSERT INTO quota_leases (replica, user_id, quota, window_start, amount)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (replica, user_id, quota, window_start)
         DO UPDATE SET amount = quota_leases.amount + EXCLUDED.amount, heartbeat_at = now()",
        replica,
        user,
        quota.name(),
        start,
        grant
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(grant)
}

/// In one transaction: adds `settled` to the window's use and sets `replica`'s lease on it to
/// `lease`, or less when `cap` (the window's limit, and what must be kept for requests in
/// flight) says the window has less room now (runtime time charged into it, a lower limit):
/// so use that arrives from elsewhere takes effect within a flush. Returns the lease held.
pub async fn write_back(
    pool: &sqlx::PgPool,
    replica: Uuid,
    window: Window,
    settled: i64,
    lease: i64,
    cap: Option<(i64, i64)>,
) -> Result<i64, sqlx::Error> {
    let Window { user, quota, start } = window;
    let mut tx = pool.begin().await?;
    if settled > 0 {
        sqlx::query!(
            "UPDATE quota_usage SET used = used + $4
             WHERE user_id = $1 AND quota = $2 AND window_start = $3",
            user,
            quota.name(),
            start,
            settled
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut lease = lease;
    if let Some((limit, keep)) = cap.filter(|_| lease > 0) {
        let used = sqlx::query_scalar!(
            "SELECT used FROM quota_usage WHERE user_id = $1 AND quota = $2 AND window_start = $3 FOR UPDATE",
            user,
            quota.name(),
            start
        )
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        let others = sqlx::query_scalar!(
            r#"SELECT COALESCE(sum(amount), 0)::bigint AS "sum!" FROM quota_leases
               WHERE user_id = $1 AND quota = $2 AND window_start = $3 AND replica <> $4"#,
            user,
            quota.name(),
            start,
            replica
        )
        .fetch_one(&mut *tx)
        .await?;
        let room = limit.saturating_sub(used).saturating_sub(others);
        lease = lease.min(room.max(keep)).max(0);
    }
    sqlx::query!(
        "UPDATE quota_leases SET amount = $5, heartbeat_at = now()
         WHERE replica = $1 AND user_id = $2 AND quota = $3 AND window_start = $4",
        replica,
        user,
        quota.name(),
        start,
        lease
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(lease)
}

/// Drops `replica`'s empty leases, renews the rest, and reclaims the leases of replicas that
/// stopped renewing theirs a minute ago.
pub async fn renew(pool: &sqlx::PgPool, replica: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM quota_leases WHERE replica = $1 AND amount <= 0",
        replica
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "UPDATE quota_leases SET heartbeat_at = now() WHERE replica = $1",
        replica
    )
    .execute(pool)
    .await?;
    sqlx::query!("DELETE FROM quota_leases WHERE heartbeat_at < now() - interval '1 minute'")
        .execute(pool)
        .await?;
    Ok(())
}

/// Gives back every lease `replica` holds.
pub async fn release(pool: &sqlx::PgPool, replica: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM quota_leases WHERE replica = $1", replica)
        .execute(pool)
        .await?;
    Ok(())
}
