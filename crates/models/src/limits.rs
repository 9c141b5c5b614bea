//! Per-user limits (requests and tokens per minute, a token or spending budget per day or
//! month, suspended personal keys) and how much of each budget is used.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// When the budget period that contains `now` started and ends (UTC days and months).
pub fn budget_period(monthly: bool, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let day = now.replace_time(time::Time::MIDNIGHT);
    if !monthly {
        return (day, day + time::Duration::days(1));
    }
    let start = day.replace_day(1).unwrap_or(day);
    let end = if start.month() == time::Month::December {
        start
            .replace_year(start.year() + 1)
            .and_then(|t| t.replace_month(time::Month::January))
    } else {
        start.replace_month(start.month().next())
    }
    .unwrap_or(start + time::Duration::days(31));
    (start, end)
}

/// A user's limits (None: no limit) with the budget used in the current period.
#[derive(Debug, Clone)]
pub struct LimitsRow {
    pub user_id: Uuid,
    pub username: String,
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub budget_tokens: Option<i64>,
    pub budget_usd_micro: Option<i64>,
    /// `day` or `month`.
    pub period: String,
    pub suspended: bool,
    pub used_tokens: i64,
    pub used_cost_nano: i64,
}

/// Every user's limits and use, by username.
pub async fn all(conn: &mut PgConnection, now: OffsetDateTime) -> sqlx::Result<Vec<LimitsRow>> {
    let (day, _) = budget_period(false, now);
    let (month, _) = budget_period(true, now);
    sqlx::query_as!(
        LimitsRow,
        r#"SELECT u.id AS user_id, u.username, l.rpm AS "rpm?", l.tpm AS "tpm?",
                  l.budget_tokens AS "budget_tokens?", l.budget_usd_micro AS "budget_usd_micro?",
                  COALESCE(l.budget_period, 'month') AS "period!",
                  l.keys_suspended_at IS NOT NULL AS "suspended!",
                  COALESCE((SELECT sum(q.used) FROM quota_usage q WHERE q.user_id = u.id AND q.quota = 'tokens'
                      AND q.window_start = CASE WHEN l.budget_period = 'day' THEN $1::timestamptz ELSE $2::timestamptz END), 0)::bigint AS "used_tokens!",
                  COALESCE((SELECT sum(q.used) FROM quota_usage q WHERE q.user_id = u.id AND q.quota = 'cost'
                      AND q.window_start = CASE WHEN l.budget_period = 'day' THEN $1::timestamptz ELSE $2::timestamptz END), 0)::bigint AS "used_cost_nano!"
           FROM users u LEFT JOIN user_limits l ON l.user_id = u.id ORDER BY u.username"#,
        day,
        month
    )
    .fetch_all(conn)
    .await
}

/// What an admin sets.
#[derive(Debug, Clone, Copy)]
pub struct LimitFields<'a> {
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub budget_tokens: Option<i64>,
    pub budget_usd_micro: Option<i64>,
    pub period: &'a str,
    pub keys_suspended: bool,
}

/// Sets the user's limits (a suspension keeps its first time).
pub async fn set(conn: &mut PgConnection, user: Uuid, l: &LimitFields<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO user_limits (user_id, rpm, tpm, budget_tokens, budget_usd_micro, budget_period, keys_suspended_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)
         ON CONFLICT (user_id) DO UPDATE SET rpm = $2, tpm = $3, budget_tokens = $4, budget_usd_micro = $5,
             budget_period = $6,
             keys_suspended_at = CASE WHEN $7 THEN COALESCE(user_limits.keys_suspended_at, now()) END,
             updated_at = now()",
        user,
        l.rpm,
        l.tpm,
        l.budget_tokens,
        l.budget_usd_micro,
        l.period,
        l.keys_suspended
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the user's personal keys are suspended.
pub async fn keys_suspended(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT keys_suspended_at IS NOT NULL AS "s!" FROM user_limits WHERE user_id = $1"#,
        user
    )
    .fetch_optional(conn)
    .await?
    .unwrap_or(false))
}

/// A user's budgets and their period (`day` or `month`).
#[derive(Debug, Clone)]
pub struct Budgets {
    pub budget_tokens: Option<i64>,
    pub budget_usd_micro: Option<i64>,
    pub budget_period: String,
}

pub async fn budgets(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<Option<Budgets>> {
    sqlx::query_as!(
        Budgets,
        "SELECT budget_tokens, budget_usd_micro, budget_period FROM user_limits WHERE user_id = $1",
        user
    )
    .fetch_optional(conn)
    .await
}

/// How much of quota `quota` (`tokens` or `cost`, in nano-dollars) the user used in the window
/// that started at `start`.
pub async fn used(
    conn: &mut PgConnection,
    user: Uuid,
    quota: &str,
    start: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(used), 0)::bigint AS "n!" FROM quota_usage
            WHERE user_id = $1 AND quota = $2 AND window_start = $3"#,
        user,
        quota,
        start
    )
    .fetch_one(conn)
    .await
}
