//! What the pages read of runtimes — a user's runtime with its newest task, every runtime, the
//! routable ones, those in error, a running one's logs and resource use — and an admin's
//! per-user limits.

use crate::repo::{self, RuntimeRow};
use crate::{
    DesiredState, LimitOverride, ObservedState, Orchestrator, OrchestratorError, RuntimeView,
    TaskStatus,
};
use clawloops_driver::Stats;
use sqlx::PgConnection;
use uuid::Uuid;

impl Orchestrator {
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
        let runtime_id = self.runtime_of(user_id).await?;
        Ok(self.inner.driver.logs(&runtime_id, lines).await?)
    }

    /// Memory and CPU of a user's runtime, when it runs.
    pub async fn stats(&self, user_id: Uuid) -> Result<Option<Stats>, OrchestratorError> {
        let runtime_id = self.runtime_of(user_id).await?;
        match self.inner.driver.observe(&runtime_id).await? {
            Some(o) if o.phase == clawloops_driver::Phase::Running => {
                Ok(Some(self.inner.driver.stats(&runtime_id).await?))
            }
            _ => Ok(None),
        }
    }

    async fn runtime_of(&self, user_id: Uuid) -> Result<String, OrchestratorError> {
        let mut conn = self.inner.pool.acquire().await?;
        let binding = repo::get(&mut conn, user_id)
            .await?
            .ok_or(OrchestratorError::NoRuntime)?;
        Ok(binding.runtime_id)
    }
}
