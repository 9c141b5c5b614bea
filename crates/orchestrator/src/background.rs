//! The orchestrator's background work: the task workers on every replica; the reconciler and
//! the workspace measurement on the leader alone; the firewall check and the replica's presence
//! on every replica.

use crate::leader::Session;
use crate::{Orchestrator, presence};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

impl Orchestrator {
    /// Starts the workers, the campaign for the reconciler's lead and the checks; they run
    /// until [`Orchestrator::drain`] is called and the returned handles are aborted.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles: Vec<_> = (0..self.inner.settings.concurrency.max(1))
            .map(|_| {
                let this = self.clone();
                tokio::spawn(async move { this.work_forever().await })
            })
            .collect();
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.lead_forever().await }));
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.listen_for_work().await }));
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.isolation_forever().await }));
        let this = self.clone();
        handles.push(tokio::spawn(async move {
            presence::report_forever(&this).await;
        }));
        handles
    }

    /// Whether this replica leads the reconciler now.
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::Relaxed)
    }

    /// Campaigns for the lead; while leading, reconciles and measures workspaces at their pace
    /// and speaks on the session often enough to keep it. A session that fails ends the lead:
    /// back to campaigning on a new one.
    async fn lead_forever(&self) {
        let every = self.inner.coordination;
        while !self.stopping() {
            let mut session = match Session::open(&self.inner.pool, every.leader_lease).await {
                Ok(session) => session,
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler: cannot open a leader session");
                    self.pause(every.campaign_every).await;
                    continue;
                }
            };
            match self.campaign(&mut session).await {
                Ok(true) => {}
                Ok(false) => {
                    session.resign().await;
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler: leader session failed");
                    continue;
                }
            }
            tracing::info!(replica = %self.inner.worker_id, "this replica leads the reconciler");
            self.inner.leading.store(true, Ordering::Relaxed);
            let led = self.lead(&mut session).await;
            self.inner.leading.store(false, Ordering::Relaxed);
            match led {
                Ok(()) => {
                    presence::leading(&self.inner.pool, &self.inner.worker_id, false).await;
                    session.resign().await;
                    tracing::info!("reconciler lead handed back (shutting down)");
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler lead lost; campaigning again");
                    presence::leading(&self.inner.pool, &self.inner.worker_id, false).await;
                }
            }
        }
    }

    /// Tries for the lock until it is had (true) or the replica stops (false).
    async fn campaign(&self, session: &mut Session) -> sqlx::Result<bool> {
        loop {
            if self.stopping() {
                return Ok(false);
            }
            if session.try_lead().await? {
                return Ok(true);
            }
            self.pause(self.inner.coordination.campaign_every).await;
        }
    }

    /// Leads until the session fails (Err) or the replica stops (Ok).
    async fn lead(&self, session: &mut Session) -> sqlx::Result<()> {
        let settings = &self.inner.settings;
        // Speak at least every third of the lease, so PostgreSQL keeps the session.
        let tick = (self.inner.coordination.leader_lease / 3).min(settings.reconcile_every);
        presence::leading_on(session.conn(), &self.inner.worker_id).await?;
        let mut next_pass = Instant::now();
        let mut next_disks = Instant::now();
        while !self.stopping() {
            session.check().await?;
            if Instant::now() >= next_pass {
                match self.reconcile_on(session.conn()).await {
                    Ok(report) if report.acted() => tracing::info!(?report, "reconciled runtimes"),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "reconciler pass failed");
                        // A failed pass may be a lost session: ask before going on.
                        session.check().await?;
                    }
                }
                match self.meter().await {
                    Ok(report) if report.stopped > 0 => {
                        tracing::info!(?report, "stopped runtimes over their budget");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "runtime meter failed"),
                }
                next_pass = Instant::now() + settings.reconcile_every;
            }
            if Instant::now() >= next_disks {
                match self.check_disks().await {
                    Ok(report) if report.stopped > 0 => {
                        tracing::info!(?report, "stopped runtimes over their workspace limit");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "workspace disk check failed"),
                }
                next_disks = Instant::now() + settings.disk_check_every;
            }
            self.pause(tick).await;
        }
        Ok(())
    }

    /// Wakes this replica's idle workers when any replica queues work (`NOTIFY` sent in the
    /// queueing transaction, so it arrives once the task can be seen).
    async fn listen_for_work(&self) {
        // A connection of its own (a pool of one), not one of the shared pool's for ever.
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(
                self.inner
                    .pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .application_name("clawloops-work-listener"),
            );
        loop {
            match sqlx::postgres::PgListener::connect_with(&own).await {
                Ok(mut listener) => {
                    if let Err(err) = listener.listen(crate::repo::WORK_CHANNEL).await {
                        tracing::warn!(error = %err, "cannot listen for queued runtime tasks");
                    } else {
                        // `recv` reconnects by itself; work queued while it was away is found
                        // by the workers' poll.
                        while listener.recv().await.is_ok() {
                            self.inner.wake.notify_waiters();
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot listen for queued runtime tasks"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The host firewall for runtimes, checked (and repaired) at start and then at the
    /// reconciler's pace: rules lost to a reboot, a flush or another tool come back within a
    /// period. Every replica checks: the rules are the engine host's, and checking is
    /// idempotent.
    async fn isolation_forever(&self) {
        let mut every = tokio::time::interval(self.inner.settings.reconcile_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.check_isolation().await;
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Relaxed)
    }

    /// Sleeps for `period`, or less when the replica begins to stop.
    pub(crate) async fn pause(&self, period: Duration) {
        let stop = self.inner.stop.notified();
        if self.stopping() {
            return;
        }
        let _ = tokio::time::timeout(period, stop).await;
    }

    /// Begins this replica's shutdown: workers take no new task, the leader hands the lock back.
    /// Waits up to `grace` for the tasks running here to finish; returns how many still run.
    /// Abort the background handles afterwards, then call [`Orchestrator::hand_back`].
    pub async fn drain(&self, grace: Duration) -> usize {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.stop.notify_waiters();
        self.inner.wake.notify_waiters();
        presence::draining(&self.inner.pool, &self.inner.worker_id).await;
        let deadline = Instant::now() + grace;
        loop {
            let running = self.inner.in_flight.load(Ordering::Relaxed);
            if running == 0 || Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Puts the tasks this replica still holds back in the queue at once (instead of after
    /// their lease runs out), so another replica resumes them; and removes the replica from the
    /// list. Call after the workers were aborted.
    pub async fn hand_back(&self) -> u64 {
        let handed = match self.inner.pool.acquire().await {
            Ok(mut conn) => crate::repo::hand_back(&mut conn, &self.inner.worker_id)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "could not hand back running tasks");
                    0
                }),
            Err(_) => 0,
        };
        if handed > 0 {
            tracing::info!(tasks = handed, "handed running tasks back to the queue");
        }
        presence::leave(&self.inner.pool, &self.inner.worker_id).await;
        handed
    }
}
