//! deploy/kubernetes: every manifest parses into its `k8s-openapi` type with no field the type
//! does not know (a misspelt or misplaced field is dropped by a real API server, or refused
//! with strict validation), and `kubectl kustomize` renders the example overlay into objects
//! that parse the same way and say what the docs promise.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every document of a YAML stream, as JSON.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            let value: serde_yaml_ng::Value =
                serde::Deserialize::deserialize(doc).expect("valid YAML");
            serde_json::to_value(value).expect("JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    doc: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Where `written` has something `typed` lost: a field the type does not know.
fn lost(written: &Value, typed: &Value, path: &str) -> Vec<String> {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => w
            .iter()
            .flat_map(|(k, v)| match t.get(k) {
                Some(tv) => lost(v, tv, &format!("{path}.{k}")),
                None if v.is_null() => Vec::new(),
                None => vec![format!("{path}.{k}")],
            })
            .collect(),
        (Value::Array(w), Value::Array(t)) => w
            .iter()
            .zip(t)
            .enumerate()
            .flat_map(|(i, (w, t))| lost(w, t, &format!("{path}[{i}]")))
            .collect(),
        // `"2"` and `2` for a quantity or an int-or-string are the same thing.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n))
            if n.to_string() == *s =>
        {
            Vec::new()
        }
        (w, t) if w == t => Vec::new(),
        (w, t) => vec![format!("{path}: {w} became {t}")],
    }
}

/// Parses `doc` into its type; the fields it lost, or why it does not parse.
fn check(doc: &Value) -> Result<(), String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let typed = match kind {
        "Namespace" => round_trip::<Namespace>(doc),
        "ServiceAccount" => round_trip::<ServiceAccount>(doc),
        "Role" => round_trip::<Role>(doc),
        "RoleBinding" => round_trip::<RoleBinding>(doc),
        "ConfigMap" => round_trip::<ConfigMap>(doc),
        "Secret" => round_trip::<Secret>(doc),
        "Deployment" => round_trip::<Deployment>(doc),
        "StatefulSet" => round_trip::<StatefulSet>(doc),
        "Service" => round_trip::<Service>(doc),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(doc),
        "NetworkPolicy" => round_trip::<NetworkPolicy>(doc),
        other => Err(format!("a kind this test does not know: {other:?}")),
    }?;
    let missing = lost(doc, &typed, kind);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("unknown or mistyped fields: {missing:?}"))
    }
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(manifests(&path));
        } else if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn every_manifest_parses_into_its_type_with_no_unknown_field() {
    let files = manifests(&deploy().join("kubernetes"));
    assert!(files.len() >= 8, "{files:?}");
    let mut kinds = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for doc in documents(&text) {
            check(&doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            kinds.push(doc["kind"].as_str().unwrap_or_default().to_owned());
        }
    }
    for wanted in [
        "Deployment",
        "StatefulSet",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(kinds.iter().any(|k| k == wanted), "no {wanted}: {kinds:?}");
    }
    // The checker itself: a misspelt field is caught.
    let typo = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"selectr": {"a": "b"}}});
    assert!(check(&typo).is_err_and(|e| e.contains("selectr")));
}

/// The example overlay, rendered by `kubectl kustomize` (with its example secrets).
fn rendered() -> Option<Vec<Value>> {
    let kubectl = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    if kubectl.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is missing: scripts/test.sh installs it"
        );
        eprintln!("SKIPPED: no kubectl on this machine to render the overlay");
        return None;
    }
    let copy = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(deploy())
        .arg(copy.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let overlay = copy.path().join("deploy/kubernetes/overlays/example");
    std::fs::copy(
        overlay.join("secrets.env.example"),
        overlay.join("secrets.env"),
    )
    .expect("secrets");
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(documents(&String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_example_overlay_renders_into_a_whole_installation() {
    let Some(objects) = rendered() else { return };
    for doc in &objects {
        check(doc).unwrap_or_else(|e| panic!("rendered {}: {e}", doc["metadata"]["name"]));
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(name))
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    // Two control-plane replicas, never both down by a voluntary disruption.
    let cp = find("Deployment", "control-plane");
    assert_eq!(cp["spec"]["replicas"], 2);
    assert_eq!(
        find("PodDisruptionBudget", "control-plane")["spec"]["minAvailable"],
        1
    );
    let image = cp["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    assert!(image.starts_with("registry.example.com/"), "{image}");
    // The overlay's settings reached the control plane, and its secrets are generated.
    let config = find("ConfigMap", "control-plane");
    assert_eq!(
        config["data"]["CLAWLOOPS_PUBLIC_URL"],
        "https://claw.example.org/"
    );
    assert_eq!(config["data"]["CLAWLOOPS_RUNTIME_ENGINE"], "kubernetes");
    let secret = find("Secret", "clawloops-secrets");
    let secret_name = secret["metadata"]["name"].as_str().unwrap_or_default();
    let mounted = cp["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"].as_str();
    assert_eq!(
        mounted,
        Some(secret_name),
        "the generated secret's name is used"
    );
    // The role grants what the driver uses, in the runtimes namespace only.
    let role = find("Role", "clawloops-runtime-driver");
    assert_eq!(role["metadata"]["namespace"], "clawloops-runtimes");
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
        })
        .collect();
    for needed in [
        "secrets",
        "pods",
        "pods/log",
        "persistentvolumeclaims",
        "networkpolicies",
    ] {
        assert!(resources.contains(&needed), "{needed}: {resources:?}");
    }
    assert!(
        objects.iter().all(|o| o["kind"] != "ClusterRole"),
        "no cluster-wide rights"
    );
    // The runtimes namespace enforces the restricted pod security standard.
    let runtimes = find("Namespace", "clawloops-runtimes");
    assert_eq!(
        runtimes["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}
