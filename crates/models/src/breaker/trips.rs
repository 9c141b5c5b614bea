//! The breaker in PostgreSQL: its rules (one row admins tune), its trips (one open trip per
//! user, whichever replica saw the loop first) and the per-second activity replicas share.

use super::{Bucket, Rules, Trip};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// The rules as stored, with where trips are announced.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rules: Rules,
    /// Each trip is posted here as JSON (none: no webhook).
    pub webhook_url: Option<String>,
    pub updated_at: OffsetDateTime,
    pub updated_by: Option<String>,
}

/// The stored rules.
pub async fn settings(db: &mut PgConnection) -> sqlx::Result<Settings> {
    let row = sqlx::query!(
        "SELECT enabled, spend_per_minute_micro, sustained_minutes, requests_per_minute, repeats,
                repeat_window_secs, errors, error_window_secs, cooldown_minutes,
                include_personal_keys, webhook_url, updated_at, updated_by
           FROM breaker_rules"
    )
    .fetch_one(db)
    .await?;
    let count = |n: Option<i32>| n.map(|n| u32::try_from(n).unwrap_or(0));
    let whole = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(Settings {
        rules: Rules {
            enabled: row.enabled,
            spend_per_minute_nano: row.spend_per_minute_micro.map(|m| m.saturating_mul(1000)),
            sustained_minutes: whole(row.sustained_minutes),
            requests_per_minute: count(row.requests_per_minute),
            repeats: count(row.repeats),
            repeat_window_secs: whole(row.repeat_window_secs),
            errors: count(row.errors),
            error_window_secs: whole(row.error_window_secs),
            cooldown_minutes: whole(row.cooldown_minutes),
            include_personal_keys: row.include_personal_keys,
        },
        webhook_url: row.webhook_url,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    })
}

