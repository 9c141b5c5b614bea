//! A runtime as the cluster reports it: its Secret (it exists), its Pod (whether and how it
//! runs) and, while it waits, its workspace claim, in the phases every engine reports.

use super::annotations;
use crate::{DriverError, Observation, Phase, labels};
use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, ContainerStateWaiting, PersistentVolumeClaim, Pod, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Waiting reasons that mean the image cannot be had.
const IMAGE_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting reasons that mean the Pod cannot start as defined.
const CONFIG_FAILURES: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The runtime id an object belongs to.
pub fn runtime_of(meta: &ObjectMeta) -> Option<String> {
    meta.labels.as_ref()?.get(labels::RUNTIME).cloned()
}

/// Whether the Pod is running or on its way (not ended, not being deleted).
pub fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && matches!(pod_phase(pod), "Pending" | "Running" | "Unknown")
}

/// Whether the Pod has not started yet.
pub fn is_pending(pod: &Pod) -> bool {
    pod_phase(pod) == "Pending"
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// While the Pod waits: its workspace claim, and the last reason the cluster gave for not
/// provisioning it (a `ProvisioningFailed` event's message).
#[derive(Debug, Clone, Copy, Default)]
pub struct Waiting<'a> {
    pub claim: Option<&'a PersistentVolumeClaim>,
    pub provisioning_failed: Option<&'a str>,
}

/// The runtime's observation from its Secret, its Pod (when there is one) and, while the Pod
/// waits, its workspace claim.
pub fn observation(secret: &Secret, pod: Option<&Pod>, waiting: Waiting<'_>) -> Observation {
    let annotation = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    let owner = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::OWNER).cloned())
        .unwrap_or_default();
    let (phase, ready, reason) = match pod {
        None => (Phase::Stopped { exit_code: None }, false, None),
        Some(pod) => pod_state(pod, waiting),
    };
    let blocked = pod.and_then(|pod| blocker(pod, waiting));
    let endpoint = pod.filter(|_| phase == Phase::Running).and_then(endpoint);
    Observation {
        runtime_id: runtime_of(&secret.metadata).unwrap_or_default(),
        owner,
        handle: secret.metadata.uid.clone().unwrap_or_default(),
        phase,
        ready,
        // The hash of the Pod that runs, when one does (the Secret may be newer).
        config_hash: pod
            .and_then(|p| {
                p.metadata
                    .annotations
                    .as_ref()?
                    .get(annotations::CONFIG_HASH)
                    .cloned()
            })
            .or_else(|| annotation(annotations::CONFIG_HASH)),
        image: annotation(annotations::IMAGE).unwrap_or_default(),
        endpoint,
        node: pod.and_then(|p| p.spec.as_ref()?.node_name.clone()),
        reason,
        blocked,
    }
}

/// What keeps the Pod from starting until someone acts: an image that cannot be pulled, or a
/// workspace claim whose storage class does not exist. (A Pod that waits for room on a node
/// may yet be scheduled: it is not blocked.)
fn blocker(pod: &Pod, waiting: Waiting<'_>) -> Option<DriverError> {
    if !is_live(pod) {
        return None;
    }
    let container = pod.status.as_ref()?.container_statuses.as_ref();
    let pulling = container
        .and_then(|c| c.first()?.state.as_ref()?.waiting.as_ref())
        .filter(|w| IMAGE_FAILURES.contains(&w.reason.as_deref().unwrap_or_default()));
    if let Some(waiting) = pulling {
        return Some(DriverError::ImageMissing(format!(
            "{} ({}: {})",
            image_of(pod),
            waiting.reason.as_deref().unwrap_or_default(),
            waiting.message.as_deref().unwrap_or("no message")
        )));
    }
    let unbound = waiting
        .claim
        .and_then(|c| c.status.as_ref()?.phase.as_deref())
        .is_some_and(|phase| phase != "Bound");
    let failed = waiting.provisioning_failed?;
    (unbound && is_missing_class(failed)).then(|| DriverError::StorageMissing(failed.to_owned()))
}

/// Whether a provisioning failure says the storage class does not exist (the API server's
/// words: `storageclass.storage.k8s.io "fast" not found`).
fn is_missing_class(message: &str) -> bool {
    message.contains("storageclass") && message.contains("not found")
}

