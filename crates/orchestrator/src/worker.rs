//! The workers: claim a task, carry it out stage by stage, keep its lease alive, finish it.
//! Every step is idempotent, so a task resumed after a crash simply runs again.

use crate::render::{self, browser_url};
use crate::repo::{self, TaskRow};
use crate::{Orchestrator, OrchestratorError};
use clawloops_driver::{ContainerState, DriverError};
use clawloops_wire::runtime::{Action, DesiredState, ObservedState, Problem, Stage, TaskStatus};
use std::time::{Duration, Instant};

/// A task's lease; renewed every third of it while the task runs.
const LEASE: Duration = Duration::from_secs(30);

/// A task's failure: the problem its owner is shown, and the detail (engine text) for logs and
/// admins only.
struct Failure {
    problem: Problem,
    detail: String,
}

impl Failure {
    fn new(problem: Problem, detail: impl Into<String>) -> Failure {
        Failure {
            problem,
            detail: detail.into(),
        }
    }
}

impl From<DriverError> for Failure {
    fn from(err: DriverError) -> Self {
        let problem = match &err {
            DriverError::Unreachable(_) => Problem::EngineUnreachable,
            DriverError::ManagerUnreachable(_) => Problem::ManagerUnreachable,
            DriverError::ManagerRefused(_) => Problem::ManagerRefused,
            DriverError::ImageMissing(_) => Problem::ImageMissing,
            DriverError::DiskFull(_) => Problem::HostDiskFull,
            DriverError::EntryProxyMissing(_) => Problem::EntryProxyMissing,
            DriverError::Config(_) => Problem::ConfigFailed,
            DriverError::Isolation(_) => Problem::IsolationUnavailable,
            DriverError::Conflict | DriverError::Docker(_) => Problem::EngineRefused,
        };
        Failure::new(problem, err.to_string())
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Failure::new(Problem::DatabaseFailed, err.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::new(
            Problem::ConfigFailed,
            format!("the runtime configuration could not be written: {err}"),
        )
    }
}

/// How often a starting runtime's health endpoint is asked (cheap for the runtime; a faster
/// answer for the user).
pub const READY_POLL: Duration = Duration::from_millis(100);

/// Stops renewing the lease when the task ends — or when its future is dropped mid-way, as
/// happens when the process dies: then the lease runs out and another worker resumes the task.
struct LeaseGuard(tokio::task::JoinHandle<()>);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Outcome {
    Done,
    Canceled(&'static str),
}

impl Orchestrator {
    pub(crate) async fn work_forever(&self) {
        loop {
            match self.run_next().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "runtime worker"),
            }
            // Sleep until woken by a request, or poll now and then (other replicas queue too).
            let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.wake.notified()).await;
        }
    }

    /// Claims and runs one task; `false` when there was none. Tests drive workers with it.
    pub async fn run_next(&self) -> Result<bool, OrchestratorError> {
        let claimed = {
            let limit = i64::try_from(self.inner.settings.concurrency).unwrap_or(i64::MAX);
            let mut tx = self.inner.pool.begin().await?;
            match repo::claim(&mut tx, &self.inner.worker_id, LEASE.as_secs_f64(), limit).await {
                Ok(task) => {
                    tx.commit().await?;
                    task
                }
                // Another worker took a twin for the same user at the same moment.
                Err(err) if is_unique_violation(&err) => return Ok(true),
                Err(err) => return Err(err.into()),
            }
        };
        let Some(task) = claimed else {
            return Ok(false);
        };
        tracing::info!(task = %task.id, action = %task.action, user = %task.user_id, "runtime task started");
        let heartbeat = LeaseGuard(self.keep_lease(task.id));
        let result = self.execute(&task).await;
        drop(heartbeat);
        let mut conn = self.inner.pool.acquire().await?;
        match result {
            Ok(Outcome::Done) => {
                repo::finish(&mut conn, task.id, TaskStatus::Succeeded, None).await?;
            }
            Ok(Outcome::Canceled(why)) => {
                repo::finish(&mut conn, task.id, TaskStatus::Canceled, Some(why)).await?;
            }
            Err(Failure { problem, detail }) => {
                // The task's id is the reference the owner's card shows and admins look up.
                let remedy = problem.remedy();
                tracing::warn!(
                    task = %task.id, reference = %task.id, code = problem.code(), %detail, remedy,
                    "runtime task failed"
                );
                let fault = repo::Fault {
                    problem,
                    detail,
                    reference: task.id,
                };
                repo::set_observed(&mut conn, task.user_id, ObservedState::Error, Some(&fault))
                    .await?;
                let recorded = format!("{}: {}", fault.problem.code(), fault.detail);
                repo::finish(&mut conn, task.id, TaskStatus::Failed, Some(&recorded)).await?;
            }
        }
        Ok(true)
    }

    fn keep_lease(&self, id: uuid::Uuid) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Ok(mut conn) = this.inner.pool.acquire().await {
                    let _ =
                        repo::heartbeat(&mut conn, id, &this.inner.worker_id, LEASE.as_secs_f64())
                            .await;
                }
            }
        })
    }

    async fn stage(&self, task: &TaskRow, stage: Stage) -> Result<(), Failure> {
        let mut conn = self.inner.pool.acquire().await?;
        repo::set_stage(&mut conn, task.id, stage).await?;
        Ok(())
    }

    async fn observe(&self, task: &TaskRow, state: ObservedState) -> Result<(), Failure> {
        let mut conn = self.inner.pool.acquire().await?;
        repo::set_observed(&mut conn, task.user_id, state, None).await?;
        Ok(())
    }

    async fn execute(&self, task: &TaskRow) -> Result<Outcome, Failure> {
        let binding = {
            let mut conn = self.inner.pool.acquire().await?;
            repo::get(&mut conn, task.user_id).await?
        };
        let Some(binding) = binding else {
            return Ok(Outcome::Canceled("The runtime no longer exists."));
        };
        let desired = binding.desired();
        match task.action() {
            Action::Start | Action::Recover if desired != DesiredState::Running => Ok(
                Outcome::Canceled("The runtime is no longer wanted running."),
            ),
            Action::Start => self.start(task, &binding, false).await,
            Action::Recover => self.start(task, &binding, true).await,
            Action::Stop if desired != DesiredState::Stopped => Ok(Outcome::Canceled(
                "The runtime was started again before it stopped.",
            )),
            Action::Stop => self.stop(task, &binding).await,
            Action::Delete if desired != DesiredState::Deleted => Ok(Outcome::Canceled(
                "The runtime was started again before it was deleted.",
            )),
            Action::Delete => self.delete(task, &binding).await,
        }
    }

    async fn start(
        &self,
        task: &TaskRow,
        binding: &repo::RuntimeRow,
        replace: bool,
    ) -> Result<Outcome, Failure> {
        let settings = &self.inner.settings;
        let driver = &self.inner.driver;
        self.observe(task, ObservedState::Creating).await?;
        // The network first: with an entry proxy, its address there goes into the config.
        let access = self.model_access(binding.user_id, replace).await?;
        let draft = render::render(settings, &self.inner.instance, binding, None, &access);
        let prepared = driver.prepare(&draft.spec).await?;
        let rendered = render::render(
            settings,
            &self.inner.instance,
            binding,
            prepared.entry_ip,
            &access,
        );
        driver
            .install_config(&rendered.spec, &rendered.config)
            .await?;
        self.stage(task, Stage::ConfigRendered).await?;
        let spec = &rendered.spec;
        if !driver.image_present(&spec.image).await? {
            return Err(DriverError::ImageMissing(spec.image.clone()).into());
        }
        self.stage(task, Stage::ImageReady).await?;

        let existing = driver.find(&spec.runtime_id).await?;
        let reusable = existing
            .as_ref()
            .filter(|c| !replace && c.config_hash.as_deref() == Some(spec.config_hash.as_str()));
        let container = match reusable {
            // Same configuration: keep the container (running: nothing to do; stopped: start it).
            Some(c) => c.clone(),
            None => {
                if let Some(old) = &existing {
                    driver.stop(&old.id, settings.stop_grace).await?;
                    driver.remove(&old.id).await?;
                }
                match driver.create(spec).await {
                    Ok(c) => c,
                    // A twin of this task (another replica, a resumed run) made it first.
                    Err(DriverError::Conflict) => {
                        driver.find(&spec.runtime_id).await?.ok_or_else(|| {
                            Failure::new(
                                Problem::Vanished,
                                "the container vanished while it was created",
                            )
                        })?
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        };
        self.stage(task, Stage::ContainerCreated).await?;
        if container.state != ContainerState::Running {
            driver.start(&container.id).await?;
        }
        self.stage(task, Stage::Started).await?;
        self.observe(task, ObservedState::Starting).await?;

        let deadline = Instant::now() + settings.ready_timeout;
        let ready = loop {
            let current = driver.find(&spec.runtime_id).await?;
            match current {
                Some(c) if c.state == ContainerState::Running => {
                    if driver.probe(&c, &spec.profile).await {
                        break c;
                    }
                }
                Some(c) => {
                    let tail = driver.logs(&c.id, 5).await.unwrap_or_default().join(" | ");
                    return Err(Failure::new(
                        Problem::ExitedWhileStarting,
                        format!("{:?} while starting; last output: {tail}", c.state),
                    ));
                }
                None => {
                    return Err(Failure::new(
                        Problem::Vanished,
                        "the container disappeared while starting",
                    ));
                }
            }
            if Instant::now() >= deadline {
                let after_secs = settings.ready_timeout.as_secs();
                return Err(Failure::new(
                    Problem::NotReady { after_secs },
                    format!(
                        "no answer from {} within {after_secs} s",
                        spec.profile.ready_path
                    ),
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        };
        self.stage(task, Stage::Healthy).await?;
        let endpoint = ready
            .ip
            .map(|ip| format!("http://{ip}:{}", spec.profile.port))
            .unwrap_or_default();
        let mut conn = self.inner.pool.acquire().await?;
        repo::mark_running(
            &mut conn,
            task.user_id,
            &ready.id,
            &spec.config_hash,
            &endpoint,
            browser_url(settings, &binding.username).as_deref(),
        )
        .await?;
        Ok(Outcome::Done)
    }

    async fn stop(&self, task: &TaskRow, binding: &repo::RuntimeRow) -> Result<Outcome, Failure> {
        self.observe(task, ObservedState::Stopping).await?;
        if let Some(c) = self.inner.driver.find(&binding.runtime_id).await? {
            self.inner
                .driver
                .stop(&c.id, self.inner.settings.stop_grace)
                .await?;
        }
        self.stage(task, Stage::Stopped).await?;
        self.observe(task, ObservedState::Stopped).await?;
        Ok(Outcome::Done)
    }

    async fn delete(&self, task: &TaskRow, binding: &repo::RuntimeRow) -> Result<Outcome, Failure> {
        let settings = &self.inner.settings;
        self.observe(task, ObservedState::Stopping).await?;
        let rendered = render::render(
            settings,
            &self.inner.instance,
            binding,
            None,
            &render::ModelAccess::default(),
        );
        if let Some(c) = self.inner.driver.find(&binding.runtime_id).await? {
            self.inner.driver.stop(&c.id, settings.stop_grace).await?;
            self.inner.driver.remove(&c.id).await?;
        }
        self.stage(task, Stage::Stopped).await?;
        let wipe = task.wipe_workspace || binding.retention == "wipe_workspace";
        self.inner.driver.cleanup(&rendered.spec, wipe).await?;
        self.stage(task, Stage::Removed).await?;
        let mut conn = self.inner.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        repo::delete_binding(&mut tx, task.user_id).await?;
        clawloops_models::keys::revoke_runtime_key(&mut tx, task.user_id, "runtime deleted")
            .await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    /// The runtime's gateway key (a new one when `rotate`) and its user's models. Without a
    /// sealer (orchestrator tests) the key is a placeholder that unlocks nothing.
    async fn model_access(
        &self,
        user: uuid::Uuid,
        rotate: bool,
    ) -> Result<render::ModelAccess, Failure> {
        let mut conn = self.inner.pool.acquire().await?;
        let models = clawloops_models::registry::visible_aliases(&mut conn, user).await?;
        let api_key = match &self.inner.sealer {
            Some(sealer) => clawloops_models::keys::runtime_key(&mut conn, sealer, user, rotate)
                .await
                .map_err(|e| Failure::new(Problem::KeyFailed, e.to_string()))?,
            None => format!("clawloops-no-key-{user}"),
        };
        Ok(render::ModelAccess { api_key, models })
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == "23505")
}
