//! SQL for `runtimes` (here) and `runtime_tasks` ([`tasks`]). Every function takes a
//! connection, so callers can run several in one transaction.

mod hold;
mod row;
mod tasks;
pub use hold::*;
pub use row::*;
pub use tasks::*;

use clawloops_wire::runtime::{DesiredState, ObservedState, Problem, StopCause};
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Serializes requests for one user until the transaction ends. Without it, two first starts
/// racing to make the binding could both insert: `ON CONFLICT (user_id)` resolves conflicts on
/// that key only, and the loser failed on the runtime id's unique key instead.
pub async fn lock_user(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    // The two-key form lives apart from the one-key claim lock; 0x434c is "CL".
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(17228, hashtext($1::text))",
        user_id.to_string()
    )
    .fetch_one(db)
    .await?;
    Ok(())
}

/// A query for runtime rows: `$sql` (any statement returning runtimes' columns) wrapped so that
/// the states and the problem come out typed; `$tail` orders the result.
macro_rules! runtime_query {
    ($sql:tt $(; $tail:tt)? $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            RuntimeRow,
            "WITH r AS (" + $sql + r#")
             SELECT user_id, username, runtime_id, desired_state AS "desired_state: DesiredState",
                    observed_state AS "observed_state: ObservedState", profile, image, config_hash,
                    container_id, internal_endpoint, browser_url, retention, gateway_token,
                    memory_mb, cpus, pids, problem AS "problem: Json<Problem>", problem_detail,
                    problem_ref, crash_count, crash_window_start, next_recover_at, created_at,
                    updated_at, ready_at, last_active_at, idle_stop_minutes, stop_reason,
                    routed_at, disk_mb, disk_used_bytes, disk_measured_at, node, paused_reason,
                    paused_in_place, stop_kind AS "stop_kind: StopCause" FROM r"# $(+ $tail)?
            $(, $arg)*
        )
    };
}

/// The binding for a user, made on first use.
pub async fn ensure_binding(
    db: &mut PgConnection,
    user_id: Uuid,
    username: &str,
    runtime_id: &str,
    profile: &str,
    image: &str,
    token: &str,
) -> sqlx::Result<RuntimeRow> {
    runtime_query!(
        "INSERT INTO runtimes (user_id, username, runtime_id, profile, image, gateway_token)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET username = EXCLUDED.username
         RETURNING *",
        user_id,
        username,
        runtime_id,
        profile,
        image,
        token
    )
    .fetch_one(db)
    .await
}

