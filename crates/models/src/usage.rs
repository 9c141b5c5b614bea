//! Usage as the gateway writes it (each finished request, in batches) and as the reports read
//! it: per day and model, totals per model and per user (from the daily roll-up), and single
//! requests for the CSV export.

use sqlx::PgConnection;
use std::collections::BTreeMap;
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

/// One finished request.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: OffsetDateTime,
    pub user_id: Uuid,
    pub username: String,
    pub key_id: Uuid,
    pub runtime_key: bool,
    pub model_alias: String,
    pub endpoint: &'static str,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub estimated: bool,
    pub cost_nano: i64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
}

/// Writes one batch: the events, their days' totals and the keys' last use, in one transaction.
pub async fn write(pool: &sqlx::PgPool, batch: &[Record]) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&Record) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
    let at: Vec<OffsetDateTime> = batch.iter().map(|r| r.at).collect();
    let users: Vec<Uuid> = batch.iter().map(|r| r.user_id).collect();
    let names: Vec<String> = batch.iter().map(|r| r.username.clone()).collect();
    let keys: Vec<Uuid> = batch.iter().map(|r| r.key_id).collect();
    let kinds: Vec<String> = batch
        .iter()
        .map(|r| if r.runtime_key { "runtime" } else { "personal" }.to_owned())
        .collect();
    let models: Vec<String> = batch.iter().map(|r| r.model_alias.clone()).collect();
    let endpoints: Vec<String> = batch.iter().map(|r| r.endpoint.to_owned()).collect();
    let streams: Vec<bool> = batch.iter().map(|r| r.stream).collect();
    let statuses: Vec<i16> = batch
        .iter()
        .map(|r| i16::try_from(r.status).unwrap_or(0))
        .collect();
    let codes: Vec<Option<String>> = batch.iter().map(|r| r.error_code.clone()).collect();
    let prompt: Vec<i32> = batch.iter().map(|r| clamp32(r.prompt_tokens)).collect();
    let completion: Vec<i32> = batch.iter().map(|r| clamp32(r.completion_tokens)).collect();
    let estimated: Vec<bool> = batch.iter().map(|r| r.estimated).collect();
    let cost = col(&|r| r.cost_nano);
    let latency: Vec<i32> = batch.iter().map(|r| clamp32(r.latency_ms)).collect();
    let ttfb: Vec<Option<i32>> = batch.iter().map(|r| r.ttfb_ms.map(clamp32)).collect();

    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"INSERT INTO usage_events (at, user_id, username, key_id, key_kind, model_alias, endpoint,
               stream, status, error_code, prompt_tokens, completion_tokens, estimated, cost_nano,
               latency_ms, ttfb_ms)
           SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
               $6::text[], $7::text[], $8::bool[], $9::int2[], $10::text[], $11::int4[], $12::int4[],
               $13::bool[], $14::int8[], $15::int4[], $16::int4[])"#,
        &at,
        &users,
        &names,
        &keys,
        &kinds,
        &models,
        &endpoints,
        &streams,
        &statuses,
        &codes as &[Option<String>],
        &prompt,
        &completion,
        &estimated,
        &cost,
        &latency,
        &ttfb as &[Option<i32>]
    )
    .execute(&mut *tx)
    .await?;

    // The days' totals, summed here first so each (day, user, model) row is written once, in
    // key order (two replicas writing the same rows cannot deadlock).
    let mut days: BTreeMap<(time::Date, Uuid, &str), [i64; 5]> = BTreeMap::new();
    for r in batch {
        let t = days
            .entry((r.at.date(), r.user_id, r.model_alias.as_str()))
            .or_default();
        t[0] += 1;
        t[1] += i64::from(r.status >= 400);
        t[2] += r.prompt_tokens;
        t[3] += r.completion_tokens;
        t[4] += r.cost_nano;
    }
    let (mut d, mut u, mut m) = (Vec::new(), Vec::new(), Vec::new());
    let mut sums: [Vec<i64>; 5] = Default::default();
    for ((day, user, model), t) in &days {
        d.push(*day);
        u.push(*user);
        m.push((*model).to_owned());
        for (i, v) in t.iter().enumerate() {
            sums[i].push(*v);
        }
    }
    sqlx::query!(
        r#"INSERT INTO usage_daily (day, user_id, model_alias, requests, errors, prompt_tokens,
               completion_tokens, cost_nano)
           SELECT * FROM UNNEST($1::date[], $2::uuid[], $3::text[], $4::int8[], $5::int8[],
               $6::int8[], $7::int8[], $8::int8[])
           ON CONFLICT (day, user_id, model_alias) DO UPDATE SET
               requests = usage_daily.requests + EXCLUDED.requests,
               errors = usage_daily.errors + EXCLUDED.errors,
               prompt_tokens = usage_daily.prompt_tokens + EXCLUDED.prompt_tokens,
               completion_tokens = usage_daily.completion_tokens + EXCLUDED.completion_tokens,
               cost_nano = usage_daily.cost_nano + EXCLUDED.cost_nano"#,
        &d,
        &u,
        &m,
        &sums[0],
        &sums[1],
        &sums[2],
        &sums[3],
        &sums[4]
    )
    .execute(&mut *tx)
    .await?;

    let mut last: BTreeMap<Uuid, OffsetDateTime> = BTreeMap::new();
    for r in batch {
        let e = last.entry(r.key_id).or_insert(r.at);
        if r.at > *e {
            *e = r.at;
        }
    }
    let (key_ids, times): (Vec<Uuid>, Vec<OffsetDateTime>) = last.into_iter().unzip();
    sqlx::query!(
        "UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, t.at)
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at) WHERE k.id = t.id",
        &key_ids,
        &times
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn clamp32(v: i64) -> i32 {
    i32::try_from(v.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}
