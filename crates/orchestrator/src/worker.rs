//! The workers: claim a task, carry it out stage by stage, keep its lease alive, finish it.
//! Every step is idempotent, so a task resumed after a crash simply runs again.

//!
//! Every write a worker makes is fenced by its lease: made in a transaction that first checks the
//! lease is still held (and keeps the task row from being taken over until it commits). A worker
//! whose lease was lost — paused past it, cut off from the database, its task handed to another —
//! stops at once and touches nothing more. Before each change to the engine it checks the lease
//! too.

use crate::render::{self, browser_url};
use crate::repo::{self, TaskRow};
use crate::{Orchestrator, OrchestratorError};
use clawloops_driver::{Observation, Phase};
use clawloops_wire::runtime::{Action, DesiredState, ObservedState, Problem, Stage};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod fencing;
mod halt;

use fencing::LeaseGuard;
use halt::{Failure, Halt};

/// How often a starting runtime's health endpoint is asked (cheap for the runtime; a faster
/// answer for the user).
pub const READY_POLL: Duration = Duration::from_millis(100);

/// Counts a task as running on this replica while it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Outcome {
    Done,
    Canceled(&'static str),
}

impl Orchestrator {
    pub(crate) async fn work_forever(&self) {
        while !self.stopping() {
            // Listen before looking, so a wake-up between the look and the sleep is not lost.
            let woken = self.inner.wake.notified();
            match self.run_next().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "runtime worker"),
            }
            // Sleep until work is queued on any replica, or poll now and then.
            let _ = tokio::time::timeout(self.inner.coordination.poll_every, woken).await;
        }
    }

    /// Claims and runs one task; `false` when there was none (or the replica is stopping).
    /// Tests drive workers with it.
    pub async fn run_next(&self) -> Result<bool, OrchestratorError> {
        if self.stopping() {
            return Ok(false);
        }
        let lease_secs = self.inner.coordination.task_lease.as_secs_f64();
        let claimed = {
            let limit = i64::try_from(self.inner.settings.concurrency).unwrap_or(i64::MAX);
            let _one_at_a_time = self.inner.claiming.lock().await;
            let mut tx = self.inner.pool.begin().await?;
            match repo::claim(&mut tx, &self.inner.worker_id, lease_secs, limit).await {
                Ok(task) => {
                    tx.commit().await?;
                    task
                }
                // Another worker took a twin for the same user at the same moment, or another
                // replica held the claim lock too long (it may have stalled): look again.
                Err(err) if is_unique_violation(&err) || is_lock_timeout(&err) => return Ok(true),
                Err(err) => return Err(err.into()),
            }
        };
        let Some(task) = claimed else {
            return Ok(false);
        };
        tracing::info!(task = %task.id, action = %task.action, user = %task.user_id, "runtime task started");
        let _running = InFlight::enter(&self.inner.in_flight);
        let (lost, lease_lost) = tokio::sync::oneshot::channel();
        let heartbeat = LeaseGuard(self.keep_lease(task.lease(), lost));
        let result = tokio::select! {
            result = self.execute(&task) => result,
            Ok(()) = lease_lost => Err(Halt::LeaseLost),
        };
        drop(heartbeat);
        let finished = match result {
            Ok(outcome) => self.finish(&task, outcome).await,
            Err(Halt::Failed(failure)) => self.fail(&task, failure).await,
            Err(Halt::LeaseLost) => Err(Halt::LeaseLost),
        };
        match finished {
            Ok(()) => {}
            Err(Halt::LeaseLost) => {
                tracing::warn!(task = %task.id, "lost the task's lease; another worker owns it now, nothing more is written here");
            }
            Err(Halt::Failed(failure)) => {
                return Err(OrchestratorError::Database(sqlx::Error::Protocol(
                    failure.detail,
                )));
            }
        }
        Ok(true)
    }

    async fn execute(&self, task: &TaskRow) -> Result<Outcome, Halt> {
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
    ) -> Result<Outcome, Halt> {
        let settings = &self.inner.settings;
        let driver = &self.inner.driver;
        self.observe(task, ObservedState::Creating).await?;
        // A move to another node: what is left on the old one goes first, workspace included
        // (where its node can still be reached).
        if replace && task.wipe_workspace {
            self.fence(task).await?;
            driver.remove(&binding.runtime_id, true).await?;
        }
        // The network first: with an entry proxy, its address there goes into the config.
        let access = self.model_access(task, replace).await?;
        let draft = render::render(
            settings,
            &self.inner.instance,
            binding,
            &clawloops_driver::Prepared::default(),
            &access,
        );
        self.fence(task).await?;
        let prepared = driver.prepare(&draft.spec).await?;
        let rendered = render::render(settings, &self.inner.instance, binding, &prepared, &access);
        let spec = &rendered.spec;
        // The old instance of another configuration shuts down gracefully before it is replaced.
        if let Some(old) = driver.observe(&spec.runtime_id).await?
            && (replace || old.config_hash.as_deref() != Some(spec.config_hash.as_str()))
            && old.phase != (Phase::Stopped { exit_code: None })
        {
            self.fence(task).await?;
            driver
                .set_running(&spec.runtime_id, false, settings.stop_grace)
                .await?;
        }
        self.fence(task).await?;
        let made = driver.ensure(spec, &rendered.config, replace).await?;
        self.stage(task, Stage::ConfigRendered).await?;
        self.stage(task, Stage::ImageReady).await?;
        self.stage(task, Stage::ContainerCreated).await?;
        if !matches!(made.phase, Phase::Running | Phase::Starting) {
            self.fence(task).await?;
            driver
                .set_running(&spec.runtime_id, true, settings.stop_grace)
                .await?;
        }
        self.stage(task, Stage::Started).await?;
        self.observe(task, ObservedState::Starting).await?;

        let deadline = Instant::now() + settings.ready_timeout;
        let ready = loop {
            // What the engine says it waits for, if it says.
            let waiting_for = match driver.observe(&spec.runtime_id).await? {
                Some(o) if o.is_up() => break o,
                // Nothing changes until someone acts: say so now, not at the timeout.
                Some(Observation {
                    blocked: Some(err), ..
                }) => return Err(Failure::from(err).into()),
                Some(o) if matches!(o.phase, Phase::Running | Phase::Starting) => o.reason,
                Some(o) if o.phase == Phase::NodeDown => {
                    let why = o.reason.clone().unwrap_or_else(|| {
                        format!(
                            "its node {} is unreachable",
                            o.node.as_deref().unwrap_or("-")
                        )
                    });
                    return Err(Failure::new(Problem::NodeDown, why).into());
                }
                Some(o) => {
                    let tail = driver
                        .logs(&spec.runtime_id, 5)
                        .await
                        .unwrap_or_default()
                        .join(" | ");
                    return Err(Failure::new(
                        Problem::ExitedWhileStarting,
                        format!(
                            "{:?} while starting ({}); last output: {tail}",
                            o.phase,
                            o.reason.as_deref().unwrap_or("no reason given")
                        ),
                    )
                    .into());
                }
                None => {
                    return Err(Failure::new(
                        Problem::Vanished,
                        "the runtime disappeared while starting",
                    )
                    .into());
                }
            };
            if Instant::now() >= deadline {
                let after_secs = settings.ready_timeout.as_secs();
                let waiting = waiting_for
                    .map(|why| format!(" (the engine says: {why})"))
                    .unwrap_or_default();
                return Err(Failure::new(
                    Problem::NotReady { after_secs },
                    format!(
                        "no answer from {} within {after_secs} s{waiting}",
                        spec.profile.ready_path
                    ),
                )
                .into());
            }
            tokio::time::sleep(READY_POLL).await;
        };
        self.stage(task, Stage::Healthy).await?;
        let up = repo::Up {
            handle: &ready.handle,
            config_hash: &spec.config_hash,
            endpoint: ready.endpoint.as_deref().unwrap_or_default(),
            node: ready.node.as_deref(),
        };
        let mut tx = self.fenced(task).await?;
        repo::mark_running(
            &mut tx,
            task.user_id,
            &up,
            browser_url(settings, &binding.username).as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    async fn stop(&self, task: &TaskRow, binding: &repo::RuntimeRow) -> Result<Outcome, Halt> {
        self.observe(task, ObservedState::Stopping).await?;
        self.fence(task).await?;
        self.inner
            .driver
            .set_running(&binding.runtime_id, false, self.inner.settings.stop_grace)
            .await?;
        self.stage(task, Stage::Stopped).await?;
        self.observe(task, ObservedState::Stopped).await?;
        Ok(Outcome::Done)
    }

    async fn delete(&self, task: &TaskRow, binding: &repo::RuntimeRow) -> Result<Outcome, Halt> {
        let driver = &self.inner.driver;
        self.observe(task, ObservedState::Stopping).await?;
        self.fence(task).await?;
        driver
            .set_running(&binding.runtime_id, false, self.inner.settings.stop_grace)
            .await?;
        self.stage(task, Stage::Stopped).await?;
        let wipe = task.wipe_workspace || binding.retention == "wipe_workspace";
        self.fence(task).await?;
        driver.remove(&binding.runtime_id, wipe).await?;
        self.stage(task, Stage::Removed).await?;
        let mut tx = self.fenced(task).await?;
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
        task: &TaskRow,
        rotate: bool,
    ) -> Result<render::ModelAccess, Halt> {
        let user = task.user_id;
        // A new key replaces the old one: fenced like every other write.
        let mut tx = self.fenced(task).await?;
        let models = clawloops_models::registry::visible_aliases(&mut tx, user).await?;
        let api_key = match &self.inner.sealer {
            Some(sealer) => clawloops_models::keys::runtime_key(&mut tx, sealer, user, rotate)
                .await
                .map_err(|e| Failure::new(Problem::KeyFailed, e.to_string()))?,
            None => format!("clawloops-no-key-{user}"),
        };
        tx.commit().await?;
        Ok(render::ModelAccess { api_key, models })
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    has_code(err, "23505")
}

fn is_lock_timeout(err: &sqlx::Error) -> bool {
    has_code(err, "55P03")
}

fn has_code(err: &sqlx::Error, wanted: &str) -> bool {
    err.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == wanted)
}
