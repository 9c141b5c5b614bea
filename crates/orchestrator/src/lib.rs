//! The orchestrator: desired state per user, durable lifecycle tasks in PostgreSQL worked off by
//! a bounded pool of workers, and a reconciler that keeps Docker equal to the desired state.
//! It acts only through [`clawloops_driver::RuntimeDriver`].

mod background;
pub mod disk;
mod error;
mod hold;
mod idle;
mod isolation;
mod leader;
pub mod meter;
pub mod openclaw;
pub mod presence;
mod reconcile;
mod render;
pub mod repo;
mod settings;
mod views;
mod worker;

/// How runtimes are fenced off on their host (the driver's answer).
pub use clawloops_driver::Isolation;
pub use clawloops_wire::runtime::{
    Action, DesiredState, ObservedState, Problem, Stage, StopCause, TaskStatus,
};
pub use disk::DiskReport;
pub use error::OrchestratorError;
pub use hold::{Hold, Resume};
pub use idle::{PlannedStop, StopKind, span as duration_words};
pub use isolation::IsolationStatus;
pub use reconcile::ReconcileReport;
pub use render::USER_HEADER;
pub use repo::{RuntimeRow, TaskRow};
pub use settings::{Coordination, RuntimeSettings};
pub use worker::READY_POLL;

use clawloops_driver::RuntimeDriver;
use clawloops_models::budget;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use tokio::sync::Notify;
use uuid::Uuid;

/// Who a runtime belongs to.
#[derive(Debug, Clone, Copy)]
pub struct UserRef<'a> {
    pub id: Uuid,
    pub username: &'a str,
}

/// A user's own resource limits; `None` keeps the deployment's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitOverride {
    pub memory_mb: Option<u32>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    /// Workspace disk limit in MiB (0 = none).
    pub disk_mb: Option<u32>,
}

/// A runtime as pages show it: the binding, its newest task, and the task's place in the queue.
#[derive(Debug, Clone)]
pub struct RuntimeView {
    pub binding: RuntimeRow,
    pub task: Option<TaskRow>,
    /// Tasks ahead of this one in the queue, when it is queued.
    pub queue_position: Option<i64>,
}

/// The orchestrator. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    driver: Arc<dyn RuntimeDriver>,
    settings: RuntimeSettings,
    coordination: Coordination,
    instance: String,
    /// This replica's id: the owner of its task leases and its row in the replica list.
    worker_id: String,
    /// Idle workers wait on it (a request here, a `NOTIFY` from any replica).
    wake: Notify,
    /// Set when the replica begins to shut down; `stop` wakes whoever waits.
    stopping: AtomicBool,
    stop: Notify,
    /// Whether this replica holds the reconciler's lead.
    leading: AtomicBool,
    /// Tasks running on this replica now.
    in_flight: AtomicUsize,
    /// One claim at a time per replica: a replica that stalls mid-claim then holds the queue's
    /// claim lock with one connection, not with every worker's in turn.
    claiming: tokio::sync::Mutex<()>,
    /// Seals runtime gateway keys (absent: runtimes get a key that unlocks nothing).
    sealer: Option<clawloops_models::Sealer>,
    /// The last isolation check (the reconciler's).
    isolation: std::sync::Mutex<IsolationStatus>,
}

impl Orchestrator {
    /// An orchestrator for this installation (`instance` labels its Docker objects).
    pub fn new(
        pool: PgPool,
        driver: Arc<dyn RuntimeDriver>,
        settings: RuntimeSettings,
        instance: &str,
    ) -> Self {
        Orchestrator {
            inner: Arc::new(Inner {
                pool,
                driver,
                settings,
                coordination: Coordination::default(),
                instance: instance.to_owned(),
                worker_id: format!(
                    "{}-{}-{}",
                    hostname(),
                    std::process::id(),
                    Uuid::new_v4().simple()
                ),
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
                stop: Notify::new(),
                leading: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                claiming: tokio::sync::Mutex::new(()),
                sealer: None,
                isolation: std::sync::Mutex::new(IsolationStatus {
                    result: Err("not checked yet".into()),
                    checked_at: None,
                }),
            }),
        }
    }

