//! The cluster's Pod states in the phases every engine reports.

use super::*;
use serde_json::json;

fn secret() -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": "clawloops-x-rt-a", "uid": "secret-uid",
            "labels": {"org.clawloops.runtime": "rt-a", "org.clawloops.owner": "u1"},
            "annotations": {"org.clawloops.config-hash": "h2", "org.clawloops.image": "img:1"}},
    }))
    .expect("secret")
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "clawloops-x-rt-a", "annotations": {"org.clawloops.config-hash": "h1"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "runtime", "image": "img:1",
            "ports": [{"containerPort": 18789}]}]},
        "status": status,
    }))
    .expect("pod")
}

fn seen(status: serde_json::Value) -> Observation {
    observation(&secret(), Some(&pod(status)), Waiting::default())
}

#[test]
fn no_pod_is_stopped_and_the_secret_is_the_handle() {
    let o = observation(&secret(), None, Waiting::default());
    assert_eq!(o.phase, Phase::Stopped { exit_code: None });
    assert_eq!(o.handle, "secret-uid");
    assert_eq!(o.owner, "u1");
    assert_eq!(o.config_hash.as_deref(), Some("h2"));
    assert!(o.endpoint.is_none());
}

#[test]
fn a_running_ready_pod_has_its_endpoint_and_node() {
    let o = seen(
        json!({"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [
        {"name": "runtime", "ready": true, "restartCount": 0, "image": "img:1", "imageID": "",
         "state": {"running": {}}}]}),
    );
    assert!(o.is_up(), "{o:?}");
    assert_eq!(o.endpoint.as_deref(), Some("http://10.1.0.7:18789"));
    assert_eq!(o.node.as_deref(), Some("n1"));
    // The running pod's hash, not the newer secret's.
    assert_eq!(o.config_hash.as_deref(), Some("h1"));
}

#[test]
fn an_ended_pod_is_stopped_with_its_exit_code_and_an_oom_says_so() {
    let o = seen(json!({"phase": "Failed", "containerStatuses": [
        {"name": "runtime", "ready": false, "restartCount": 0, "image": "img:1", "imageID": "",
         "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
    assert_eq!(
        o.phase,
        Phase::Stopped {
            exit_code: Some(137)
        }
    );
    assert!(
        o.reason.as_deref().is_some_and(|r| r.contains("memory")),
        "{o:?}"
    );
    assert!(o.endpoint.is_none());
}

#[test]
fn image_and_eviction_failures_and_lost_nodes() {
    let pull = seen(json!({"phase": "Pending", "containerStatuses": [
        {"name": "runtime", "ready": false, "restartCount": 0, "image": "img:1", "imageID": "",
         "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]}));
    assert_eq!(pull.phase, Phase::Failed { exit_code: None });
    assert!(
        pull.reason.as_deref().is_some_and(|r| r.contains("img:1")),
        "{pull:?}"
    );
    assert!(
        matches!(&pull.blocked, Some(DriverError::ImageMissing(what)) if what.contains("img:1")),
        "{pull:?}"
    );
    let evicted = seen(json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory."}));
    assert_eq!(evicted.phase, Phase::Failed { exit_code: None });
    assert!(
        evicted
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("low on resource"))
    );
    let lost = seen(json!({"phase": "Unknown"}));
    assert_eq!(lost.phase, Phase::NodeDown);
    assert!(lost.reason.as_deref().is_some_and(|r| r.contains("n1")));
}

#[test]
fn a_waiting_pod_says_what_it_waits_for() {
    let claim: PersistentVolumeClaim =
        serde_json::from_value(json!({"status": {"phase": "Pending"}})).expect("claim");
    let unscheduled = pod(
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
        "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
    );
    let waiting = Waiting {
        claim: Some(&claim),
        provisioning_failed: None,
    };
    let o = observation(&secret(), Some(&unscheduled), waiting);
    assert_eq!(o.phase, Phase::Starting);
    // Room on a node may yet be found: waiting, not blocked.
    assert_eq!(o.blocked, None);
    let reason = o.reason.unwrap_or_default();
    assert!(
        reason.contains("Insufficient memory") && reason.contains("workspace volume"),
        "{reason}"
    );

    // A storage class that does not exist blocks the start; another provisioning failure is
    // only said.
    let missing = r#"storageclass.storage.k8s.io "fast" not found"#;
    let o = observation(
        &secret(),
        Some(&unscheduled),
        Waiting {
            provisioning_failed: Some(missing),
            ..waiting
        },
    );
    assert_eq!(o.blocked, Some(DriverError::StorageMissing(missing.into())));
    assert!(o.reason.is_some_and(|r| r.contains(missing)));
    let o = observation(
        &secret(),
        Some(&unscheduled),
        Waiting {
            provisioning_failed: Some("failed to provision volume: timeout"),
            ..waiting
        },
    );
    assert_eq!(o.blocked, None);
    assert!(o.reason.is_some_and(|r| r.contains("timeout")));
    let stopping: Pod = {
        let mut p = pod(json!({"phase": "Running"}));
        p.metadata.deletion_timestamp = serde_json::from_value(json!("2026-12-05T12:00:00Z")).ok();
        p
    };
    assert!(!is_live(&stopping));
    assert_eq!(
        observation(&secret(), Some(&stopping), Waiting::default()).phase,
        Phase::Stopped { exit_code: None }
    );
}
