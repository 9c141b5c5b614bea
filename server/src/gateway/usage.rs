//! The request log: each finished request becomes one `usage_events` row and adds to its
//! day's `usage_daily` row. Requests only hand their record to a channel; one task writes them in
//! batches, so the response path never waits for the database.

use super::metrics::GatewayMetrics;
use std::time::Duration;
use tokio::sync::mpsc;

pub use clawloops_models::usage::Record;
use clawloops_models::usage::write;

/// Where requests hand their records.
#[derive(Clone)]
pub struct UsageLog {
    tx: mpsc::UnboundedSender<Record>,
    closing: std::sync::Arc<tokio::sync::Notify>,
}

/// The most rows one batch writes.
const BATCH: usize = 2000;

impl UsageLog {
    /// The log and the task that writes it (spawn the task).
    pub fn new(
        pool: sqlx::PgPool,
        metrics: GatewayMetrics,
    ) -> (UsageLog, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let closing = std::sync::Arc::new(tokio::sync::Notify::new());
        (
            UsageLog {
                tx,
                closing: closing.clone(),
            },
            write_until_closed(pool, rx, closing, metrics),
        )
    }

    /// Tells the writer to write what is queued and stop.
    pub fn close(&self) {
        self.closing.notify_one();
    }

    pub fn record(&self, record: Record) {
        if self.tx.send(record).is_err() {
            tracing::warn!("the usage writer has stopped; a request's usage was not recorded");
        }
    }
}

async fn write_until_closed(
    pool: sqlx::PgPool,
    mut rx: mpsc::UnboundedReceiver<Record>,
    closing: std::sync::Arc<tokio::sync::Notify>,
    metrics: GatewayMetrics,
) {
    let write_batch = |batch: Vec<Record>| {
        let (pool, metrics) = (pool.clone(), metrics.clone());
        async move {
            let result = write(&pool, &batch).await;
            metrics.usage_batch(batch.len(), result.is_ok());
            (batch, result)
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut closed = false;
    loop {
        if closed {
            // The server is stopping: write what is queued, in batches, then stop.
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
                if batch.len() == BATCH {
                    batch = written_at_shutdown(write_batch(batch).await);
                }
            }
            written_at_shutdown(write_batch(batch).await);
            return;
        }
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            () = closing.notified() => {
                closed = true;
                continue;
            }
        }
        // Let a burst gather into one transaction.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(200);
        loop {
            let (back, result) = write_batch(batch).await;
            batch = back;
            match result {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(error = %err, rows = batch.len(), "could not write usage; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        batch.clear();
    }
}

/// The batch back, emptied, after a last write that is not tried again.
fn written_at_shutdown((mut batch, result): (Vec<Record>, Result<(), sqlx::Error>)) -> Vec<Record> {
    if let Err(err) = result {
        tracing::warn!(error = %err, rows = batch.len(), "could not write usage at shutdown");
    }
    batch.clear();
    batch
}
