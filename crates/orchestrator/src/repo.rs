//! SQL for `runtimes` and `runtime_tasks`. Every function takes a connection, so callers can
//! run several in one transaction.

use clawloops_wire::runtime::{Action, DesiredState, ObservedState, Problem, Stage, TaskStatus};
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// A problem as recorded: what the owner is shown, the engine's words for logs and admins, and
/// the reference both quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub problem: Problem,
    pub detail: String,
    pub reference: Uuid,
}

/// A runtime binding.
#[derive(Debug, Clone)]
pub struct RuntimeRow {
    pub user_id: Uuid,
    pub username: String,
    pub runtime_id: String,
    pub desired_state: DesiredState,
    pub observed_state: ObservedState,
    pub profile: String,
    pub image: String,
    pub config_hash: Option<String>,
    pub container_id: Option<String>,
    pub internal_endpoint: Option<String>,
    pub browser_url: Option<String>,
    pub retention: String,
    pub gateway_token: String,
    pub memory_mb: Option<i32>,
    pub cpus: Option<f64>,
    pub pids: Option<i32>,
    /// What went wrong last, as the owner is told (None once the runtime is healthy).
    pub problem: Option<Json<Problem>>,
    /// The engine's own words about it: logs and admins only.
    pub problem_detail: Option<String>,
    /// Quoted by the owner's card and the admin's view, and logged with the detail.
    pub problem_ref: Option<Uuid>,
    pub crash_count: i32,
    pub crash_window_start: Option<OffsetDateTime>,
    pub next_recover_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub ready_at: Option<OffsetDateTime>,
    /// The last workspace request forward-auth saw (flushed in batches).
    pub last_active_at: Option<OffsetDateTime>,
    /// Minutes without use before an idle stop (None = default, 0 = never).
    pub idle_stop_minutes: Option<i32>,
    /// Why the platform stopped the runtime last (idle, lifetime), for the dashboard.
    pub stop_reason: Option<String>,
    /// When the entry proxy last fetched a route to this runtime.
    pub routed_at: Option<OffsetDateTime>,
    /// The user's own workspace limit in MiB (None = the deployment's default, 0 = none).
    pub disk_mb: Option<i32>,
    /// What the workspace volume held when last measured.
    pub disk_used_bytes: Option<i64>,
    pub disk_measured_at: Option<OffsetDateTime>,
}

impl RuntimeRow {
    pub fn desired(&self) -> DesiredState {
        self.desired_state
    }
    pub fn observed(&self) -> ObservedState {
        self.observed_state
    }
    /// A running binding with every optional field empty (unit tests build on it).
    pub fn sample(username: &str) -> RuntimeRow {
        let now = OffsetDateTime::now_utc();
        RuntimeRow {
            user_id: Uuid::nil(),
            username: username.into(),
            runtime_id: format!("rt-{username}"),
            desired_state: DesiredState::Running,
            observed_state: ObservedState::Running,
            profile: "stub".into(),
            image: "i".into(),
            config_hash: None,
            container_id: None,
            internal_endpoint: None,
            browser_url: None,
            retention: "preserve_workspace".into(),
            gateway_token: String::new(),
            memory_mb: None,
            cpus: None,
            pids: None,
            problem: None,
            problem_detail: None,
            problem_ref: None,
            crash_count: 0,
            crash_window_start: None,
            next_recover_at: None,
            created_at: now,
            updated_at: now,
            ready_at: None,
            last_active_at: None,
            idle_stop_minutes: None,
            stop_reason: None,
            routed_at: None,
            disk_mb: None,
            disk_used_bytes: None,
            disk_measured_at: None,
        }
    }

    /// The problem with its detail and reference, when there is one.
    pub fn fault(&self) -> Option<Fault> {
        let problem = self.problem.as_ref()?.0.clone();
        Some(Fault {
            problem,
            detail: self.problem_detail.clone().unwrap_or_default(),
            reference: self.problem_ref.unwrap_or_default(),
        })
    }
}

/// A lifecycle task.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub action: Action,
    pub status: TaskStatus,
    pub stage: Stage,
    pub stages: serde_json::Value,
    pub wipe_workspace: bool,
    pub error: Option<String>,
    pub requested_by: Option<String>,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

