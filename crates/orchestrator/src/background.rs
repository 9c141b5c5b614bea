//! The orchestrator's background work: the task workers, the reconciler, the firewall check and
//! the workspace measurement, each on its own loop.

use crate::Orchestrator;

impl Orchestrator {
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
