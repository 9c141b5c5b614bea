//! `runtime_engine = "kubernetes"`: the settings deploy/kubernetes gives the control plane load
//! as they are, and what is missing or malformed is refused by name.

use super::*;

/// The control plane's environment as the example overlay sets it: the base's ConfigMap, with
/// the overlay's settings over it.
fn manifest_env(jail: &mut Jail) {
    let base = include_str!("../../../../deploy/kubernetes/base/control-plane.yaml");
    let overlay = include_str!("../../../../deploy/kubernetes/overlays/example/settings.yaml");
    for text in [base, overlay] {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if value["kind"] != "ConfigMap" || value["metadata"]["name"] != "control-plane" {
                continue;
            }
            for (key, val) in value["data"].as_mapping().into_iter().flatten() {
                let (Some(key), Some(val)) = (key.as_str(), val.as_str()) else {
                    panic!("a setting that is not text: {key:?}");
                };
                // The secrets are files in the pod.
                if !key.ends_with("_FILE") {
                    jail.set_env(key, val);
                }
            }
        }
    }
}

#[test]
fn the_manifests_settings_load_as_a_kubernetes_engine() {
    jailed(|jail| {
        manifest_env(jail);
        let settings = load_in(jail, None).expect("the manifests' settings load");
        let Engine::Kubernetes(kube) = settings.runtime.engine else {
            panic!("not Kubernetes: {:?}", settings.runtime.engine);
        };
        let d = &kube.driver;
        assert_eq!(d.namespace, "clawloops-runtimes");
        assert_eq!(d.entry_namespace, "clawloops");
        assert_eq!(d.entry_service.as_deref(), Some("clawloops-entry-runtime"));
        assert_eq!(d.entry_labels["app.kubernetes.io/name"], "traefik");
        assert_eq!(d.entry_sources, vec!["10.244.0.0/16".to_owned()]);
        assert_eq!(d.storage_class.as_deref(), Some("standard"));
        assert_eq!(d.workspace_mb, 10240);
        assert!(kube.api_url.is_none(), "in-cluster credentials");
        Ok(())
    });
}

#[test]
fn a_cluster_without_what_it_needs_is_refused_by_name() {
    let refused = |adjust: &dyn Fn(&mut Jail), key: &str, words: &str| {
        refused(manifest_env, adjust, key, words);
    };

    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_ENTRY_SOURCES", "[]"),
        "kubernetes_entry_sources",
        "pod network",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_ENTRY_SOURCES", r#"["10.244.0.0/99"]"#),
        "kubernetes_entry_sources",
        "not an address or CIDR",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_NAMESPACE", "Runtimes_1"),
        "kubernetes_namespace",
        "not a namespace name",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_ENTRY_ADDRESS", "traefik.svc"),
        "kubernetes_entry_address",
        "not an IP address",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_ENTRY_LABELS", r#"{"bad key!"="x"}"#),
        "kubernetes_entry_labels",
        "is not a label",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_STORAGE_CLASS", "Fast SSD"),
        "kubernetes_storage_class",
        "not a storage class name",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_KUBERNETES_API_URL", "ftp://x"),
        "kubernetes_api_url",
        "http(s)",
    );
    refused(
        &|j| {
            j.set_env("CLAWLOOPS_RUNTIME_MANAGER_URL", "http://10.0.0.5:3001/");
            j.set_env("CLAWLOOPS_RUNTIME_MANAGER_SECRET", "x".repeat(40));
        },
        "runtime_manager_url",
        "must be unset",
    );
}
