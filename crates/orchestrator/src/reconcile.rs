//! The reconciler: one pass compares every binding with what Docker reports and queues what
//! brings them together. It never touches a runtime that has a task queued or running.

use crate::leader::still_there;
use crate::{Orchestrator, OrchestratorError};
use crate::{idle, render, repo};
use clawloops_driver::{Observation, Phase};
use clawloops_models::compute;
use clawloops_wire::runtime::{Action, DesiredState, ObservedState, Problem, StopCause};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// Unexpected exits within this window count towards the crash-loop guard.
const CRASH_WINDOW_SECS: f64 = 600.0;
/// After this many, the runtime stays in `error` until someone starts or recovers it.
pub const CRASH_LIMIT: i32 = 5;
/// A task whose worker died is retried this many times in all.
const MAX_ATTEMPTS: i32 = 3;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub bindings: usize,
    pub containers: usize,
    pub attached: usize,
    pub crashes: usize,
    pub queued: usize,
    pub orphans_removed: usize,
    pub tasks_resumed: u64,
    pub tasks_failed: u64,
    pub crash_looping: usize,
    /// Runtimes stopped for idleness or lifetime.
    pub stopped_idle: usize,
    /// Runtimes found waiting for their node (newly).
    pub nodes_down: usize,
}

impl ReconcileReport {
    /// Whether the pass changed anything.
    pub fn acted(&self) -> bool {
        self.attached + self.crashes + self.queued + self.orphans_removed + self.nodes_down > 0
            || self.tasks_resumed + self.tasks_failed > 0
    }
}

/// Seconds to wait before recovering after the `n`th crash: 5, 10, 20, 40 …
fn backoff_secs(n: i32) -> u32 {
    5 << (n - 1).clamp(0, 10)
}

impl Orchestrator {
    /// One reconciliation pass as the leader for its length (tests and tools; a serving replica
    /// reconciles when it leads). [`OrchestratorError::NotLeader`] when another replica leads.
    pub async fn reconcile(&self) -> Result<ReconcileReport, OrchestratorError> {
        let mut session =
            crate::leader::Session::open(&self.inner.pool, self.inner.coordination.leader_lease)
                .await?;
        if !session.try_lead().await? {
            session.resign().await;
            return Err(OrchestratorError::NotLeader);
        }
        let report = self.reconcile_on(session.conn()).await;
        session.resign().await;
        report
    }

