//! Usage as the reports read it: per day and model, totals per model and per user (from the
//! daily roll-up), and single requests for the CSV export.

use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Requests, tokens and cost of one model on one day.
#[derive(Debug, Clone)]
pub struct DayRow {
    pub day: Date,
    pub model_alias: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_nano: i64,
}

/// From `from` to `to` (inclusive), for one user or (None) everyone.
pub async fn days(
    conn: &mut PgConnection,
    from: Date,
    to: Date,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<DayRow>> {
    sqlx::query_as!(
        DayRow,
        r#"SELECT day, model_alias, sum(requests)::bigint AS "requests!",
                  sum(prompt_tokens + completion_tokens)::bigint AS "tokens!",
                  sum(cost_nano)::bigint AS "cost_nano!"
           FROM usage_daily WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR user_id = $3)
           GROUP BY day, model_alias ORDER BY day, model_alias"#,
        from,
        to,
        user
    )
    .fetch_all(conn)
    .await
}

/// The totals of one model or one user.
#[derive(Debug, Clone)]
pub struct TotalRow {
    pub name: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nano: i64,
}

/// Totals per model, the most used first.
pub async fn by_model(
    conn: &mut PgConnection,
    from: Date,
    to: Date,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<TotalRow>> {
    sqlx::query_as!(
        TotalRow,
        r#"SELECT model_alias AS name, sum(requests)::bigint AS "requests!",
                  sum(errors)::bigint AS "errors!", sum(prompt_tokens)::bigint AS "prompt_tokens!",
                  sum(completion_tokens)::bigint AS "completion_tokens!",
                  sum(cost_nano)::bigint AS "cost_nano!"
           FROM usage_daily WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR user_id = $3)
           GROUP BY model_alias ORDER BY sum(prompt_tokens + completion_tokens) DESC, model_alias"#,
        from,
        to,
        user
    )
    .fetch_all(conn)
    .await
}

/// Totals per user (by name; a deleted user by id), the biggest first.
pub async fn by_user(
    conn: &mut PgConnection,
    from: Date,
    to: Date,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<TotalRow>> {
    sqlx::query_as!(
        TotalRow,
        r#"SELECT COALESCE(u.username, d.user_id::text) AS "name!",
                  sum(d.requests)::bigint AS "requests!", sum(d.errors)::bigint AS "errors!",
                  sum(d.prompt_tokens)::bigint AS "prompt_tokens!",
                  sum(d.completion_tokens)::bigint AS "completion_tokens!",
                  sum(d.cost_nano)::bigint AS "cost_nano!"
           FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id
           WHERE d.day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR d.user_id = $3)
           GROUP BY 1 ORDER BY sum(d.prompt_tokens + d.completion_tokens) DESC, 1"#,
        from,
        to,
        user
    )
    .fetch_all(conn)
    .await
}

/// One request through the gateway.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: OffsetDateTime,
    pub username: String,
    pub model_alias: String,
    pub endpoint: String,
    pub stream: bool,
    pub status: i32,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub estimated: bool,
    pub cost_nano: i64,
    pub latency_ms: i32,
    pub key_kind: Option<String>,
}

/// Requests in `[start, end)`, oldest first, at most a million.
pub async fn events(
    conn: &mut PgConnection,
    start: OffsetDateTime,
    end: OffsetDateTime,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        "SELECT at, username, model_alias, endpoint, stream, status, error_code, prompt_tokens,
                completion_tokens, estimated, cost_nano, latency_ms, key_kind
         FROM usage_events WHERE at >= $1 AND at < $2 AND ($3::uuid IS NULL OR user_id = $3)
         ORDER BY at, id LIMIT 1000000",
        start,
        end,
        user
    )
    .fetch_all(conn)
    .await
}
