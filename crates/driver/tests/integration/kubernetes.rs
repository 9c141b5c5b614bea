//! The Kubernetes driver against the in-test API server (`clawloops_testkit::kubesim`), whose
//! kubelet runs Pods on the local Docker engine: the conformance suite, the cluster's refusals
//! as clear errors, and watches that survive history compaction (410 Gone).

use crate::conformance::{self, Hardening, Target};
use crate::support::{CONFIG, GRACE, running, stub_image, until};
use async_trait::async_trait;
use clawloops_driver::kubernetes::{KubeDriver, KubeSettings, quantity_bytes};
use clawloops_driver::{DriverError, Phase, RuntimeDriver, RuntimeSpec};
use clawloops_testkit::kubesim::KubeSim;
use std::time::Duration;

/// A driver for a fresh installation in a namespace of its own on a fresh simulator.
pub struct KubeTarget {
    pub sim: KubeSim,
    pub driver: KubeDriver,
    pub instance: String,
    pub namespace: String,
}

impl KubeTarget {
    pub async fn new() -> KubeTarget {
        let sim = KubeSim::start().await;
        let instance = format!("test-{}", uuid::Uuid::new_v4().simple());
        let namespace = format!("ns-{}", &instance[5..13]);
        let mut settings = KubeSettings::new(&namespace);
        settings.storage_class = Some("standard".into());
        settings.entry_ip = Some([10, 96, 0, 80].into());
        let driver = KubeDriver::new(sim.client(&namespace), settings, &instance);
        KubeTarget {
            sim,
            driver,
            instance,
            namespace,
        }
    }

    /// A stand-in for Traefik (the stub, labelled as the entry proxy) in the namespace: its
    /// pod IP.
    async fn entry_proxy(&self) -> String {
        use k8s_openapi::api::core::v1::Pod;
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "traefik", "labels": {"app.kubernetes.io/name": "traefik"}},
            "spec": {"containers": [{"name": "traefik", "image": stub_image()}]},
        }))
        .expect("pod");
        let api: kube::Api<Pod> =
            kube::Api::namespaced(self.sim.client(&self.namespace), &self.namespace);
        api.create(&kube::api::PostParams::default(), &pod)
            .await
            .expect("entry proxy pod");
        for _ in 0..100 {
            let seen = self.sim.object("pods", &self.namespace, "traefik");
            if let Some(ip) = seen.as_ref().and_then(|p| p["status"]["podIP"].as_str()) {
                return ip.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the entry proxy pod never ran");
    }

    fn pod(&self, spec: &RuntimeSpec) -> serde_json::Value {
        self.sim
            .object("pods", &self.namespace, &spec.names().base)
            .expect("the runtime's pod")
    }
}

impl Drop for KubeTarget {
    fn drop(&mut self) {
        clawloops_testkit::remove_installation(&self.instance);
    }
}

#[async_trait]
impl Target for KubeTarget {
    fn driver(&self) -> &dyn RuntimeDriver {
        &self.driver
    }

    fn spec(&self, name: &str) -> RuntimeSpec {
        let mut spec = crate::support::spec(&self.instance, name, stub_image());
        spec.limits.disk_mb = Some(256);
        spec
    }

    async fn hardening(&self, spec: &RuntimeSpec) -> Hardening {
        let pod = self.pod(spec);
        let security = &pod["spec"]["containers"][0]["securityContext"];
        let pod_security = &pod["spec"]["securityContext"];
        assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
        assert_eq!(pod_security["runAsNonRoot"], true);
        assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
        let limits = &pod["spec"]["containers"][0]["resources"]["limits"];
        assert!(limits["ephemeral-storage"].is_string(), "{limits}");
        Hardening {
            read_only_root: security["readOnlyRootFilesystem"] == true,
            no_capabilities: security["capabilities"]["drop"] == serde_json::json!(["ALL"]),
            no_new_privileges: Some(security["allowPrivilegeEscalation"] == false),
            memory_bytes: limits["memory"]
                .as_str()
                .and_then(quantity_bytes)
                .and_then(|b| i64::try_from(b).ok())
                .unwrap_or_default(),
            pids: None,
            user: format!(
                "{}:{}",
                pod_security["runAsUser"], pod_security["runAsGroup"]
            ),
        }
    }

    async fn workspace_exists(&self, spec: &RuntimeSpec) -> bool {
        self.sim
            .object(
                "persistentvolumeclaims",
                &self.namespace,
                &spec.volume_name(),
            )
            .is_some()
    }