    /// One pass over `conn`, the leader's session: every write goes over it, so none is made
    /// once the session (and the lead) is gone; before each change to the engine the session is
    /// asked once more.
    pub(crate) async fn reconcile_on(
        &self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<ReconcileReport, OrchestratorError> {
        let mut report = ReconcileReport::default();
        let (resumed, failed) = repo::recover_abandoned(conn, MAX_ATTEMPTS).await?;
        report.tasks_resumed = resumed;
        report.tasks_failed = failed;

        let containers = self.inner.driver.list().await?;
        report.containers = containers.len();
        let mut by_runtime: HashMap<String, Observation> = containers
            .into_iter()
            .map(|c| (c.runtime_id.clone(), c))
            .collect();
        let bindings = repo::all(&mut *conn).await?;
        report.bindings = bindings.len();
        let busy: HashSet<_> = repo::busy_users(&mut *conn).await?.into_iter().collect();
        let now = OffsetDateTime::now_utc();

        // The runtimes the engine runs now: their meters are charged up to here.
        let mut seen = Vec::new();
        for binding in &bindings {
            let container = by_runtime.remove(&binding.runtime_id);
            let running = container
                .as_ref()
                .is_some_and(|c| c.phase == Phase::Running);
            if running {
                seen.push(binding.user_id);
            }
            if busy.contains(&binding.user_id) {
                continue;
            }
            if self.keep_hold(conn, binding, container.as_ref()).await? {
                continue;
            }
            let user = crate::UserRef {
                id: binding.user_id,
                username: &binding.username,
            };
            match binding.desired() {
                DesiredState::Running if running => {
                    let Some(c) = &container else { continue };
                    // A task made anew (after its node came back) has a new address.
                    let moved = c.endpoint.is_some()
                        && binding.internal_endpoint.as_deref() != c.endpoint.as_deref();
                    if binding.observed() != ObservedState::Running
                        || binding.container_id.as_deref() != Some(c.handle.as_str())
                        || moved
                    {
                        repo::attach(
                            &mut *conn,
                            binding.user_id,
                            &c.handle,
                            c.endpoint.as_deref(),
                        )
                        .await?;
                        report.attached += 1;
                    }
                    if let Some(stop) = idle::due(&self.inner.settings, binding, now) {
                        tracing::info!(user = %binding.username, reason = %stop.reason, "stopping a runtime");
                        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                        self.request_in(&mut tx, user, Action::Stop, false, "reconciler")
                            .await?;
                        let cause = match stop.kind {
                            idle::StopKind::Idle(_) => StopCause::Idle,
                            idle::StopKind::Lifetime(_) => StopCause::Lifetime,
                        };
                        repo::set_stop_reason(&mut tx, user.id, Some((cause, &stop.reason)))
                            .await?;
                        tx.commit().await?;
                        report.queued += 1;
                        report.stopped_idle += 1;
                        continue;
                    }
                    // A recreated entry proxy is joined to the runtime's network again.
                    let spec = render::render(
                        &self.inner.settings,
                        &self.inner.instance,
                        binding,
                        &clawloops_driver::Prepared::default(),
                        &render::ModelAccess::default(),
                    )
                    .spec;
                    still_there(conn).await?;
                    if let Err(err) = self.inner.driver.prepare(&spec).await {
                        tracing::warn!(user = %binding.username, error = %err, "could not join the entry proxy to a runtime network");
                    }
                }
                DesiredState::Running => {
                    if self
                        .waiting_for_node(conn, binding, container.as_ref(), &mut report)
                        .await?
                    {
                        continue;
                    }
                    if binding.observed() == ObservedState::Error
                        && binding.crash_count >= CRASH_LIMIT
                    {
                        report.crash_looping += 1;
                        continue;
                    }
                    // It was up (or being brought up) and is not any more: a crash.
                    if binding.observed() != ObservedState::Error
                        || binding.next_recover_at.is_none()
                    {
                        let Some(count) = repo::record_crash(
                            &mut *conn,
                            binding.user_id,
                            &crash_key(binding),
                            CRASH_WINDOW_SECS,
                            f64::from(backoff_secs(binding.crash_count + 1)),
                        )
                        .await?
                        else {
                            // Counted already (by a leader before this one).
                            continue;
                        };
                        report.crashes += 1;
                        let exit_code = container.as_ref().and_then(|c| c.phase.exit_code());
                        let problem = if count >= CRASH_LIMIT {
                            report.crash_looping += 1;
                            Problem::CrashLoop {
                                crashes: u32::try_from(count).unwrap_or(u32::MAX),
                                exit_code,
                            }
                        } else {
                            Problem::Crashed {
                                exit_code,
                                retry_in_secs: u64::from(backoff_secs(count)),
                            }
                        };
                        let fault = repo::Fault {
                            detail: format!(
                                "container {:?} found {:?}",
                                binding.container_id.as_deref().unwrap_or("-"),
                                container.as_ref().map(|c| c.phase)
                            ),
                            reference: uuid::Uuid::new_v4(),
                            problem,
                        };
                        tracing::warn!(
                            user = %binding.username, reference = %fault.reference,
                            code = fault.problem.code(), detail = %fault.detail, "runtime crashed"
                        );
                        // Nobody saw when it ended: its time counts until it was last seen.
                        compute::end_at_last_seen(&mut *conn, binding.user_id).await?;
                        repo::set_observed(
                            &mut *conn,
                            binding.user_id,
                            ObservedState::Error,
                            Some(&fault),
                        )
                        .await?;
                    } else if binding.next_recover_at.is_some_and(|at| at <= now) {
                        repo::enqueue(&mut *conn, user.id, Action::Recover, false, "reconciler")
                            .await?;
                        report.queued += 1;
                    }
                }
                DesiredState::Stopped => {
                    if running {
                        repo::enqueue(&mut *conn, user.id, Action::Stop, false, "reconciler")
                            .await?;
                        report.queued += 1;
                    } else if !matches!(
                        binding.observed(),
                        ObservedState::Stopped | ObservedState::Error
                    ) {
                        compute::end_at_last_seen(&mut *conn, binding.user_id).await?;
                        repo::set_observed(
                            &mut *conn,
                            binding.user_id,
                            ObservedState::Stopped,
                            None,
                        )
                        .await?;
                    }
                }
                DesiredState::Deleted => {
                    repo::enqueue(&mut *conn, user.id, Action::Delete, false, "reconciler").await?;
                    report.queued += 1;
                }
            }
        }

        compute::seen_running(&mut *conn, &seen).await?;

        // Labelled containers nobody owns any more.
        for orphan in by_runtime.into_values() {
            still_there(conn).await?;
            tracing::info!(runtime = %orphan.runtime_id, handle = %orphan.handle, "removing an orphan runtime (its workspace is kept)");
            self.inner.driver.remove(&orphan.runtime_id, false).await?;
            report.orphans_removed += 1;
        }
        if report.queued > 0 {
            self.wake();
        }
        Ok(report)
    }
}

impl Orchestrator {
    /// A runtime whose node is unreachable waits for it (shown as such, not counted as a
    /// crash); once the node is back it is started there again at once. Whether the binding
    /// was handled here.
    async fn waiting_for_node(
        &self,
        conn: &mut sqlx::PgConnection,
        binding: &repo::RuntimeRow,
        seen: Option<&Observation>,
        report: &mut ReconcileReport,
    ) -> Result<bool, OrchestratorError> {
        let on_record = binding
            .problem
            .as_ref()
            .is_some_and(|p| p.0 == Problem::NodeDown);
        if let Some(seen) = seen.filter(|o| o.phase == Phase::NodeDown) {
            if !on_record {
                let fault = repo::Fault {
                    detail: seen.reason.clone().unwrap_or_else(|| {
                        format!(
                            "its node {} is unreachable",
                            seen.node.as_deref().unwrap_or("-")
                        )
                    }),
                    reference: uuid::Uuid::new_v4(),
                    problem: Problem::NodeDown,
                };
                tracing::warn!(user = %binding.username, node = ?seen.node, "a runtime's node is unreachable");
                compute::end_at_last_seen(&mut *conn, binding.user_id).await?;
                repo::set_observed(conn, binding.user_id, ObservedState::Error, Some(&fault))
                    .await?;
                report.nodes_down += 1;
            }
            return Ok(true);
        }
        if on_record {
            tracing::info!(user = %binding.username, "a runtime's node is back: starting it again");
            repo::enqueue(conn, binding.user_id, Action::Recover, false, "reconciler").await?;
            report.queued += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

/// What identifies one crash of a runtime: the container it had, the moment it last became
/// ready, and the problem on record when it was found. Two passes that see the same crash make
/// the same key, so it is counted once.
fn crash_key(binding: &repo::RuntimeRow) -> String {
    format!(
        "{}|{}|{}",
        binding.container_id.as_deref().unwrap_or("-"),
        binding
            .ready_at
            .map_or(0, time::OffsetDateTime::unix_timestamp_nanos),
        binding
            .problem_ref
            .map(|r| r.to_string())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn recovery_backs_off_exponentially() {
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(1), 5);
        assert_eq!(backoff_secs(2), 10);
        assert_eq!(backoff_secs(4), 40);
        assert_eq!(backoff_secs(50), 5 * 1024, "capped after ten doublings");
    }
}
