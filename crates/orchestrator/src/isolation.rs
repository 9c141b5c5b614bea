//! Whether runtimes are fenced off: the driver's host firewall, checked (and repaired) by the
//! orchestrator and remembered for the admin pages.

use crate::{Isolation, Orchestrator};

/// The host firewall for runtimes as the reconciler last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationStatus {
    /// `Ok` when runtimes are fenced off (or left to someone else by configuration); the
    /// driver's words otherwise.
    pub result: Result<Isolation, String>,
    /// When it was checked (None: not yet).
    pub checked_at: Option<time::OffsetDateTime>,
}

impl Orchestrator {
    /// Checks (and repairs) the host firewall that keeps runtimes to the entry proxy, and
    /// remembers the answer for the admin pages.
    pub async fn check_isolation(&self) -> IsolationStatus {
        let result = self
            .inner
            .driver
            .ensure_isolation()
            .await
            .map_err(|e| e.to_string());
        if let Err(err) = &result {
            tracing::error!(error = %err, "runtimes are not isolated: no runtime will start");
        }
        let status = IsolationStatus {
            result,
            checked_at: Some(time::OffsetDateTime::now_utc()),
        };
        if let Ok(mut last) = self.inner.isolation.lock() {
            *last = status.clone();
        }
        status
    }

    /// The last isolation check's answer.
    pub fn isolation(&self) -> IsolationStatus {
        self.inner
            .isolation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