    async fn reach_from(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String> {
        let pod = spec.names().base;
        targets
            .iter()
            .map(|t| self.sim.reach(&self.namespace, &pod, t))
            .collect()
    }

    fn forbidden(&self) -> Vec<String> {
        // The API server, the cloud metadata address, a private address, a public one (no
        // public egress here), and the entry proxy's address on another port than the
        // gateway's.
        let api = self.sim.url.trim_start_matches("http://").to_owned();
        vec![
            api,
            "169.254.169.254:80".into(),
            "10.0.0.1:443".into(),
            "1.1.1.1:443".into(),
            "10.96.0.80:22".into(),
        ]
    }
}

#[tokio::test]
async fn the_kubernetes_driver_passes_the_conformance_suite() {
    let target = KubeTarget::new().await;
    conformance::suite(&target).await;
}

#[tokio::test]
async fn the_objects_are_labelled_owned_and_locked_down() {
    let t = KubeTarget::new().await;
    let d = &t.driver;
    d.ensure_isolation().await.expect("baseline policy");
    let spec = t.spec("objects");
    running(d, &spec).await;
    let base = spec.names().base;
    let secret = t
        .sim
        .object("secrets", &t.namespace, &base)
        .expect("secret");
    let pod = t.pod(&spec);
    // The pod and its policy are owned by the secret: a cluster's garbage collector removes
    // them with it.
    for owned in [
        &pod,
        &t.sim
            .object("networkpolicies", &t.namespace, &base)
            .expect("policy"),
    ] {
        assert_eq!(
            owned["metadata"]["ownerReferences"][0]["uid"], secret["metadata"]["uid"],
            "{owned}"
        );
        assert_eq!(
            owned["metadata"]["labels"]["org.clawloops.instance"],
            t.instance.as_str()
        );
    }
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["enableServiceLinks"], false);
    // The workspace claim is sized by the disk limit and outlives the runtime.
    let claim = t
        .sim
        .object("persistentvolumeclaims", &t.namespace, &spec.volume_name())
        .expect("claim");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "256Mi");
    assert!(claim["metadata"]["ownerReferences"].is_null());
    // Only the entry proxy reaches the runtime, on its port; the runtime reaches the entry
    // proxy's gateway port and DNS only.
    let entry_ip = t.entry_proxy().await;
    let runtime_ip = t.pod(&spec)["status"]["podIP"]
        .as_str()
        .expect("pod ip")
        .to_owned();
    assert_eq!(
        t.sim
            .reach(&t.namespace, "traefik", &format!("{runtime_ip}:18789")),
        "connected"
    );
    assert_ne!(
        t.sim
            .reach(&t.namespace, "traefik", &format!("{runtime_ip}:22")),
        "connected"
    );
    assert_eq!(
        t.sim
            .reach(&t.namespace, &base, &format!("{entry_ip}:8001")),
        "connected"
    );
    assert_ne!(
        t.sim
            .reach(&t.namespace, &base, &format!("{entry_ip}:8080")),
        "connected"
    );
    let policy = t
        .sim
        .object("networkpolicies", &t.namespace, &base)
        .expect("policy");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "traefik"
    );
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 18789);
    assert_eq!(policy["spec"]["egress"][0]["ports"][0]["port"], 8001);
    assert_eq!(policy["spec"]["egress"][1]["ports"][0]["port"], 53);
    assert_eq!(policy["spec"]["egress"].as_array().map(Vec::len), Some(2));
    // With public egress: public addresses, never private ranges or the metadata address.
    let mut public = t.spec("public");
    public.egress = clawloops_driver::firewall::Egress::Public;
    running(d, &public).await;
    let pod = public.names().base;
    assert_eq!(t.sim.reach(&t.namespace, &pod, "1.1.1.1:443"), "connected");
    for private in ["169.254.169.254:80", "10.0.0.1:443", "192.168.1.1:22"] {
        assert_ne!(
            t.sim.reach(&t.namespace, &pod, private),
            "connected",
            "{private}"
        );
    }
    // The baseline denies everything to a runtime pod whose own policy is gone.
    let baseline = t
        .sim
        .objects("networkpolicies", &t.namespace)
        .into_iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-runtimes-deny"))
        })
        .expect("baseline");
    assert_eq!(
        baseline["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert!(baseline["spec"]["ingress"].is_null() && baseline["spec"]["egress"].is_null());
    t.teardown(&[spec, public]).await;
}

#[tokio::test]
async fn refusals_of_the_cluster_become_clear_errors() {
    let t = KubeTarget::new().await;
    let d = &t.driver;
    let spec = t.spec("refused");
    t.sim.refuse(
        "create",
        "secrets",
        403,
        "Forbidden",
        "secrets is forbidden: User \"system:serviceaccount:clawloops:control-plane\" cannot create resource \"secrets\"",
        1,
    );
    let err = d.ensure(&spec, CONFIG, false).await.expect_err("RBAC");
    assert!(matches!(err, DriverError::Forbidden(_)), "{err}");
    d.ensure(&spec, CONFIG, false).await.expect("allowed again");
    t.sim.refuse(
        "create",
        "pods",
        403,
        "Forbidden",
        "pods \"x\" is forbidden: exceeded quota: runtimes, requested: limits.memory=64Mi, used: limits.memory=2Gi, limited: limits.memory=2Gi",
        1,
    );
    let err = d
        .set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect_err("quota");
    assert!(matches!(err, DriverError::QuotaExceeded(_)), "{err}");
    // A bad definition is the API server's 422, not a crash.
    let mut bad = t.spec("bad");
    bad.profile.tmpfs = vec![("/tmp".into(), "rw".into())];
    bad.limits.cpus = 0.5;
    t.sim.refuse(
        "create",
        "networkpolicies",
        422,
        "Invalid",
        "NetworkPolicy \"x\" is invalid: spec.podSelector: Invalid value",
        1,
    );
    let err = d.prepare(&bad).await.expect_err("invalid");
    assert!(matches!(err, DriverError::Rejected(_)), "{err}");
    // A storage class that does not exist: the runtime cannot start until someone acts, and
    // the claim's ProvisioningFailed event says why.
    let mut settings = d.settings().clone();
    settings.storage_class = Some("fast-ssd".into());
    let other = KubeDriver::new(t.sim.client(&t.namespace), settings, &t.instance);
    let waiting = t.spec("nostorage");
    other.prepare(&waiting).await.expect("prepare");
    other.ensure(&waiting, CONFIG, false).await.expect("ensure");
    other
        .set_running(&waiting.runtime_id, true, GRACE)
        .await
        .expect("start");
    let seen = until(&other, &waiting.runtime_id, "blocked on its volume", |o| {
        o.is_some_and(|o| o.blocked.is_some())
    })
    .await
    .expect("observed");
    assert_eq!(seen.phase, Phase::Starting, "{seen:?}");
    assert!(
        matches!(&seen.blocked, Some(DriverError::StorageMissing(why)) if why.contains("\"fast-ssd\" not found")),
        "{seen:?}"
    );
    assert!(
        seen.reason
            .as_deref()
            .is_some_and(|r| r.contains("workspace volume is pending") && r.contains("fast-ssd")),
        "{seen:?}"
    );
    t.teardown(&[spec, waiting]).await;
}

#[tokio::test]
async fn a_stop_that_outlives_the_watch_history_still_completes() {
    let t = KubeTarget::new().await;
    let d = &t.driver;
    let spec = t.spec("compact");
    running(d, &spec).await;
    // The kubelet holds the deletion while history is compacted under the stop's watch: the
    // watch ends, resumes into compacted history (410 Gone), lists again and sees the end.
    t.sim.hold_deletions(true);
    let stop = d.set_running(&spec.runtime_id, false, Duration::from_secs(5));
    let other = t.spec("other");
    let compact = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Writes the stop's watch does not select: it hears of them as bookmarks.
        d.ensure(&other, CONFIG, false)
            .await
            .expect("another runtime");
        tokio::time::sleep(Duration::from_millis(800)).await;
        t.sim.compact();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        t.sim.hold_deletions(false);
    };
    let (stopped, ()) = tokio::join!(stop, compact);
    stopped.expect("stopped");
    assert!(
        t.sim.expired() > 0,
        "a watch resumed into compacted history"
    );
    assert!(t.sim.bookmarks() > 0, "bookmarks were sent");
    let seen = d
        .observe(&spec.runtime_id)
        .await
        .expect("observe")
        .expect("exists");
    assert_eq!(seen.phase, Phase::Stopped { exit_code: None });
    t.teardown(&[spec, other]).await;
}