pub async fn get(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<RuntimeRow>> {
    runtime_query!("SELECT * FROM runtimes WHERE user_id = $1", user_id)
        .fetch_optional(db)
        .await
}

pub async fn all(db: &mut PgConnection) -> sqlx::Result<Vec<RuntimeRow>> {
    runtime_query!("SELECT * FROM runtimes"; " ORDER BY username")
        .fetch_all(db)
        .await
}

/// Per-user resource limits (None = the deployment's default); false when there is no binding.
pub async fn set_limits(
    db: &mut PgConnection,
    user_id: Uuid,
    memory_mb: Option<i32>,
    cpus: Option<f64>,
    pids: Option<i32>,
    disk_mb: Option<i32>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE runtimes SET memory_mb = $2, cpus = $3, pids = $4, disk_mb = $5, updated_at = now()
          WHERE user_id = $1",
        user_id,
        memory_mb,
        cpus,
        pids,
        disk_mb
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what each runtime's workspace held just now (runtime id → bytes); runtimes not
/// in the list keep their last figure.
pub async fn record_disk_usage(
    db: &mut PgConnection,
    usage: &std::collections::BTreeMap<String, u64>,
) -> sqlx::Result<()> {
    let (ids, bytes): (Vec<String>, Vec<i64>) = usage
        .iter()
        .map(|(id, b)| (id.clone(), i64::try_from(*b).unwrap_or(i64::MAX)))
        .unzip();
    sqlx::query!(
        "UPDATE runtimes r SET disk_used_bytes = u.bytes, disk_measured_at = now()
           FROM UNNEST($1::text[], $2::bigint[]) AS u(runtime_id, bytes)
          WHERE r.runtime_id = u.runtime_id",
        &ids,
        &bytes
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_desired(
    db: &mut PgConnection,
    user_id: Uuid,
    desired: DesiredState,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET desired_state = $2, updated_at = now() WHERE user_id = $1",
        user_id,
        desired.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sets the observed state; `fault` replaces the runtime's problem (None clears it).
pub async fn set_observed(
    db: &mut PgConnection,
    user_id: Uuid,
    observed: ObservedState,
    fault: Option<&Fault>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = $2, problem = $3, problem_detail = $4,
                problem_ref = $5, updated_at = now()
          WHERE user_id = $1",
        user_id,
        observed.as_str(),
        fault.map(|f| Json(&f.problem)) as _,
        fault.map(|f| f.detail.as_str()),
        fault.map(|f| f.reference)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The runtime answered its health check.
pub async fn mark_running(
    db: &mut PgConnection,
    user_id: Uuid,
    up: &Up<'_>,
    browser_url: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = 'running', container_id = $2, config_hash = $3,
                internal_endpoint = $4, browser_url = $5, problem = NULL, problem_detail = NULL,
                problem_ref = NULL, ready_at = now(),
                last_active_at = now(), stop_reason = NULL, stop_kind = NULL,
                node = COALESCE($6, node), updated_at = now()
          WHERE user_id = $1",
        user_id,
        up.handle,
        up.config_hash,
        up.endpoint,
        browser_url,
        up.node
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A runtime that came up: the engine's handle for it, what it was made from, where the entry
/// proxy reaches it and the node it landed on (kept: its workspace lives there).
pub struct Up<'a> {
    pub handle: &'a str,
    pub config_hash: &'a str,
    pub endpoint: &'a str,
    pub node: Option<&'a str>,
}

/// Records workspace activity seen by forward-auth, in one statement for many users; a time
/// never moves backwards.
pub async fn touch_activity(
    db: &mut PgConnection,
    users: &[Uuid],
    at: &[OffsetDateTime],
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE runtimes r SET last_active_at = GREATEST(r.last_active_at, a.at)
           FROM unnest($1::uuid[], $2::timestamptz[]) AS a(user_id, at)
          WHERE r.user_id = a.user_id",
        users,
        at
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The entry proxy fetched routes to these users' runtimes now: noted once per start (only
/// where no fetch since the runtime became ready is on record), so polling writes nothing.
pub async fn mark_routed(db: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE runtimes SET routed_at = now()
          WHERE user_id = ANY($1) AND (routed_at IS NULL OR routed_at < ready_at)",
        users
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Why the platform stopped a runtime (None clears it).
pub async fn set_stop_reason(
    db: &mut PgConnection,
    user_id: Uuid,
    stop: Option<(StopCause, &str)>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET stop_kind = $2, stop_reason = $3 WHERE user_id = $1",
        user_id,
        stop.map(|(cause, _)| cause.as_str()),
        stop.map(|(_, words)| words)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A user's idle-stop override (None = default, 0 = never); false when there is no binding.
pub async fn set_idle_stop(
    db: &mut PgConnection,
    user_id: Uuid,
    minutes: Option<i32>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE runtimes SET idle_stop_minutes = $2, updated_at = now() WHERE user_id = $1",
        user_id,
        minutes
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-attaches a running container found by the reconciler.
pub async fn attach(
    db: &mut PgConnection,
    user_id: Uuid,
    container_id: &str,
    endpoint: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = 'running', container_id = $2,
                internal_endpoint = COALESCE($3, internal_endpoint), updated_at = now()
          WHERE user_id = $1",
        user_id,
        container_id,
        endpoint
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Counts an unexpected exit, unless the crash `key` was counted already (compare and set in
/// one statement); the window restarts when the last one is older than `window_secs`. Returns
/// the count in the window, or None when this crash was counted before.
pub async fn record_crash(
    db: &mut PgConnection,
    user_id: Uuid,
    key: &str,
    window_secs: f64,
    retry_in_secs: f64,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "UPDATE runtimes
            SET crash_count = CASE WHEN crash_window_start IS NULL
                                     OR crash_window_start < now() - make_interval(secs => $2)
                                   THEN 1 ELSE crash_count + 1 END,
                crash_window_start = CASE WHEN crash_window_start IS NULL
                                            OR crash_window_start < now() - make_interval(secs => $2)
                                          THEN now() ELSE crash_window_start END,
                next_recover_at = now() + make_interval(secs => $3),
                crash_key = $4,
                updated_at = now()
          WHERE user_id = $1 AND crash_key IS DISTINCT FROM $4
          RETURNING crash_count",
        user_id,
        window_secs,
        retry_in_secs,
        key
    )
    .fetch_optional(db)
    .await
}

pub async fn clear_crashes(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET crash_count = 0, crash_window_start = NULL, next_recover_at = NULL
          WHERE user_id = $1",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the node a runtime was placed on (it is placed anew at its next start).
pub async fn clear_node(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET node = NULL WHERE user_id = $1",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete_binding(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM runtimes WHERE user_id = $1", user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The memory and CPU limits of every runtime not deleted (None: the deployment's default).
pub async fn limits_in_use(db: &mut PgConnection) -> sqlx::Result<Vec<(Option<i32>, Option<f64>)>> {
    Ok(
        sqlx::query!("SELECT memory_mb, cpus FROM runtimes WHERE desired_state <> 'deleted'")
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|r| (r.memory_mb, r.cpus))
            .collect(),
    )
}
