//! The real thing on a real cluster, when one is named: `CLAWLOOPS_TEST_KUBECONFIG` (a
//! kubeconfig whose user may create namespaces and RBAC) and `CLAWLOOPS_TEST_KUBE_REGISTRY` (where
//! the cluster pulls `clawloops/clawloops:0.1.0`, `clawloops/traefik:3.7.15` and
//! `clawloops/runtime-stub:0.1.0` from; docs/kubernetes.md says how to push them). Installs the
//! platform from deploy/kubernetes (an overlay like the example, written here), starts one
//! user's runtime, reaches it through the entry proxy (a `kubectl port-forward` to the entry
//! Service), stops it, and uninstalls. Optional: `CLAWLOOPS_TEST_KUBE_POD_CIDR` (the pod
//! network; 10.244.0.0/16) and `CLAWLOOPS_TEST_KUBE_STORAGE_CLASS` (unset: the default class).
//! Without a cluster it says it was skipped, and why.

use crate::support::{Browser, card_until, join};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const HOST: &str = "claw.smoke.test";
const USER: &str = "smoke";

#[tokio::test]
async fn the_platform_installs_runs_a_runtime_and_uninstalls_on_a_real_cluster() {
    let (Some(kubeconfig), Some(registry)) = (
        std::env::var_os("CLAWLOOPS_TEST_KUBECONFIG"),
        std::env::var("CLAWLOOPS_TEST_KUBE_REGISTRY").ok(),
    ) else {
        println!(
            "SKIPPED: no Kubernetes cluster named (set CLAWLOOPS_TEST_KUBECONFIG and \
             CLAWLOOPS_TEST_KUBE_REGISTRY to run the install → runtime → uninstall smoke test; \
             docs/kubernetes.md). The driver, the reconciler and the control plane were tested \
             against the in-test API server instead."
        );
        return;
    };
    let kubectl = Kubectl(PathBuf::from(kubeconfig));
    let install = tempfile::tempdir().expect("tempdir");
    let admin_password = format!("smoke-{}", uuid::Uuid::new_v4().simple());
    let overlay = write_overlay(install.path(), &registry, &admin_password);
    kubectl.ok(&["apply", "-k", &overlay.to_string_lossy()]);
    // Uninstalled at the end, also after a failed assertion.
    let installed = Installed {
        kubectl: kubectl.clone(),
        overlay: overlay.clone(),
    };
    for (kind, name) in [
        ("statefulset", "postgres"),
        ("deployment", "litellm"),
        ("deployment", "control-plane"),
        ("deployment", "traefik"),
    ] {
        kubectl.ok(&[
            "-n",
            "clawloops",
            "rollout",
            "status",
            &format!("{kind}/{name}"),
            "--timeout=600s",
        ]);
    }

    let forward = PortForward::start(&kubectl);
    let browser = || browser(forward.port);
    let admin = browser();
    admin.login_ok("admin", &admin_password).await;
    let user = join(&admin, browser(), USER).await;
    let (status, card) = user.call("runtime/command", &[("command", "start")]).await;
    assert_eq!(status, 200, "{card}");
    card_until(&user, "running", Duration::from_secs(600), |c| {
        c["observed"] == "running" && c["task_status"] == "succeeded"
    })
    .await;

    // Through Traefik (at its next poll of the control plane): the owner passes with their
    // identity, the admin does not.
    let url = format!("http://{USER}.{HOST}/echo");
    let mut echo = None;
    for _ in 0..60 {
        let res = user.client.get(&url).send().await.expect("request");
        if res.status() == 200 {
            echo = Some(res.json::<serde_json::Value>().await.expect("echo"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let echo = echo.expect("the runtime answered its owner through the entry proxy");
    assert_eq!(
        echo["headers"]["x-forwarded-user"],
        serde_json::json!([USER])
    );
    let res = admin.client.get(&url).send().await.expect("request");
    assert_eq!(res.status(), 403, "another user");

    // A stop removes the Pod and keeps the workspace claim.
    let (status, card) = user.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(status, 200, "{card}");
    card_until(&user, "stopped", Duration::from_secs(300), |c| {
        c["observed"] == "stopped" && c["task_status"] == "succeeded"
    })
    .await;
    let selector = format!("org.clawloops.runtime=rt-{USER}");
    let runtimes = [
        "-n",
        "clawloops-runtimes",
        "get",
        "-l",
        &selector,
        "-o",
        "name",
    ];
    let left = kubectl.ok(&[&runtimes[..3], &["pods"], &runtimes[3..]].concat());
    assert!(left.trim().is_empty(), "the Pod is gone: {left}");
    let claims = kubectl.ok(&[&runtimes[..3], &["pvc"], &runtimes[3..]].concat());
    assert_eq!(claims.lines().count(), 1, "the workspace is kept: {claims}");

    drop(forward);
    drop(installed);
    let gone = kubectl.run(&["get", "namespace", "clawloops", "clawloops-runtimes"]);
    assert!(
        gone.as_ref().is_err_and(|e| e.contains("NotFound")),
        "uninstalled: {gone:?}"
    );
}

/// The overlay the smoke test installs renders (checked here, where no cluster is): the
/// registry's images, the stub runtime, the entry host and fresh secrets.
#[test]
fn the_smoke_overlay_renders_with_the_registry_images_and_fresh_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = write_overlay(dir.path(), "registry.test:5000/", "smoke-password-1");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output();
    let Ok(out) = out else {
        assert!(std::env::var_os("CI").is_none(), "kubectl is missing");
        println!("SKIPPED: no kubectl to render the overlay");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "image: registry.test:5000/clawloops/clawloops:0.1.0",
        "image: registry.test:5000/clawloops/traefik:3.7.15",
        "CLAWLOOPS_RUNTIME_IMAGE: registry.test:5000/clawloops/runtime-stub:0.1.0",
        "CLAWLOOPS_RUNTIME_PROFILE: stub",
        &format!("public-host: {HOST}"),
    ] {
        assert!(
            text.contains(wanted),
            "no {wanted:?} in the rendered overlay"
        );
    }
    assert!(
        !text.contains("example.org"),
        "the example's host is replaced"
    );
    // The secrets are generated, base64 in the Secret; the installation key is 32 bytes.
    use base64::Engine;
    let key = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret-key: "))
        .expect("the secret key");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("base64");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("the key is base64 too");
    assert_eq!(key.len(), 32);
}

/// `kubectl --kubeconfig …`.
#[derive(Clone)]
struct Kubectl(PathBuf);

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.0).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self.command(args).output().expect("kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }
}

/// Uninstalls when dropped.
struct Installed {
    kubectl: Kubectl,
    overlay: PathBuf,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let overlay = self.overlay.to_string_lossy().into_owned();
        let _ = self.kubectl.run(&[
            "delete",
            "-k",
            &overlay,
            "--wait=true",
            "--timeout=600s",
            "--ignore-not-found",
        ]);
    }
}

/// `kubectl port-forward` to the entry Service's HTTP port, on a free local port.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn start(kubectl: &Kubectl) -> PortForward {
        use std::io::BufRead;
        let mut child = kubectl
            .command(&[
                "-n",
                "clawloops",
                "port-forward",
                "service/clawloops-entry",
                ":80",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let stdout = child.stdout.take().expect("stdout");
        // "Forwarding from 127.0.0.1:43127 -> 8000"
        let port = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                let rest = line.strip_prefix("Forwarding from 127.0.0.1:")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .expect("the forwarded port");
        PortForward { child, port }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser whose requests for the installation's hosts go to the forwarded port.
fn browser(port: u16) -> Browser {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .resolve(HOST, local)
        .resolve(&format!("{USER}.{HOST}"), local)
        .no_proxy()
        .build()
        .expect("client");
    Browser {
        client,
        jar,
        base: format!("http://{HOST}"),
    }
}

/// 32 random bytes in base64 (an installation key).
fn random_key() -> String {
    use base64::Engine;
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A copy of deploy/ with an overlay for this cluster: the images from `registry`, the stub
/// runtime, fresh secrets. Returns the overlay's directory.
fn write_overlay(dir: &Path, registry: &str, admin_password: &str) -> PathBuf {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&deploy)
        .arg(dir)
        .status()
        .expect("cp");
    assert!(status.success());
    let overlay = dir.join("deploy/kubernetes/overlays/smoke");
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    let registry = registry.trim_end_matches('/');
    let cidr = std::env::var("CLAWLOOPS_TEST_KUBE_POD_CIDR").unwrap_or("10.244.0.0/16".into());
    let storage = std::env::var("CLAWLOOPS_TEST_KUBE_STORAGE_CLASS")
        .map(|class| format!("  CLAWLOOPS_KUBERNETES_STORAGE_CLASS: {class}\n"))
        .unwrap_or_default();
    let files = [
        (
            "kustomization.yaml",
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 bases:\n  - ../../base\nimages:\n\
                 \x20 - name: clawloops/clawloops\n    newName: {registry}/clawloops/clawloops\n    newTag: 0.1.0\n\
                 \x20 - name: clawloops/traefik\n    newName: {registry}/clawloops/traefik\n    newTag: 3.7.15\n\
                 patchesStrategicMerge:\n  - settings.yaml\n\
                 secretGenerator:\n  - name: clawloops-secrets\n    namespace: clawloops\n    env: secrets.env\n"
            ),
        ),
        (
            "settings.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: control-plane\n  namespace: clawloops\n\
                 data:\n  CLAWLOOPS_PUBLIC_URL: http://{HOST}/\n  CLAWLOOPS_WORKSPACE_DOMAIN: {HOST}\n\
                 \x20 CLAWLOOPS_KUBERNETES_ENTRY_SOURCES: '[\"{cidr}\"]'\n  CLAWLOOPS_TRUSTED_PROXIES: '[\"{cidr}\"]'\n\
                 \x20 CLAWLOOPS_RUNTIME_PROFILE: stub\n  CLAWLOOPS_RUNTIME_DISK_MB: \"256\"\n\
                 \x20 CLAWLOOPS_RUNTIME_IMAGE: {registry}/clawloops/runtime-stub:0.1.0\n{storage}\
                 ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: entry\n  namespace: clawloops\n\
                 data:\n  public-host: {HOST}\n"
            ),
        ),
        (
            "secrets.env",
            format!(
                "secret-key={}\npostgres-password={}\nadmin-password={admin_password}\n\
                 litellm-master-key=sk-{}\n",
                random_key(),
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple(),
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(overlay.join(name), text).expect("overlay file");
    }
    overlay
}
