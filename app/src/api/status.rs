//! The system status shown on the overview page.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A snapshot of the control plane's health, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// The running version.
    pub version: String,
    /// The git commit it was built from, when known.
    pub git_commit: Option<String>,
    /// When the running binary was built.
    #[serde(with = "time::serde::rfc3339")]
    pub built_at: OffsetDateTime,
    /// When the running process started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When this snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// The database part of the snapshot.
    pub database: DatabaseStatus,
    /// The control-plane replicas serving this installation, the reconciler's leader first.
    #[serde(default)]
    pub replicas: Vec<ReplicaStatus>,
}

/// One control-plane replica, as it last reported itself (every 5 s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `host-pid-random`: also the owner of the task leases it holds.
    pub id: String,
    pub hostname: String,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub seen_at: OffsetDateTime,
    /// It leads the reconciler.
    pub leader: bool,
    /// It is shutting down (readiness 503, no new tasks).
    pub draining: bool,
    /// It answered this very request.
    pub this: bool,
}

impl ReplicaStatus {
    /// Not heard from for longer than three reports and a margin: stopped, killed or cut off.
    pub fn gone(&self, now: OffsetDateTime) -> bool {
        now - self.seen_at > time::Duration::seconds(30)
    }
}

/// Whether the database answers, and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DatabaseStatus {
    /// The database answered.
    Up {
        /// PostgreSQL's `server_version`.
        server_version: String,
        /// How many schema migrations have been applied.
        migrations_applied: i64,
        /// The description of the newest applied migration.
        latest_migration: Option<String>,
        /// This installation's id (created by the first migration).
        instance_id: String,
        /// When this installation's database was created.
        #[serde(with = "time::serde::rfc3339")]
        installed_at: OffsetDateTime,
        /// How long the round trip took, in milliseconds.
        round_trip_ms: f64,
    },
    /// The database did not answer.
    Down {
        /// What the user should know, without internals.
        message: String,
    },
}

/// Reads the current system status (admins). A database that stops answering after the
/// caller's session was checked is part of the answer, not an error.
#[server(endpoint = "admin/status")]
pub async fn get_status() -> Result<SystemStatus, AppError> {
    use crate::ssr::{app_state, identity::auth::gate, respond};
    respond(async {
        gate::require(gate::Access::Admin).await?;
        let state = app_state()?;
        Ok(crate::ssr::status::snapshot(&state).await)
    })
    .await
}
