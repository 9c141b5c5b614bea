//! The replicas serving this installation, as each reports itself: when it started, when it
//! was last seen, whether it leads the reconciler, whether it is shutting down.

use crate::Orchestrator;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use time::OffsetDateTime;

/// How often a replica says it is alive.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A replica not seen for this long is shown as gone.
pub const GONE_AFTER_SECS: i64 = 30;

/// One replica as the list shows it.
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    pub hostname: String,
    pub version: String,
    pub started_at: OffsetDateTime,
    pub seen_at: OffsetDateTime,
    pub leader_since: Option<OffsetDateTime>,
    pub draining_at: Option<OffsetDateTime>,
}

pub(crate) async fn report_forever(orchestrator: &Orchestrator) {
    let inner = &orchestrator.inner;
    loop {
        if !orchestrator.stopping() {
            let seen = sqlx::query!(
                "INSERT INTO control_replicas (id, hostname, version) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                inner.worker_id,
                crate::hostname(),
                env!("CARGO_PKG_VERSION")
            )
            .execute(&inner.pool)
            .await;
            if let Err(err) = seen {
                tracing::debug!(error = %err, "could not report this replica");
            }
        }
        tokio::time::sleep(REPORT_EVERY).await;
    }
}

/// Marks the replica as the leader, over the leader's own session.
pub(crate) async fn leading_on(conn: &mut PgConnection, replica: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM control_replicas WHERE seen_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "UPDATE control_replicas SET leader_since = NULL WHERE leader_since IS NOT NULL AND id <> $1",
        replica
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO control_replicas (id, hostname, version, leader_since) VALUES ($1, $2, $3, now())
         ON CONFLICT (id) DO UPDATE SET leader_since = now(), seen_at = now()",
        replica,
        crate::hostname(),
        env!("CARGO_PKG_VERSION")
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears the replica's leader mark (best effort: the next leader clears it too).
pub(crate) async fn leading(pool: &PgPool, replica: &str, leading: bool) {
    if !leading {
        let _ = sqlx::query!(
            "UPDATE control_replicas SET leader_since = NULL WHERE id = $1",
            replica
        )
        .execute(pool)
        .await;
    }
}

pub(crate) async fn draining(pool: &PgPool, replica: &str) {
    let _ = sqlx::query!(
        "UPDATE control_replicas SET draining_at = now() WHERE id = $1",
        replica
    )
    .execute(pool)
    .await;
}

pub(crate) async fn leave(pool: &PgPool, replica: &str) {
    let _ = sqlx::query!("DELETE FROM control_replicas WHERE id = $1", replica)
        .execute(pool)
        .await;
}

/// The replicas seen lately (and those gone within the hour), leader first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Replica>> {
    sqlx::query_as!(
        Replica,
        "SELECT id, hostname, version, started_at, seen_at, leader_since, draining_at
           FROM control_replicas
          WHERE seen_at > now() - interval '1 hour'
          ORDER BY leader_since IS NULL, started_at"
    )
    .fetch_all(pool)
    .await
}

impl Orchestrator {
    /// This replica's id (also the owner of the task leases it holds).
    pub fn replica_id(&self) -> &str {
        &self.inner.worker_id
    }
}