fn image_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first()?.image.clone())
        .unwrap_or_default()
}

/// `http://<pod IP>:<port>`.
fn endpoint(pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .first()?
        .ports
        .as_ref()?
        .first()?
        .container_port;
    Some(if ip.contains(':') {
        format!("http://[{ip}]:{port}")
    } else {
        format!("http://{ip}:{port}")
    })
}

/// The phase, readiness and reason of a runtime whose Pod is `pod`.
fn pod_state(pod: &Pod, waiting: Waiting<'_>) -> (Phase, bool, Option<String>) {
    let stopped = Phase::Stopped { exit_code: None };
    if pod.metadata.deletion_timestamp.is_some() {
        return (stopped, false, Some("stopping".to_owned()));
    }
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    let state = container.and_then(|c| c.state.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    match pod_phase(pod) {
        "Running" => match terminated {
            Some(ended) => (
                Phase::Stopped {
                    exit_code: Some(i64::from(ended.exit_code)),
                },
                false,
                ended_reason(ended),
            ),
            None => (Phase::Running, container.is_some_and(|c| c.ready), None),
        },
        "Succeeded" | "Failed" => match terminated {
            Some(ended) => (
                Phase::Stopped {
                    exit_code: Some(i64::from(ended.exit_code)),
                },
                false,
                ended_reason(ended),
            ),
            // Ended without its container ever running: evicted, or refused by the node.
            None => {
                let why = status.and_then(|s| s.message.clone().or_else(|| s.reason.clone()));
                (
                    Phase::Failed { exit_code: None },
                    false,
                    why.or_else(|| Some("the pod failed".into())),
                )
            }
        },
        // The node stopped reporting: the Pod comes back with it or is replaced by the
        // reconciler once the cluster gives up on it.
        "Unknown" => (Phase::NodeDown, false, Some(node_lost(pod))),
        _ => match state.and_then(|s| s.waiting.as_ref()) {
            Some(waiting) if failed_waiting(waiting) => (
                Phase::Failed { exit_code: None },
                false,
                Some(waiting_reason(pod, waiting)),
            ),
            _ => (Phase::Starting, false, pending_reason(pod, waiting)),
        },
    }
}

fn failed_waiting(waiting: &ContainerStateWaiting) -> bool {
    let reason = waiting.reason.as_deref().unwrap_or_default();
    IMAGE_FAILURES.contains(&reason) || CONFIG_FAILURES.contains(&reason)
}

fn waiting_reason(pod: &Pod, waiting: &ContainerStateWaiting) -> String {
    let reason = waiting.reason.as_deref().unwrap_or_default();
    let message = waiting.message.as_deref().unwrap_or_default();
    if IMAGE_FAILURES.contains(&reason) {
        let image = image_of(pod);
        format!("the image {image} cannot be pulled ({reason}): {message}")
    } else {
        format!("the pod cannot start ({reason}): {message}")
    }
}

fn ended_reason(ended: &ContainerStateTerminated) -> Option<String> {
    match ended.reason.as_deref() {
        Some("OOMKilled") => Some("it ran out of memory (OOMKilled)".to_owned()),
        Some("Completed") | None => None,
        Some(other) => Some(ended.message.clone().unwrap_or_else(|| other.to_owned())),
    }
}

fn node_lost(pod: &Pod) -> String {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| "its node".to_owned());
    format!("the node {node} stopped reporting")
}

/// Why a Pod has not started: not scheduled (no room, no volume), or a workspace claim that
/// is not bound yet.
fn pending_reason(pod: &Pod, waiting: Waiting<'_>) -> Option<String> {
    let unscheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "not scheduled yet".to_owned())
        });
    let unbound = waiting
        .claim
        .and_then(|c| c.status.as_ref()?.phase.clone())
        .filter(|phase| phase != "Bound")
        .map(|phase| match waiting.provisioning_failed {
            Some(failed) => format!("its workspace volume is {}: {failed}", phase.to_lowercase()),
            None => format!(
                "its workspace volume is {} (not provisioned yet)",
                phase.to_lowercase()
            ),
        });
    match (unscheduled, unbound) {
        (Some(why), Some(volume)) => Some(format!("{volume}; {why}")),
        (why, volume) => why.or(volume),
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
