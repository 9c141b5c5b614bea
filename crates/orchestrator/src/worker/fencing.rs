//! The worker's writes, each fenced by the task's lease: a transaction that first holds the
//! task row where the lease is still this worker's, and the heartbeat that renews it.

use super::Outcome;
use super::halt::{Failure, Halt};
use crate::Orchestrator;
use crate::repo::{self, Lease, TaskRow};
use clawloops_wire::runtime::{ObservedState, Stage, TaskStatus};
use sqlx::{Postgres, Transaction};

/// Stops renewing the lease when the task ends — or when its future is dropped mid-way, as
/// happens when the process dies: then the lease runs out and another worker resumes the task.
pub(super) struct LeaseGuard(pub(super) tokio::task::JoinHandle<()>);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Orchestrator {
    /// Records the task's end, fenced by its lease.
    pub(super) async fn finish(&self, task: &TaskRow, outcome: Outcome) -> Result<(), Halt> {
        let mut tx = self.fenced(task).await?;
        match outcome {
            Outcome::Done => {
                repo::finish(&mut tx, task.id, TaskStatus::Succeeded, None).await?;
            }
            Outcome::Canceled(why) => {
                repo::finish(&mut tx, task.id, TaskStatus::Canceled, Some(why)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failure on the runtime and the task in one transaction, fenced by the lease.
    pub(super) async fn fail(&self, task: &TaskRow, failure: Failure) -> Result<(), Halt> {
        let mut tx = self.fenced(task).await?;
        {
            let Failure { problem, detail } = failure;
            {
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
                repo::set_observed(&mut tx, task.user_id, ObservedState::Error, Some(&fault))
                    .await?;
                let recorded = format!("{}: {}", fault.problem.code(), fault.detail);
                repo::finish(&mut tx, task.id, TaskStatus::Failed, Some(&recorded)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Renews the lease every third of it; says so on `lost` (and ends) when it is gone.
    pub(super) fn keep_lease(
        &self,
        lease: Lease,
        lost: tokio::sync::oneshot::Sender<()>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let period = this.inner.coordination.task_lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period / 3).await;
                let Ok(mut conn) = this.inner.pool.acquire().await else {
                    continue;
                };
                if let Ok(false) = repo::heartbeat(&mut conn, &lease, period.as_secs_f64()).await {
                    let _ = lost.send(());
                    return;
                }
            }
        })
    }

    /// A transaction in which the task's lease is held (and cannot be taken over) until commit.
    pub(super) async fn fenced(
        &self,
        task: &TaskRow,
    ) -> Result<Transaction<'static, Postgres>, Halt> {
        let mut tx = self.inner.pool.begin().await?;
        if repo::hold(&mut tx, &task.lease()).await? {
            Ok(tx)
        } else {
            Err(Halt::LeaseLost)
        }
    }

    /// Checks the lease before a change to the engine.
    pub(super) async fn fence(&self, task: &TaskRow) -> Result<(), Halt> {
        let mut conn = self.inner.pool.acquire().await?;
        if repo::hold(&mut conn, &task.lease()).await? {
            Ok(())
        } else {
            Err(Halt::LeaseLost)
        }
    }

    pub(super) async fn stage(&self, task: &TaskRow, stage: Stage) -> Result<(), Halt> {
        let mut tx = self.fenced(task).await?;
        repo::set_stage(&mut tx, task.id, stage).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn observe(&self, task: &TaskRow, state: ObservedState) -> Result<(), Halt> {
        let mut tx = self.fenced(task).await?;
        repo::set_observed(&mut tx, task.user_id, state, None).await?;
        tx.commit().await?;
        Ok(())
    }
}