impl TaskRow {
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn status(&self) -> TaskStatus {
        self.status
    }
}

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
                    routed_at, disk_mb, disk_used_bytes, disk_measured_at FROM r"# $(+ $tail)?
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
    container_id: &str,
    config_hash: &str,
    endpoint: &str,
    browser_url: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = 'running', container_id = $2, config_hash = $3,
                internal_endpoint = $4, browser_url = $5, problem = NULL, problem_detail = NULL,
                problem_ref = NULL, ready_at = now(),
                last_active_at = now(), stop_reason = NULL,
                updated_at = now()
          WHERE user_id = $1",
        user_id,
        container_id,
        config_hash,
        endpoint,
        browser_url
    )
    .execute(db)
    .await?;
    Ok(())
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
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET stop_reason = $2 WHERE user_id = $1",
        user_id,
        reason
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
pub async fn attach(db: &mut PgConnection, user_id: Uuid, container_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = 'running', container_id = $2, updated_at = now()
          WHERE user_id = $1",
        user_id,
        container_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Counts an unexpected exit; the window restarts when the last one is older than
/// `window_secs`. Returns the count in the window.
pub async fn record_crash(
    db: &mut PgConnection,
    user_id: Uuid,
    window_secs: f64,
    retry_in_secs: f64,
) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        "UPDATE runtimes
            SET crash_count = CASE WHEN crash_window_start IS NULL
                                     OR crash_window_start < now() - make_interval(secs => $2)
                                   THEN 1 ELSE crash_count + 1 END,
                crash_window_start = CASE WHEN crash_window_start IS NULL
                                            OR crash_window_start < now() - make_interval(secs => $2)
                                          THEN now() ELSE crash_window_start END,
                next_recover_at = now() + make_interval(secs => $3),
                updated_at = now()
          WHERE user_id = $1
          RETURNING crash_count",
        user_id,
        window_secs,
        retry_in_secs
    )
    .fetch_one(db)
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

pub async fn delete_binding(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM runtimes WHERE user_id = $1", user_id)
        .execute(db)
        .await?;
    Ok(())
}

macro_rules! task_query {
    ($sql:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            TaskRow,
            "WITH t AS (" + $sql + r#")
             SELECT id, user_id, action AS "action: Action", status AS "status: TaskStatus",
                    stage AS "stage: Stage", stages, wipe_workspace, error, requested_by,
                    attempts, created_at, started_at, finished_at FROM t"#
            $(, $arg)*
        )
    };
}

/// Queues `action` for a user, or returns the equivalent task already queued or running (so
/// twenty clicks make one task).
pub async fn enqueue(
    db: &mut PgConnection,
    user_id: Uuid,
    action: Action,
    wipe_workspace: bool,
    requested_by: &str,
) -> sqlx::Result<TaskRow> {
    if let Some(running) = task_query!(
        "SELECT * FROM runtime_tasks WHERE user_id = $1 AND action = $2 AND status = 'running'",
        user_id,
        action.as_str()
    )
    .fetch_optional(&mut *db)
    .await?
        && !wipe_workspace
    {
        return Ok(running);
    }
    task_query!(
        "INSERT INTO runtime_tasks (user_id, action, wipe_workspace, requested_by, stages)
         VALUES ($1, $2, $3, $4, jsonb_build_array(jsonb_build_object('stage', 'queued', 'at', now())))
         ON CONFLICT (user_id, action) WHERE status = 'queued'
         DO UPDATE SET wipe_workspace = runtime_tasks.wipe_workspace OR EXCLUDED.wipe_workspace
         RETURNING *",
        user_id,
        action.as_str(),
        wipe_workspace,
        requested_by
    )
    .fetch_one(db)
    .await
}

