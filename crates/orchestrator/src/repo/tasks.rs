//! SQL for `runtime_tasks`: queue, claim under a lease, stages, finish, and recovery of tasks
//! whose worker died.

use clawloops_wire::runtime::{Action, Stage, TaskStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

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
    /// Drawn anew at every claim; the worker's writes are conditional on it.
    pub lease_token: Option<Uuid>,
}

/// A worker's hold on a task: the task and the token its claim drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub task: Uuid,
    pub token: Uuid,
}

/// The channel on which queued work is announced to every replica.
pub const WORK_CHANNEL: &str = "clawloops_runtime_tasks";

impl TaskRow {
    /// The lease this row was claimed under (a nil token, which holds nothing, when unclaimed).
    pub fn lease(&self) -> Lease {
        Lease {
            task: self.id,
            token: self.lease_token.unwrap_or_default(),
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }
    pub fn status(&self) -> TaskStatus {
        self.status
    }
}

macro_rules! task_query {
    ($sql:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            TaskRow,
            "WITH t AS (" + $sql + r#")
             SELECT id, user_id, action AS "action: Action", status AS "status: TaskStatus",
                    stage AS "stage: Stage", stages, wipe_workspace, error, requested_by,
                    attempts, created_at, started_at, finished_at, lease_token FROM t"#
            $(, $arg)*
        )
    };
}

/// Queues `action` for a user, or returns the equivalent task already queued or running (so
/// twenty clicks make one task). Every replica's idle workers hear of it when the transaction
/// commits (`NOTIFY`).
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
    announce(db, action.as_str()).await?;
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
    // A replica that stalls holding the lock keeps it until PostgreSQL ends its idle
    // transaction; the others stop waiting after a moment and look again.
    sqlx::query!("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *db)
        .await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('clawloops.runtime_tasks.claim'))")
        .execute(&mut *db)
        .await?;
    task_query!(
        "UPDATE runtime_tasks
            SET status = 'running', lease_owner = $1, lease_token = gen_random_uuid(),
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

/// Extends a lease that is still held and has not run out; false when it is lost (taken over,
/// handed back, or run out: a worker silent past its lease does not get it back).
pub async fn heartbeat(
    db: &mut PgConnection,
    lease: &Lease,
    lease_secs: f64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE runtime_tasks SET lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND lease_token = $2 AND status = 'running' AND lease_until > now()",
        lease.task,
        lease.token,
        lease_secs
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `lease` is still held and current; in a transaction it also keeps the task row from
/// being taken over until the transaction ends, so the writes that follow are fenced by it.
pub async fn hold(db: &mut PgConnection, lease: &Lease) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT 1 AS "held!" FROM runtime_tasks
            WHERE id = $1 AND lease_token = $2 AND status = 'running' AND lease_until > now()
              FOR SHARE"#,
        lease.task,
        lease.token
    )
    .fetch_optional(db)
    .await?
    .is_some())
}

/// Tells every replica's idle workers that work can be claimed (delivered when the caller's
/// transaction commits, so the work is visible by then).
async fn announce(db: &mut PgConnection, what: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify($1, $2)", WORK_CHANNEL, what)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Puts the tasks `owner` still holds back in the queue (a replica shutting down), with a new
/// queued stage; returns how many.
pub async fn hand_back(db: &mut PgConnection, owner: &str) -> sqlx::Result<u64> {
    // A queued twin already waits (unique per user and action): the held one just ends.
    sqlx::query!(
        "UPDATE runtime_tasks r
            SET status = 'canceled', finished_at = now(), lease_owner = NULL, lease_until = NULL,
                lease_token = NULL,
                error = 'Replaced by an identical queued task when a control-plane replica stopped.'
          WHERE r.status = 'running' AND r.lease_owner = $1
            AND EXISTS (SELECT 1 FROM runtime_tasks q
                         WHERE q.user_id = r.user_id AND q.action = r.action AND q.status = 'queued')",
        owner
    )
    .execute(&mut *db)
    .await?;
    let handed = sqlx::query!(
        "UPDATE runtime_tasks
            SET status = 'queued', lease_owner = NULL, lease_until = NULL, lease_token = NULL,
                stages = stages || jsonb_build_array(jsonb_build_object('stage', 'queued', 'at', now())),
                stage = 'queued'
          WHERE status = 'running' AND lease_owner = $1",
        owner
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    // Handed back (or a queued twin freed): another replica's idle worker takes it now.
    announce(db, "handed back").await?;
    Ok(handed)
}

/// Records that a task reached `stage` (the worker fences it with [`hold`]).
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

/// Ends a task (the worker fences it with [`hold`]).
pub async fn finish(
    db: &mut PgConnection,
    id: Uuid,
    status: TaskStatus,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtime_tasks
            SET status = $2, error = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL,
                lease_token = NULL
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
                lease_token = NULL, error = 'The control plane stopped while this task ran, too many times; it was given up.'
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
                lease_token = NULL, error = 'Replaced by an identical queued task after a control-plane restart.'
          WHERE r.status = 'running' AND r.lease_until < now()
            AND EXISTS (SELECT 1 FROM runtime_tasks q
                         WHERE q.user_id = r.user_id AND q.action = r.action AND q.status = 'queued')"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    let requeued = sqlx::query!(
        "UPDATE runtime_tasks
            SET status = 'queued', lease_owner = NULL, lease_until = NULL, lease_token = NULL,
                stages = stages || jsonb_build_array(jsonb_build_object('stage', 'queued', 'at', now())),
                stage = 'queued'
          WHERE status = 'running' AND lease_until < now()"
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    if requeued + merged > 0 {
        // Claimable again (or a queued twin freed): wake the idle workers of every replica.
        announce(db, "requeued").await?;
    }
    Ok((requeued, failed + merged))
}
