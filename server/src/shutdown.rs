//! A replica's shutdown, in the order that loses nothing:
//! 1. SIGTERM (or Ctrl-C): readiness answers 503 at once and the orchestrator takes no new task
//!    (a leader hands its lock back);
//! 2. for `shutdown_delay` requests are still served, so the entry proxy's health check takes
//!    the replica out of rotation before it stops listening;
//! 3. then no new connection is accepted, and requests in flight — model streams included — may
//!    finish within `shutdown_grace`; the tasks running here too;
//! 4. when the grace is over, model streams still open end with an error event
//!    (`server_shutting_down`) rather than a cut connection; a moment later what still runs is
//!    cut; tasks still held are handed back to the queue (the caller does that after stopping
//!    the background work).

use crate::settings::ReplicaSettings;
use anyhow::Context;
use clawloops_orchestrator::Orchestrator;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long streams ended by [`Shutdown::serve`]'s `close_streams` have to send their last
/// event before connections are cut.
const LAST_EVENT: std::time::Duration = std::time::Duration::from_secs(1);

/// The future that tells the HTTP server to stop accepting connections.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Shutdown {
    settings: ReplicaSettings,
    draining: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new(settings: ReplicaSettings, draining: Arc<AtomicBool>) -> Self {
        Shutdown { settings, draining }
    }

    /// Runs `serve` (given the signal to stop accepting) until it ends by itself after a
    /// shutdown signal, or until the grace is over (`close_streams` is called then, and
    /// connections are cut a moment later); then waits for the orchestrator's drain.
    pub async fn serve<F>(
        self,
        serve: impl FnOnce(StopSignal) -> F,
        orchestrator: Orchestrator,
        close_streams: impl FnOnce() + Send + 'static,
    ) -> anyhow::Result<()>
    where
        F: IntoFuture<Output = std::io::Result<()>>,
    {
        let Shutdown { settings, draining } = self;
        let cut = Arc::new(Notify::new());
        let drained: Arc<Mutex<Option<JoinHandle<usize>>>> = Arc::default();
        let signal: StopSignal = Box::pin({
            let cut = cut.clone();
            let drained = drained.clone();
            async move {
                crate::serve::shutdown_signal().await;
                tracing::info!(
                    delay = ?settings.shutdown_delay, grace = ?settings.shutdown_grace,
                    "shutting down: readiness answers 503, no new runtime tasks"
                );
                draining.store(true, Ordering::Relaxed);
                let drain =
                    tokio::spawn(async move { orchestrator.drain(settings.shutdown_grace).await });
                *drained
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(drain);
                tokio::spawn(async move {
                    tokio::time::sleep(settings.shutdown_delay + settings.shutdown_grace).await;
                    close_streams();
                    tokio::time::sleep(LAST_EVENT).await;
                    cut.notify_one();
                });
                tokio::time::sleep(settings.shutdown_delay).await;
                tracing::info!("no new connections; finishing the requests in flight");
            }
        });
        tokio::select! {
            served = serve(signal).into_future() => served.context("serving HTTP")?,
            () = cut.notified() => {
                tracing::warn!("the shutdown grace is over with requests still in flight: they are cut");
            }
        }
        let drain = drained
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(drain) = drain
            && let Ok(running) = drain.await
            && running > 0
        {
            tracing::warn!(
                tasks = running,
                "runtime tasks still running after the grace: handing them back"
            );
        }
        Ok(())
    }
}
