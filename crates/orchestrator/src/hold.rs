//! Holding a runtime for the runaway-agent breaker. The hold is recorded on the binding first,
//! then the runtime is frozen in place (the engine's pause: memory and workspace kept, no CPU,
//! its time not metered); where the engine cannot freeze (Swarm services, Kubernetes pods) it
//! is stopped gracefully instead, workspace kept, and started again on resume. The reconciler
//! keeps the hold: it finishes a freeze a replica did not, freezes again a runtime thawed
//! behind its back, and thaws one found frozen without a hold. Starts are refused meanwhile.

use crate::{Orchestrator, OrchestratorError, UserRef, repo};
use clawloops_driver::{DriverError, Observation, Phase};
use clawloops_wire::runtime::{Action, DesiredState, ObservedState, StopCause};
use uuid::Uuid;

/// What a hold did to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Frozen in place.
    Frozen,
    /// Stopped gracefully (the engine cannot freeze).
    Stopped,
    /// Nothing ran; the hold only keeps it from starting.
    Idle,
    /// A task is under way; the reconciler applies the hold once it is done.
    Deferred,
    /// The user has no runtime.
    NoRuntime,
}

/// What a resume did to the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Thawed where it was frozen.
    Thawed,
    /// Started again after being stopped for the hold.
    Started,
    /// Released; nothing to bring back.
    Released,
    /// Released, but a start was refused (in words for the user).
    NotStarted(String),
}

impl Orchestrator {
    /// Holds a user's runtime for `reason` (in words for its owner): frozen in place, or stopped
    /// where the engine cannot freeze. Safe to repeat.
    pub async fn hold(&self, user_id: Uuid, reason: &str) -> Result<Hold, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        repo::lock_user(&mut tx, user_id).await?;
        if !repo::set_hold(&mut tx, user_id, Some(reason)).await? {
            return Ok(Hold::NoRuntime);
        }
        let binding = repo::get(&mut tx, user_id)
            .await?
            .ok_or(OrchestratorError::NoRuntime)?;
        let busy = repo::busy(&mut tx, user_id).await?;
        tx.commit().await?;
        if binding.desired() != DesiredState::Running {
            return Ok(Hold::Idle);
        }
        if busy {
            return Ok(Hold::Deferred);
        }
        self.freeze(&mut conn, &binding).await
    }

    /// Ends the hold on a user's runtime and brings it back as it was.
    pub async fn release(&self, user_id: Uuid, by: &str) -> Result<Resume, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        repo::lock_user(&mut tx, user_id).await?;
        let Some(binding) = repo::get(&mut tx, user_id).await? else {
            return Ok(Resume::Released);
        };
        repo::set_hold(&mut tx, user_id, None).await?;
        tx.commit().await?;
        match (binding.paused_in_place, binding.desired()) {
            (Some(true), DesiredState::Running) => {
                match self
                    .inner
                    .driver
                    .set_paused(&binding.runtime_id, false)
                    .await
                {
                    Ok(_) | Err(DriverError::Missing(_)) => {}
                    Err(err) => return Err(err.into()),
                }
                repo::thawed(&mut conn, user_id).await?;
                Ok(Resume::Thawed)
            }
            (Some(false), DesiredState::Stopped) => {
                let user = UserRef {
                    id: user_id,
                    username: &binding.username,
                };
                match self.request(user, Action::Start, false, by).await {
                    Ok(_) => Ok(Resume::Started),
                    Err(
                        OrchestratorError::BudgetUsedUp(words)
                        | OrchestratorError::WorkspaceFull(words),
                    ) => Ok(Resume::NotStarted(words)),
                    Err(err) => Err(err),
                }
            }
            _ => Ok(Resume::Released),
        }
    }

    /// Freezes a held runtime that should run, or stops it where the engine cannot freeze.
    async fn freeze(
        &self,
        conn: &mut sqlx::PgConnection,
        binding: &repo::RuntimeRow,
    ) -> Result<Hold, OrchestratorError> {
        match self
            .inner
            .driver
            .set_paused(&binding.runtime_id, true)
            .await
        {
            Ok(true) => {
                repo::held(conn, binding.user_id, true).await?;
                tracing::info!(user = %binding.username, "runtime frozen in place");
                Ok(Hold::Frozen)
            }
            Ok(false) => {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let user = UserRef {
                    id: binding.user_id,
                    username: &binding.username,
                };
                self.request_in(&mut tx, user, Action::Stop, false, "breaker")
                    .await?;
                let reason = binding.paused_reason.as_deref().unwrap_or_default();
                repo::set_stop_reason(&mut tx, user.id, Some((StopCause::Breaker, reason))).await?;
                repo::held(&mut tx, user.id, false).await?;
                tx.commit().await?;
                self.wake();
                tracing::info!(user = %binding.username, "runtime stopped for a hold (the engine cannot freeze)");
                Ok(Hold::Stopped)
            }
            Err(DriverError::Missing(_)) => Ok(Hold::Idle),
            Err(err) => Err(err.into()),
        }
    }

    /// The reconciler's part: keeps holds and thaws runtimes frozen without one. Whether the
    /// binding was handled here.
    pub(crate) async fn keep_hold(
        &self,
        conn: &mut sqlx::PgConnection,
        binding: &repo::RuntimeRow,
        seen: Option<&Observation>,
    ) -> Result<bool, OrchestratorError> {
        let phase = seen.map(|o| o.phase);
        let held = binding.paused_reason.is_some();
        match (binding.desired(), phase) {
            // A frozen runtime that should stop or go: its stop task thaws it first.
            (DesiredState::Stopped | DesiredState::Deleted, Some(Phase::Paused)) => {
                let action = if binding.desired() == DesiredState::Stopped {
                    Action::Stop
                } else {
                    Action::Delete
                };
                repo::enqueue(conn, binding.user_id, action, false, "reconciler").await?;
                self.wake();
                Ok(true)
            }
            (DesiredState::Running, Some(Phase::Paused)) if held => {
                if binding.observed() != ObservedState::Paused {
                    repo::held(conn, binding.user_id, true).await?;
                }
                Ok(true)
            }
            (DesiredState::Running, Some(Phase::Running))
                if held && binding.paused_in_place != Some(false) =>
            {
                crate::leader::still_there(conn).await?;
                self.freeze(conn, binding).await?;
                Ok(true)
            }
            (DesiredState::Running, Some(Phase::Paused)) => {
                crate::leader::still_there(conn).await?;
                tracing::info!(user = %binding.username, "thawing a runtime frozen without a hold");
                self.inner
                    .driver
                    .set_paused(&binding.runtime_id, false)
                    .await?;
                repo::thawed(conn, binding.user_id).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
