//! The orchestrator: desired state per user, durable lifecycle tasks in PostgreSQL worked off by
//! a bounded pool of workers, and a reconciler that keeps Docker equal to the desired state.
//! It acts only through [`clawloops_driver::RuntimeDriver`].

pub mod disk;
mod idle;
mod reconcile;
mod render;
pub mod repo;
mod settings;
mod worker;

/// How runtimes are fenced off on their host (the driver's answer).
pub use clawloops_driver::Isolation;
pub use clawloops_wire::runtime::{
    Action, DesiredState, ObservedState, Problem, Stage, TaskStatus,
};
pub use idle::{PlannedStop, StopKind, span as duration_words};
pub use reconcile::ReconcileReport;
pub use render::USER_HEADER;
pub use repo::{RuntimeRow, TaskRow};
pub use settings::RuntimeSettings;
pub use worker::READY_POLL;

use clawloops_driver::{RuntimeDriver, Stats};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// Who a runtime belongs to.
#[derive(Debug, Clone, Copy)]
pub struct UserRef<'a> {
    pub id: Uuid,
    pub username: &'a str,
}

/// What went wrong with a request (task failures are recorded on the task instead).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("this user has no runtime")]
    NoRuntime,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Driver(#[from] clawloops_driver::DriverError),
    /// The workspace holds more than its disk limit (in words for the user).
    #[error("{0}")]
    WorkspaceFull(String),
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

/// What one workspace measurement did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// Workspaces measured.
    pub measured: usize,
    /// Whether the engine itself holds volumes to their limit.
    pub engine_enforced: bool,
    /// Running runtimes stopped for being over their limit.
    pub stopped: usize,
}

/// A runtime as pages show it: the binding, its newest task, and the task's place in the queue.
#[derive(Debug, Clone)]
pub struct RuntimeView {
    pub binding: RuntimeRow,
    pub task: Option<TaskRow>,
    /// Tasks ahead of this one in the queue, when it is queued.
    pub queue_position: Option<i64>,
}

