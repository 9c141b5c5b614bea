//! A runtime's workspace claim, read while its Pod waits, and why the cluster has not
//! provisioned it (the claim's `ProvisioningFailed` events).

use super::{KubeDriver, classify, errors};
use crate::DriverError;
use ::kube::api::ListParams;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};

impl KubeDriver {
    /// The runtime's workspace claim, when it exists.
    pub(super) async fn claim(
        &self,
        runtime_id: &str,
    ) -> Result<Option<PersistentVolumeClaim>, DriverError> {
        let name = self.names(runtime_id).volume();
        self.api::<PersistentVolumeClaim>()
            .get_opt(&name)
            .await
            .map_err(|e| classify(&e, None))
    }

    /// The message of the newest `ProvisioningFailed` event about the claim `name`. Events
    /// only explain: where the role may not read them (403) there is less to say, not an error.
    pub(super) async fn provisioning_failure(
        &self,
        name: &str,
    ) -> Result<Option<String>, DriverError> {
        let params = ListParams::default().fields(&format!(
            "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name}"
        ));
        match self.api::<Event>().list(&params).await {
            Ok(list) => Ok(newest_failure(list.items)),
            Err(e) if errors::status(&e) == Some(403) => Ok(None),
            Err(e) => Err(classify(&e, None)),
        }
    }
}

/// Whether the claim still waits for a volume.
pub fn is_unbound(claim: &PersistentVolumeClaim) -> bool {
    claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound")
}

/// The newest provisioning failure's message among a claim's events.
fn newest_failure(events: Vec<Event>) -> Option<String> {
    events
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_provisioning_failure_is_the_one_said() {
        let event = |reason: &str, at: &str, message: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": format!("e-{at}")},
                "involvedObject": {"kind": "PersistentVolumeClaim", "name": "w"},
                "reason": reason, "message": message, "lastTimestamp": at,
            }))
            .expect("event")
        };
        let events = vec![
            event("ProvisioningFailed", "2026-12-05T10:00:00Z", "old"),
            event("ProvisioningFailed", "2026-12-05T10:05:00Z", "new"),
            event("ExternalProvisioning", "2026-12-05T10:09:00Z", "waiting"),
        ];
        assert_eq!(newest_failure(events).as_deref(), Some("new"));
        assert_eq!(newest_failure(Vec::new()), None);
    }
}
