//! The request log: each finished request becomes one `usage_events` row and adds to its
//! day's `usage_daily` row. Requests only hand their record to a channel; one task writes them in
//! batches, so the response path never waits for the database.

use super::metrics::GatewayMetrics;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

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

/// Where requests hand their records.
#[derive(Clone)]
pub struct UsageLog {
    tx: mpsc::UnboundedSender<Record>,
    closing: std::sync::Arc<tokio::sync::Notify>,
}

/// The most rows one batch writes.
const BATCH: usize = 2000;

impl UsageLog {
    /// The log and the task that writes it (spawn the task).
    pub fn new(
        pool: sqlx::PgPool,
        metrics: GatewayMetrics,
    ) -> (UsageLog, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let closing = std::sync::Arc::new(tokio::sync::Notify::new());
        (
            UsageLog {
                tx,
                closing: closing.clone(),
            },
            write_until_closed(pool, rx, closing, metrics),
        )
    }

    /// Tells the writer to write what is queued and stop.
    pub fn close(&self) {
        self.closing.notify_one();
    }

    pub fn record(&self, record: Record) {
        if self.tx.send(record).is_err() {
            tracing::warn!("the usage writer has stopped; a request's usage was not recorded");
        }
    }
}

async fn write_until_closed(
    pool: sqlx::PgPool,
    mut rx: mpsc::UnboundedReceiver<Record>,
    closing: std::sync::Arc<tokio::sync::Notify>,
    metrics: GatewayMetrics,
) {
    let write_batch = |batch: Vec<Record>| {
        let (pool, metrics) = (pool.clone(), metrics.clone());
        async move {
            let result = write(&pool, &batch).await;
            metrics.usage_batch(batch.len(), result.is_ok());
            (batch, result)
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut closed = false;
    loop {
        if closed {
            // The server is stopping: write what is queued, in batches, then stop.
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
                if batch.len() == BATCH {
                    batch = written_at_shutdown(write_batch(batch).await);
                }
            }
            written_at_shutdown(write_batch(batch).await);
            return;
        }
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            () = closing.notified() => {
                closed = true;
                continue;
            }
        }
        // Let a burst gather into one transaction.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(200);
        loop {
            let (back, result) = write_batch(batch).await;
            batch = back;
            match result {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(error = %err, rows = batch.len(), "could not write usage; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        batch.clear();
    }
}

/// The batch back, emptied, after a last write that is not tried again.
fn written_at_shutdown((mut batch, result): (Vec<Record>, Result<(), sqlx::Error>)) -> Vec<Record> {
    if let Err(err) = result {
        tracing::warn!(error = %err, rows = batch.len(), "could not write usage at shutdown");
    }
    batch.clear();
    batch
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
