//! A runtime's Pod as the driver asks for it.

use super::*;
use crate::{Limits, Profile};

fn spec() -> RuntimeSpec {
    RuntimeSpec {
        runtime_id: "rt-alice".into(),
        owner: "u1".into(),
        instance: "inst-1".into(),
        image: "img:1".into(),
        profile: Profile {
            port: 18789,
            ready_path: "/readyz".into(),
            state_mount: "/state".into(),
            config_mount: Some("/etc/clawloops".into()),
            user: "1000:1000".into(),
            tmpfs: vec![("/tmp".into(), "rw,noexec,size=64m".into())],
            env: vec![("A".into(), "b".into())],
            health_command: Vec::new(),
        },
        limits: Limits {
            memory_mb: 512,
            cpus: 1.5,
            pids: 256,
            disk_mb: None,
        },
        config_hash: "h".into(),
        egress: Default::default(),
        placement: None,
    }
}

#[test]
fn the_pod_is_hardened_and_limited() {
    let settings = KubeSettings::new("runtimes");
    let pod = pod_spec(&spec(), &settings);
    let c = &pod.containers[0];
    let security = c.security_context.as_ref().expect("security");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let pod_security = pod.security_context.as_ref().expect("pod security");
    assert_eq!(pod_security.run_as_user, Some(1000));
    assert_eq!(pod_security.fs_group, Some(1000));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits");
    assert_eq!(limits["memory"].0, "512Mi");
    assert_eq!(limits["cpu"].0, "1500m");
    assert_eq!(limits["ephemeral-storage"].0, "1024Mi");
    let tmp = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "tmp-0")
        .and_then(|v| v.empty_dir.clone())
        .expect("tmpfs");
    assert_eq!(tmp.medium.as_deref(), Some("Memory"));
    assert_eq!(tmp.size_limit.map(|q| q.0).as_deref(), Some("64Mi"));
}

#[test]
fn the_claim_takes_the_disk_limit_or_the_default_size() {
    let mut settings = KubeSettings::new("runtimes");
    settings.storage_class = Some("fast".into());
    let mut spec = spec();
    let size = |claim: PersistentVolumeClaim| {
        claim
            .spec
            .and_then(|s| s.resources?.requests?.get("storage").cloned())
            .map(|q| q.0)
    };
    assert_eq!(size(claim(&spec, &settings)).as_deref(), Some("10240Mi"));
    spec.limits.disk_mb = Some(2048);
    let made = claim(&spec, &settings);
    assert_eq!(
        made.spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .as_deref(),
        Some("fast")
    );
    assert_eq!(size(made).as_deref(), Some("2048Mi"));
    assert_eq!(millicores(0.0001), "1m");
    assert_eq!(tmpfs_size("rw,size=2g"), Some("2Gi".into()));
    assert_eq!(tmpfs_size("rw"), None);
}

#[test]
fn a_pod_is_made_from_its_secret_and_owned_by_it() {
    let settings = KubeSettings::new("runtimes");
    let mut made = secret(&spec(), "{}", &settings);
    made.metadata.uid = Some("uid-1".into());
    let pod = pod_from(&made).expect("pod");
    assert_eq!(
        pod.metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.as_str()),
        Some("uid-1")
    );
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::PORT))
            .map(String::as_str),
        Some("18789")
    );
    made.metadata.annotations = None;
    assert!(pod_from(&made).is_none(), "no template, no pod");
}