/// The host firewall for runtimes as the reconciler last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationStatus {
    /// `Ok` when runtimes are fenced off (or left to someone else by configuration); the
    /// driver's words otherwise.
    pub result: Result<Isolation, String>,
    /// When it was checked (None: not yet).
    pub checked_at: Option<time::OffsetDateTime>,
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
    instance: String,
    worker_id: String,
    wake: Notify,
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
                instance: instance.to_owned(),
                worker_id: format!("{}-{}", hostname(), Uuid::new_v4().simple()),
                wake: Notify::new(),
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

    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    pub fn driver(&self) -> &Arc<dyn RuntimeDriver> {
        &self.inner.driver
    }

    /// Checks (and repairs) the host firewall that keeps runtimes to the entry proxy, and
    /// remembers the answer for the admin pages.
    pub async fn check_isolation(&self) -> IsolationStatus {
        let result = self
            .inner
            .driver
            .ensure_isolation()
            .await
            .map_err(|e| e.to_string());
        if let Err(err) = &result {
            tracing::error!(error = %err, "runtimes are not isolated: no runtime will start");
        }
        let status = IsolationStatus {
            result,
            checked_at: Some(time::OffsetDateTime::now_utc()),
        };
        if let Ok(mut last) = self.inner.isolation.lock() {
            *last = status.clone();
        }
        status
    }

    /// The last isolation check's answer.
    pub fn isolation(&self) -> IsolationStatus {
        self.inner
            .isolation
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
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

    /// Lets idle workers look for work now.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// A user's runtime with its newest task, if they have one.
    pub async fn view(&self, user_id: Uuid) -> Result<Option<RuntimeView>, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let Some(binding) = repo::get(&mut conn, user_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.with_task(&mut conn, binding).await?))
    }

    /// Every runtime (admin page).
    pub async fn views(&self) -> Result<Vec<RuntimeView>, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let bindings = repo::all(&mut conn).await?;
        let mut views = Vec::with_capacity(bindings.len());
        for binding in bindings {
            views.push(self.with_task(&mut conn, binding).await?);
        }
        Ok(views)
    }

    async fn with_task(
        &self,
        conn: &mut PgConnection,
        binding: RuntimeRow,
    ) -> Result<RuntimeView, OrchestratorError> {
        let task = repo::latest_task(conn, binding.user_id).await?;
        let queue_position = match &task {
            Some(t) if t.status() == TaskStatus::Queued => {
                Some(repo::queue_position(conn, t).await?)
            }
            _ => None,
        };
        Ok(RuntimeView {
            binding,
            task,
            queue_position,
        })
    }

    /// Runtimes that are wanted running, are running and have an address: the ones the entry
    /// proxy routes to.
    pub async fn routable(&self) -> Result<Vec<RuntimeRow>, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let all = repo::all(&mut conn).await?;
        Ok(all
            .into_iter()
            .filter(|b| {
                b.desired() == DesiredState::Running
                    && b.observed() == ObservedState::Running
                    && b.internal_endpoint
                        .as_deref()
                        .is_some_and(|e| !e.is_empty())
            })
            .collect())
    }

    /// Runtimes whose last state is `error` (admin alerts).
    pub async fn in_error(&self) -> Result<Vec<RuntimeRow>, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let all = repo::all(&mut conn).await?;
        Ok(all
            .into_iter()
            .filter(|b| b.observed() == ObservedState::Error)
            .collect())
    }

    /// Overrides a user's resource limits (None = the deployment's default). They apply at the
    /// runtime's next start or recover: the limits are part of the configuration hash, so the
    /// container is then replaced.
    pub async fn set_limits(
        &self,
        user_id: Uuid,
        limits: LimitOverride,
    ) -> Result<(), OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let found = repo::set_limits(
            &mut conn,
            user_id,
            limits.memory_mb.and_then(|m| i32::try_from(m).ok()),
            limits.cpus,
            limits.pids.and_then(|p| i32::try_from(p).ok()),
            limits.disk_mb.and_then(|d| i32::try_from(d).ok()),
        )
        .await?;
        if found {
            Ok(())
        } else {
            Err(OrchestratorError::NoRuntime)
        }
    }

    /// The last lines of a user's runtime output.
    pub async fn logs(
        &self,
        user_id: Uuid,
        lines: usize,
    ) -> Result<Vec<String>, OrchestratorError> {
        let container = self.container_of(user_id).await?;
        Ok(match container {
            Some(id) => self.inner.driver.logs(&id, lines).await?,
            None => Vec::new(),
        })
    }

    /// Memory and CPU of a user's runtime, when it has a container.
    pub async fn stats(&self, user_id: Uuid) -> Result<Option<Stats>, OrchestratorError> {
        match self.container_of(user_id).await? {
            Some(id) => Ok(Some(self.inner.driver.stats(&id).await?)),
            None => Ok(None),
        }
    }

    async fn container_of(&self, user_id: Uuid) -> Result<Option<String>, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let binding = repo::get(&mut conn, user_id)
            .await?
            .ok_or(OrchestratorError::NoRuntime)?;
        Ok(self
            .inner
            .driver
            .find(&binding.runtime_id)
            .await?
            .map(|c| c.id))
    }

    /// Starts the workers and the reconciler; they run until the returned handles are aborted.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles: Vec<_> = (0..self.inner.settings.concurrency.max(1))
            .map(|_| {
                let this = self.clone();
                tokio::spawn(async move { this.work_forever().await })
            })
            .collect();
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.reconcile_forever().await }));
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.isolation_forever().await }));
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.disks_forever().await }));
        handles
    }

    /// Measures every workspace now and then (walking volumes costs the host some reading),
    /// records the sizes and stops running runtimes over their limit.
    async fn disks_forever(&self) {
        periodically(self.inner.settings.disk_check_every, || async {
            match self.check_disks().await {
                Ok(report) if report.stopped > 0 => {
                    tracing::info!(?report, "stopped runtimes over their workspace limit");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "workspace disk check failed"),
            }
        })
        .await;
    }

    /// One workspace measurement (see [`disk`]); does nothing while no workspace has a limit.
    pub async fn check_disks(&self) -> Result<DiskReport, OrchestratorError> {
        let settings = &self.inner.settings;
        let mut report = DiskReport::default();
        let mut conn = self.inner.pool.acquire().await?;
        let mut bindings = repo::all(&mut conn).await?;
        if !disk::any_limit(settings, &bindings) {
            return Ok(report);
        }
        let usage = self.inner.driver.disk_usage().await?;
        report.measured = usage.by_runtime.len();
        report.engine_enforced = usage.engine_enforced;
        repo::record_disk_usage(&mut conn, &usage.by_runtime).await?;
        let busy: std::collections::HashSet<_> =
            repo::busy_users(&mut conn).await?.into_iter().collect();
        for binding in &mut bindings {
            let Some(&used) = usage.by_runtime.get(&binding.runtime_id) else {
                continue;
            };
            if busy.contains(&binding.user_id) || binding.desired() != DesiredState::Running {
                continue;
            }
            // What was just recorded, without reading every binding again.
            binding.disk_used_bytes = Some(i64::try_from(used).unwrap_or(i64::MAX));
            let Some((used, limit)) = disk::over_limit(settings, binding) else {
                continue;
            };
            let reason = disk::stop_reason(used, limit);
            tracing::info!(user = %binding.username, used, limit, "stopping a runtime over its workspace limit");
            let user = UserRef {
                id: binding.user_id,
                username: &binding.username,
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            self.request_in(&mut tx, user, Action::Stop, false, "disk check")
                .await?;
            repo::set_stop_reason(&mut tx, user.id, Some(&reason)).await?;
            tx.commit().await?;
            report.stopped += 1;
        }
        if report.stopped > 0 {
            self.wake();
        }
        Ok(report)
    }

    /// The host firewall for runtimes, checked (and repaired) at start and then at the
    /// reconciler's pace: rules lost to a reboot, a flush or another tool come back within a
    /// period. Its own loop, so neither waits for the other.
    async fn isolation_forever(&self) {
        periodically(self.inner.settings.reconcile_every, || async {
            self.check_isolation().await;
        })
        .await;
    }

    async fn reconcile_forever(&self) {
        periodically(self.inner.settings.reconcile_every, || async {
            match self.reconcile().await {
                Ok(report) if report.acted() => tracing::info!(?report, "reconciled runtimes"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "reconciler pass failed"),
            }
        })
        .await;
    }
}

/// Runs `step` at once and then every `period`, forever; a step that overruns delays the next
/// rather than bunching them up.
async fn periodically<F, Fut>(period: std::time::Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        step().await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "clawloops".into())
}
