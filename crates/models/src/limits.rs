//! Per-user limits as admins set them: requests and tokens per minute, a token or spending
//! budget per day, week or month, an exemption from budgets, suspended keys.

use sqlx::PgConnection;
use uuid::Uuid;

/// A user's limits (None: no limit) with the budget used in the current period.
#[derive(Debug, Clone)]
pub struct LimitsRow {
    pub user_id: Uuid,
    pub username: String,
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub budget_tokens: Option<i64>,
    pub budget_usd_micro: Option<i64>,
    /// `day`, `week` or `month`.
    pub period: String,
    pub suspended: bool,
    pub exempt: bool,
}

/// Every user's own limits, by username (what applies, with the default budget and the use in
/// the current period, is [`crate::budget::standings`]).
pub async fn all(conn: &mut PgConnection) -> sqlx::Result<Vec<LimitsRow>> {
    sqlx::query_as!(
        LimitsRow,
        r#"SELECT u.id AS user_id, u.username, l.rpm AS "rpm?", l.tpm AS "tpm?",
                  l.budget_tokens AS "budget_tokens?", l.budget_usd_micro AS "budget_usd_micro?",
                  COALESCE(l.budget_period, 'month') AS "period!",
                  l.keys_suspended_at IS NOT NULL AS "suspended!",
                  COALESCE(l.budget_exempt, false) AS "exempt!"
           FROM users u LEFT JOIN user_limits l ON l.user_id = u.id ORDER BY u.username"#
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
    pub exempt: bool,
}

/// Sets the user's limits (a suspension keeps its first time).
pub async fn set(conn: &mut PgConnection, user: Uuid, l: &LimitFields<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO user_limits (user_id, rpm, tpm, budget_tokens, budget_usd_micro, budget_period, keys_suspended_at, budget_exempt)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END, $8)
         ON CONFLICT (user_id) DO UPDATE SET rpm = $2, tpm = $3, budget_tokens = $4, budget_usd_micro = $5,
             budget_period = $6, budget_exempt = $8,
             keys_suspended_at = CASE WHEN $7 THEN COALESCE(user_limits.keys_suspended_at, now()) END,
             updated_at = now()",
        user,
        l.rpm,
        l.tpm,
        l.budget_tokens,
        l.budget_usd_micro,
        l.period,
        l.keys_suspended,
        l.exempt
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
