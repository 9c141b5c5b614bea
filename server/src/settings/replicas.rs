//! Settings for running as one of several replicas: the shared key, shutdown, leases.

use super::*;
use std::time::Duration;

/// How a replica shuts down and shares work with the others.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSettings {
    /// After SIGTERM: how long in-flight requests (streams included) and running tasks may
    /// take before the process ends anyway; tasks still running are handed back.
    pub shutdown_grace: Duration,
    /// After SIGTERM, readiness answers 503 this long while requests are still served, so the
    /// entry proxy's health check takes the replica out before it stops listening.
    pub shutdown_delay: Duration,
    /// A task's lease (a worker silent longer loses the task to another replica).
    pub task_lease: Duration,
    /// The reconciler leader's lease (a paused leader is replaced after it).
    pub leader_lease: Duration,
}

impl RawSettings {
    pub(super) fn replica_settings(&self) -> Result<ReplicaSettings, SettingsError> {
        for (name, value, range) in [
            ("shutdown_grace_secs", self.shutdown_grace_secs, 1..=3600),
            ("shutdown_delay_secs", self.shutdown_delay_secs, 0..=120),
            ("task_lease_secs", self.task_lease_secs, 2..=600),
            ("leader_lease_secs", self.leader_lease_secs, 2..=300),
        ] {
            if !range.contains(&value) {
                return Err(SettingsError::new(
                    name,
                    format!(
                        "must be between {} and {} seconds, got {value}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        if let Some(key) = &self.secret_key
            && clawloops_models::Sealer::from_base64(key.expose_secret()).is_err()
        {
            return Err(SettingsError::new(
                "secret_key",
                "must be 32 bytes, base64-encoded (make one with `openssl rand -base64 32`)",
            ));
        }
        Ok(ReplicaSettings {
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_secs),
            task_lease: Duration::from_secs(self.task_lease_secs),
            leader_lease: Duration::from_secs(self.leader_lease_secs),
        })
    }
}