/// Stores the rules (checked by the caller; the table's checks refuse what slips through).
pub async fn save_settings(
    db: &mut PgConnection,
    rules: &Rules,
    webhook_url: Option<&str>,
    by: &str,
) -> sqlx::Result<()> {
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query!(
        "UPDATE breaker_rules SET enabled = $1, spend_per_minute_micro = $2,
                sustained_minutes = $3, requests_per_minute = $4, repeats = $5,
                repeat_window_secs = $6, errors = $7, error_window_secs = $8,
                cooldown_minutes = $9, include_personal_keys = $10, webhook_url = $11,
                updated_at = now(), updated_by = $12",
        rules.enabled,
        rules.spend_per_minute_nano.map(|n| n / 1000),
        int(rules.sustained_minutes),
        rules.requests_per_minute.map(int),
        rules.repeats.map(int),
        int(rules.repeat_window_secs),
        rules.errors.map(int),
        int(rules.error_window_secs),
        int(rules.cooldown_minutes),
        rules.include_personal_keys,
        webhook_url,
        by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One trip.
#[derive(Debug, Clone, PartialEq)]
pub struct TripRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub rule: String,
    /// What was seen, in words ("it sent 121 model requests within a minute").
    pub words: String,
    /// The kind of key whose requests tripped it (`runtime` or `personal`).
    pub key_kind: String,
    pub tripped_at: OffsetDateTime,
    /// From when its owner may resume.
    pub resume_after: OffsetDateTime,
    pub resumed_at: Option<OffsetDateTime>,
    pub resumed_by: Option<String>,
}

/// Opens a trip for the user, unless one is open already (another replica was first): the new
/// trip, or `None`. The user's shared activity is forgotten (a resumed user starts afresh) and
/// the trip is written to the audit log, in one transaction. Its cooldown is the stored rules'
/// (not a replica's copy, which may be a moment old).
pub async fn open_trip(
    db: &mut PgConnection,
    user_id: Uuid,
    trip: &Trip,
    key_kind: &str,
) -> sqlx::Result<Option<TripRow>> {
    let mut tx = sqlx::Connection::begin(&mut *db).await?;
    let Some(row) = sqlx::query_as!(
        TripRow,
        r#"WITH t AS (
               INSERT INTO breaker_trips (user_id, rule, words, key_kind, resume_after)
               SELECT $1, $2, $3, $4, now() + make_interval(mins => cooldown_minutes)
                 FROM breaker_rules
               ON CONFLICT (user_id) WHERE resumed_at IS NULL DO NOTHING
               RETURNING *)
           SELECT t.id, t.user_id, u.username, t.rule, t.words, t.key_kind, t.tripped_at,
                  t.resume_after, t.resumed_at, t.resumed_by
             FROM t JOIN users u ON u.id = t.user_id"#,
        user_id,
        trip.code(),
        trip.words(),
        key_kind
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    sqlx::query!("DELETE FROM breaker_activity WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO audit_events (action, actor_name, subject_type, subject_id, subject_name,
                                   details)
         VALUES ('breaker.tripped', 'breaker', 'user', $1, $2, $3)",
        user_id.to_string(),
        row.username,
        serde_json::json!({
            "rule": row.rule,
            "words": row.words,
            "key_kind": row.key_kind,
            "resume_after": row.resume_after.unix_timestamp(),
        })
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// The user's open trip, if any.
pub async fn open_for(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<TripRow>> {
    sqlx::query_as!(
        TripRow,
        "SELECT t.id, t.user_id, u.username, t.rule, t.words, t.key_kind, t.tripped_at,
                t.resume_after, t.resumed_at, t.resumed_by
           FROM breaker_trips t JOIN users u ON u.id = t.user_id
          WHERE t.user_id = $1 AND t.resumed_at IS NULL",
        user_id
    )
    .fetch_optional(db)
    .await
}

/// The newest trips, open ones first.
pub async fn recent(db: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<TripRow>> {
    sqlx::query_as!(
        TripRow,
        "SELECT t.id, t.user_id, u.username, t.rule, t.words, t.key_kind, t.tripped_at,
                t.resume_after, t.resumed_at, t.resumed_by
           FROM breaker_trips t JOIN users u ON u.id = t.user_id
          ORDER BY t.resumed_at IS NULL DESC, t.tripped_at DESC
          LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await
}

/// Why a trip could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("nothing is paused")]
    NotTripped,
    /// Its owner must wait until then (an admin need not).
    #[error("not before the cooldown ends")]
    TooSoon(OffsetDateTime),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Closes the user's open trip; `at_once` (an admin) skips the cooldown.
pub async fn resume(
    db: &mut PgConnection,
    user_id: Uuid,
    by: &str,
    at_once: bool,
) -> Result<TripRow, ResumeError> {
    let open = open_for(&mut *db, user_id)
        .await?
        .ok_or(ResumeError::NotTripped)?;
    if !at_once && open.resume_after > OffsetDateTime::now_utc() {
        return Err(ResumeError::TooSoon(open.resume_after));
    }
    sqlx::query_as!(
        TripRow,
        r#"WITH t AS (
               UPDATE breaker_trips SET resumed_at = now(), resumed_by = $2
                WHERE id = $1 AND resumed_at IS NULL RETURNING *)
           SELECT t.id, t.user_id, u.username, t.rule, t.words, t.key_kind, t.tripped_at,
                  t.resume_after, t.resumed_at, t.resumed_by
             FROM t JOIN users u ON u.id = t.user_id"#,
        open.id,
        by
    )
    .fetch_optional(db)
    .await?
    .ok_or(ResumeError::NotTripped)
}

/// Adds this replica's seconds to the shared activity.
pub async fn share(pool: &PgPool, replica: &str, buckets: &[(Uuid, Bucket)]) -> sqlx::Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let users: Vec<Uuid> = buckets.iter().map(|(u, _)| *u).collect();
    let seconds: Vec<i64> = buckets.iter().map(|(_, b)| b.second).collect();
    let requests: Vec<i32> = buckets
        .iter()
        .map(|(_, b)| i32::try_from(b.requests).unwrap_or(i32::MAX))
        .collect();
    let errors: Vec<i32> = buckets
        .iter()
        .map(|(_, b)| i32::try_from(b.errors).unwrap_or(i32::MAX))
        .collect();
    let costs: Vec<i64> = buckets.iter().map(|(_, b)| b.cost_nano).collect();
    // Fingerprints go as text (`{1,2}`): arrays of arrays do not unnest row by row.
    let prints: Vec<String> = buckets
        .iter()
        .map(|(_, b)| {
            let list: Vec<String> = b
                .prints
                .iter()
                .map(|p| p.cast_signed().to_string())
                .collect();
            format!("{{{}}}", list.join(","))
        })
        .collect();
    sqlx::query!(
        "INSERT INTO breaker_activity (user_id, replica, second, requests, errors, cost_nano, prints)
         SELECT u, $2, s, r, e, c, p::bigint[]
           FROM unnest($1::uuid[], $3::bigint[], $4::int[], $5::int[], $6::bigint[], $7::text[])
                AS x(u, s, r, e, c, p)
         ON CONFLICT (user_id, second, replica) DO UPDATE
            SET requests = breaker_activity.requests + EXCLUDED.requests,
                errors = breaker_activity.errors + EXCLUDED.errors,
                cost_nano = breaker_activity.cost_nano + EXCLUDED.cost_nano,
                prints = breaker_activity.prints || EXCLUDED.prints",
        &users,
        replica,
        &seconds,
        &requests,
        &errors,
        &costs,
        &prints
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Other replicas' seconds for these users since `since` (a unix second).
pub async fn shared_by_others(
    pool: &PgPool,
    replica: &str,
    users: &[Uuid],
    since: i64,
) -> sqlx::Result<Vec<(Uuid, Bucket)>> {
    let rows = sqlx::query!(
        "SELECT user_id, second, requests, errors, cost_nano, prints FROM breaker_activity
          WHERE user_id = ANY($1) AND replica <> $2 AND second > $3",
        users,
        replica,
        since
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.user_id,
                Bucket {
                    second: r.second,
                    requests: u32::try_from(r.requests).unwrap_or(0),
                    errors: u32::try_from(r.errors).unwrap_or(0),
                    cost_nano: r.cost_nano,
                    prints: r.prints.into_iter().map(i64::cast_unsigned).collect(),
                },
            )
        })
        .collect())
}

/// Forgets this replica's seconds before `before` (a unix second).
pub async fn forget_before(pool: &PgPool, replica: &str, before: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM breaker_activity WHERE replica = $1 AND second < $2",
        replica,
        before
    )
    .execute(pool)
    .await?
    .rows_affected())
}