    /// Issues each runtime its own gateway key, sealed with `sealer` (call before cloning).
    pub fn with_model_keys(mut self, sealer: clawloops_models::Sealer) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.sealer = Some(sealer),
            None => tracing::error!(
                "with_model_keys called on a shared orchestrator; runtimes get no model key"
            ),
        }
        self
    }

    /// Leases and pacing between replicas (call before cloning).
    pub fn with_coordination(mut self, coordination: Coordination) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.coordination = coordination,
            None => tracing::error!("with_coordination called on a shared orchestrator; ignored"),
        }
        self
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    pub fn driver(&self) -> &Arc<dyn RuntimeDriver> {
        &self.inner.driver
    }

    /// The runtime id of a user: `rt-<username>` (usernames are unique and DNS-safe).
    pub fn runtime_id(username: &str) -> String {
        format!("rt-{}", Self::workspace_name(username))
    }

    /// The DNS label of a user's workspace host (`<name>.<workspace domain>`): the username
    /// with dots and underscores as dashes.
    pub fn workspace_name(username: &str) -> String {
        username.replace(['.', '_'], "-")
    }

    /// When and why a running runtime will be stopped by the platform (idle or lifetime).
    pub fn planned_stop(&self, binding: &RuntimeRow) -> Option<PlannedStop> {
        idle::planned_stop(&self.inner.settings, binding)
    }

    /// A user's own idle-stop minutes (None = the default, 0 = never).
    pub async fn set_idle_stop(
        &self,
        user_id: Uuid,
        minutes: Option<u32>,
    ) -> Result<(), OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let minutes = minutes.map(|m| i32::try_from(m).unwrap_or(i32::MAX));
        if repo::set_idle_stop(&mut conn, user_id, minutes).await? {
            Ok(())
        } else {
            Err(OrchestratorError::NoRuntime)
        }
    }

    /// The browser address of a user's workspace, when the entry layer routes workspaces.
    pub fn workspace_url(&self, username: &str) -> Option<String> {
        render::browser_url(&self.inner.settings, username)
    }

    /// Notes that the entry proxy fetched routes to these users' runtimes.
    pub async fn mark_routed(&self, users: &[Uuid]) -> Result<u64, OrchestratorError> {
        if users.is_empty() {
            return Ok(0);
        }
        let mut conn = self.inner.pool.acquire().await?;
        Ok(repo::mark_routed(&mut conn, users).await?)
    }

    /// Records workspace use (forward-auth batches it): the idle clock starts again.
    pub async fn touch_activity(
        &self,
        seen: &[(Uuid, time::OffsetDateTime)],
    ) -> Result<u64, OrchestratorError> {
        let (users, at): (Vec<Uuid>, Vec<time::OffsetDateTime>) = seen.iter().copied().unzip();
        let mut conn = self.inner.pool.acquire().await?;
        Ok(repo::touch_activity(&mut conn, &users, &at).await?)
    }

    /// Asks for `action` on a user's runtime: records the desired state and queues the task
    /// (joining an identical queued or running one). Wakes the workers.
    pub async fn request(
        &self,
        user: UserRef<'_>,
        action: Action,
        wipe_workspace: bool,
        requested_by: &str,
    ) -> Result<TaskRow, OrchestratorError> {
        let mut tx = self.inner.pool.begin().await?;
        let task = self
            .request_in(&mut tx, user, action, wipe_workspace, requested_by)
            .await?;
        tx.commit().await?;
        self.wake();
        Ok(task)
    }

    /// Moves a user's runtime to another node, on engines with several (an admin's decision,
    /// typically when its node is lost): it is removed with its workspace where that can
    /// still be reached, and started afresh wherever the engine has room, with an empty
    /// workspace.
    pub async fn move_to_new_node(
        &self,
        user: UserRef<'_>,
        requested_by: &str,
    ) -> Result<TaskRow, OrchestratorError> {
        let mut tx = self.inner.pool.begin().await?;
        repo::lock_user(&mut tx, user.id).await?;
        repo::get(&mut tx, user.id)
            .await?
            .ok_or(OrchestratorError::NoRuntime)?;
        repo::clear_node(&mut tx, user.id).await?;
        let task = self
            .request_in(&mut tx, user, Action::Recover, true, requested_by)
            .await?;
        tx.commit().await?;
        self.wake();
        Ok(task)
    }

    /// As [`Orchestrator::request`], inside the caller's transaction (call [`Orchestrator::wake`]
    /// after committing).
    pub async fn request_in(
        &self,
        tx: &mut PgConnection,
        user: UserRef<'_>,
        action: Action,
        wipe_workspace: bool,
        requested_by: &str,
    ) -> Result<TaskRow, OrchestratorError> {
        let settings = &self.inner.settings;
        repo::lock_user(tx, user.id).await?;
        match action {
            Action::Start | Action::Recover => {
                let binding = repo::ensure_binding(
                    tx,
                    user.id,
                    user.username,
                    &Self::runtime_id(user.username),
                    &settings.profile_name,
                    &settings.image,
                    &render::new_token(),
                )
                .await?;
                // A held runtime starts only when its hold ends (resume).
                if action == Action::Start
                    && let Some(reason) = &binding.paused_reason
                {
                    return Err(OrchestratorError::Paused(format!(
                        "Your runtime is paused: {reason}. Resume it first."
                    )));
                }
                // A start adds room to write; a recovery (a restart of what runs) does not,
                // and the disk check stops it if it stays over.
                if action == Action::Start
                    && binding.desired() != DesiredState::Running
                    && let Some((used, limit)) = disk::over_limit(settings, &binding)
                {
                    return Err(OrchestratorError::WorkspaceFull(disk::start_refusal(
                        used, limit,
                    )));
                }
                // A runtime does not start on a budget that is used up (a recovery of one that
                // runs is fine: the meter stops it if the budget stays used up).
                if action == Action::Start
                    && binding.desired() != DesiredState::Running
                    && let Some(standing) =
                        budget::standing(tx, user.id, time::OffsetDateTime::now_utc()).await?
                    && standing.exhausted()
                {
                    return Err(OrchestratorError::BudgetUsedUp(meter::start_refusal(
                        &standing,
                    )));
                }
                repo::set_desired(tx, user.id, DesiredState::Running).await?;
                if action == Action::Recover {
                    repo::clear_crashes(tx, user.id).await?;
                }
            }
            Action::Stop => {
                repo::get(tx, user.id)
                    .await?
                    .ok_or(OrchestratorError::NoRuntime)?;
                repo::set_desired(tx, user.id, DesiredState::Stopped).await?;
            }
            Action::Delete => {
                repo::get(tx, user.id)
                    .await?
                    .ok_or(OrchestratorError::NoRuntime)?;
                repo::set_desired(tx, user.id, DesiredState::Deleted).await?;
            }
        }
        Ok(repo::enqueue(tx, user.id, action, wipe_workspace, requested_by).await?)
    }

    /// Lets this replica's idle workers look for work now (other replicas hear of queued work
    /// through the queue's `NOTIFY`).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "clawloops".into(), |h| h.trim().to_owned())
}