#[tokio::test]
async fn the_entry_proxy_address_is_read_from_its_service() {
    use k8s_openapi::api::core::v1::Service;
    let t = KubeTarget::new().await;
    let mut settings = t.driver.settings().clone();
    settings.entry_ip = None;
    settings.entry_service = Some("clawloops-entry-runtime".into());
    settings.entry_sources = vec!["10.244.0.0/16".into()];
    let spec = t.spec("entry");
    let missing = KubeDriver::new(t.sim.client(&t.namespace), settings.clone(), &t.instance);
    let err = missing.prepare(&spec).await.expect_err("no service yet");
    assert!(matches!(err, DriverError::EntryProxyMissing(_)), "{err}");
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "clawloops-entry-runtime"},
        "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 8001}]},
    }))
    .expect("service");
    let api: kube::Api<Service> = kube::Api::namespaced(t.sim.client(&t.namespace), &t.namespace);
    api.create(&kube::api::PostParams::default(), &service)
        .await
        .expect("create");
    let driver = KubeDriver::new(t.sim.client(&t.namespace), settings, &t.instance);
    let prepared = driver.prepare(&spec).await.expect("prepare");
    assert_eq!(prepared.entry_ip, Some([10, 96, 0, 77].into()));
    assert_eq!(prepared.trusted_proxies, vec!["10.244.0.0/16".to_owned()]);
    t.teardown(&[spec]).await;
}
