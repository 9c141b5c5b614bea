//! The control plane driving runtimes on the in-test Kubernetes API server
//! (`clawloops_testkit::kubesim`, whose kubelet runs Pods as containers on the local Docker
//! engine), behind a real Traefik joined to the pod network, as deploy/kubernetes runs Traefik
//! beside the runtimes in the cluster. The runtimes find the entry proxy through its Service,
//! as in the manifests.

use super::entry::{Entry, docker};
use clawloops_driver::kubernetes::KubeSettings;
use clawloops_server::settings::{Engine, KubernetesSettings};
use clawloops_testkit::kubesim::KubeSim;
use sqlx::PgPool;

/// Where runtimes live, and where the entry proxy's Service is (the manifests' names).
pub const RUNTIMES_NAMESPACE: &str = "clawloops-runtimes";
pub const ENTRY_NAMESPACE: &str = "clawloops";
pub const ENTRY_SERVICE: &str = "clawloops-entry-runtime";

impl Entry {
    /// Runtimes on a fresh simulated cluster, Traefik on its pod network.
    pub async fn start_kubernetes(pool: PgPool) -> Entry {
        let sim = KubeSim::start().await;
        let (ok, subnet) = docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            sim.network(),
        ]);
        assert!(ok, "the pod network: {subnet}");
        let api_url: url::Url = sim.url.parse().expect("the simulator's address");
        let mut entry = Entry::start_full(pool, false, false, move |s| {
            let mut driver = KubeSettings::new(RUNTIMES_NAMESPACE);
            driver.workspace_mb = 64;
            driver.entry_namespace = ENTRY_NAMESPACE.into();
            driver.entry_service = Some(ENTRY_SERVICE.into());
            // Runtimes believe identity headers from the pod network only.
            driver.entry_sources = vec![subnet];
            s.runtime.engine = Engine::Kubernetes(Box::new(KubernetesSettings {
                api_url: Some(api_url),
                driver,
            }));
            s.entry.proxy_container = None;
        })
        .await;

        // Traefik joins the pod network; its address there is the entry Service's cluster IP.
        let (ok, out) = docker(&["network", "connect", sim.network(), &entry.proxy]);
        assert!(ok, "traefik joined the pod network: {out}");
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            sim.network()
        );
        let (ok, ip) = docker(&["inspect", "-f", &format, &entry.proxy]);
        assert!(ok && !ip.is_empty(), "traefik's pod address: {ip}");
        let service: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": ENTRY_SERVICE, "namespace": ENTRY_NAMESPACE},
                "spec": {"clusterIP": ip, "selector": {"app.kubernetes.io/name": "traefik"},
                    "ports": [{"name": "runtime", "port": 8001, "targetPort": 8001}]},
            }))
            .expect("service");
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(
            sim.client(ENTRY_NAMESPACE),
            ENTRY_NAMESPACE,
        )
        .create(&kube::api::PostParams::default(), &service)
        .await
        .expect("the entry proxy's Service");
        entry.kube = Some(sim);
        entry
    }

    /// The simulated cluster these runtimes run on.
    pub fn on_kube(&self) -> &KubeSim {
        self.kube.as_ref().expect("a Kubernetes entry")
    }

    /// This installation's runtime Pods, by name.
    pub fn pods(&self) -> Vec<serde_json::Value> {
        self.on_kube()
            .objects("pods", RUNTIMES_NAMESPACE)
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["org.clawloops.instance"] == self.instance.as_str())
            .collect()
    }
}