/// Takes the oldest queued task whose user has no running task, under a lease — unless
/// `limit` tasks already run, across every control-plane replica. Claims are serialized by a
/// transaction-scoped advisory lock so that the count and the claim cannot interleave; run it in
/// a transaction and commit at once.
pub async fn claim(
    db: &mut PgConnection,
    owner: &str,
    lease_secs: f64,
    limit: i64,
) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('clawloops.runtime_tasks.claim'))")
        .execute(&mut *db)
        .await?;
    task_query!(
        "UPDATE runtime_tasks
            SET status = 'running', lease_owner = $1,
                lease_until = now() + make_interval(secs => $2),
                started_at = coalesce(started_at, now()), attempts = attempts + 1
          WHERE id = (
                SELECT q.id FROM runtime_tasks q
                 WHERE q.status = 'queued'
                   AND NOT EXISTS (SELECT 1 FROM runtime_tasks r
                                    WHERE r.user_id = q.user_id AND r.status = 'running')
                   AND (SELECT count(*) FROM runtime_tasks b
                         WHERE b.status = 'running' AND b.lease_until > now()) < $3
                 ORDER BY q.created_at
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED)
          RETURNING *",
        owner,
        lease_secs,
        limit
    )
    .fetch_optional(db)
    .await
}

/// Extends the lease of a task this worker holds.
pub async fn heartbeat(
    db: &mut PgConnection,
    id: Uuid,
    owner: &str,
    lease_secs: f64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE runtime_tasks SET lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        id,
        owner,
        lease_secs
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that a task reached `stage`.
pub async fn set_stage(db: &mut PgConnection, id: Uuid, stage: Stage) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtime_tasks
            SET stage = $2,
                stages = stages || jsonb_build_array(jsonb_build_object('stage', $2::text, 'at', now()))
          WHERE id = $1",
        id,
        stage.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ends a task.
pub async fn finish(
    db: &mut PgConnection,
    id: Uuid,
    status: TaskStatus,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtime_tasks
            SET status = $2, error = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL
          WHERE id = $1",
        id,
        status.as_str(),
        error
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get_task(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TaskRow>> {
    task_query!("SELECT * FROM runtime_tasks WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// The user's newest task.
pub async fn latest_task(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<TaskRow>> {
    task_query!(
        "SELECT * FROM runtime_tasks WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1",
        user_id
    )
    .fetch_optional(db)
    .await
}

/// How many queued tasks are ahead of this one (0 = next).
pub async fn queue_position(db: &mut PgConnection, task: &TaskRow) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "ahead!" FROM runtime_tasks
            WHERE status = 'queued' AND created_at < $1"#,
        task.created_at
    )
    .fetch_one(db)
    .await
}

/// Users with a queued or running task (the reconciler leaves them alone).
pub async fn busy_users(db: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT user_id FROM runtime_tasks WHERE status IN ('queued', 'running')"
    )
    .fetch_all(db)
    .await
}

/// Tasks whose worker vanished (lease ran out): back to the queue, or failed after
/// `max_attempts`. Returns (requeued, failed).
pub async fn recover_abandoned(
    db: &mut PgConnection,
    max_attempts: i32,
) -> sqlx::Result<(u64, u64)> {
    let failed = sqlx::query!(
        "UPDATE runtime_tasks
            SET status = 'failed', finished_at = now(), lease_owner = NULL, lease_until = NULL,
                error = 'The control plane stopped while this task ran, too many times; it was given up.'
          WHERE status = 'running' AND lease_until < now() AND attempts >= $1",
        max_attempts
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    // A queued twin may exist (unique per user and action): then the abandoned one just ends.
    let merged = sqlx::query!(
        "UPDATE runtime_tasks r
            SET status = 'canceled', finished_at = now(), lease_owner = NULL, lease_until = NULL,
                error = 'Replaced by an identical queued task after a control-plane restart.'
          WHERE r.status = 'running' AND r.lease_until < now()
            AND EXISTS (SELECT 1 FROM runtime_tasks q
                         WHERE q.user_id = r.user_id AND q.action = r.action AND q.status = 'queued')"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    let requeued = sqlx::query!(
        "UPDATE runtime_tasks
            SET status = 'queued', lease_owner = NULL, lease_until = NULL,
                stages = stages || jsonb_build_array(jsonb_build_object('stage', 'queued', 'at', now())),
                stage = 'queued'
          WHERE status = 'running' AND lease_until < now()"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok((requeued, failed + merged))
}
