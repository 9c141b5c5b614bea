//! The Kubernetes implementation of [`RuntimeDriver`], in one namespace the installation owns.
//! Per runtime: a Secret (the rendered configuration, and the Pod template the runtime is
//! started from), a PersistentVolumeClaim (the workspace), a NetworkPolicy (ingress from the
//! entry proxy only, egress to the entry proxy's gateway port and DNS), and — while it runs —
//! one bare Pod with `restartPolicy: Never`.
//!
//! Why a bare Pod and not a one-replica Deployment or StatefulSet: the orchestrator is the
//! runtime's controller. It counts crashes, backs off and pauses a crash loop with a reason the
//! owner can read; a workload controller would restart the process behind its back
//! (`restartPolicy: Always` is all a Deployment allows) and hide the crashes in a
//! CrashLoopBackOff the guard cannot see. Stopping is deleting the Pod (the workspace and
//! configuration stay), starting is creating it from the template kept in the Secret, so any
//! control-plane replica can start a runtime another one ensured. See docs/kubernetes.md.
//!
//! The Secret is the runtime's anchor: the Pod and the NetworkPolicy name it as their owner,
//! so deleting it lets the cluster's garbage collector finish what a crashed remove left. The
//! workspace claim has no owner: it outlives a remove that keeps it.

use crate::{
    DiskUsage, DriverError, Isolation, Observation, Prepared, RuntimeDriver, RuntimeSpec, Stats,
    labels,
};
use ::kube::Client;
use ::kube::api::{Api, ListParams, LogParams};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

mod claim;
mod entry;
mod errors;
pub mod names;
mod objects;
mod observe;
mod policy;
mod stats;
mod watch;
mod write;

pub use errors::classify;
pub use names::{dns_label as is_dns_label, is_label, subdomain as is_subdomain};
pub use stats::{bytes as quantity_bytes, cores as quantity_cores};

/// Annotations on a runtime's Secret (label values are too short for a hash or an image).
pub mod annotations {
    /// The configuration hash the runtime was made from.
    pub const CONFIG_HASH: &str = "org.clawloops.config-hash";
    /// The image it runs.
    pub const IMAGE: &str = "org.clawloops.image";
    /// The Pod spec it is started from (JSON).
    pub const POD_SPEC: &str = "org.clawloops.pod-spec";
}

/// Where a runtime's traffic may come from and go to, in the cluster's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSettings {
    /// The namespace every runtime object lives in (the installation owns it).
    pub namespace: String,
    /// The workspace claims' storage class (`None`: the cluster's default).
    pub storage_class: Option<String>,
    /// A workspace claim's size when the runtime has no disk limit, in MiB.
    pub workspace_mb: u32,
    /// The most a runtime may write outside its volumes (logs, the container layer), in MiB.
    pub ephemeral_storage_mb: u32,
    /// The namespace the entry proxy (Traefik) runs in.
    pub entry_namespace: String,
    /// The labels of the entry proxy's pods.
    pub entry_labels: BTreeMap<String, String>,
    /// The entry proxy's address as runtimes reach it (its Service's cluster IP): the gateway
    /// is reached through it. Unset: read from `entry_service`.
    pub entry_ip: Option<IpAddr>,
    /// The entry proxy's Service for runtimes (in `entry_namespace`), whose cluster IP is
    /// `entry_ip` when that is unset.
    pub entry_service: Option<String>,
    /// Where the entry proxy's requests come from (the pod network CIDR its pods take
    /// addresses from, or their addresses): runtimes believe identity headers from there only,
    /// and only the entry proxy may connect at all (network policy).
    pub entry_sources: Vec<String>,
    /// The labels of the cluster DNS pods (in any namespace) runtimes may ask.
    pub dns_labels: BTreeMap<String, String>,
}

impl KubeSettings {
    /// Defaults for `namespace`: Traefik labelled `app.kubernetes.io/name=traefik` in the same
    /// namespace, CoreDNS as most distributions label it, 10 GiB workspaces.
    pub fn new(namespace: &str) -> KubeSettings {
        KubeSettings {
            namespace: namespace.to_owned(),
            storage_class: None,
            workspace_mb: 10 * 1024,
            ephemeral_storage_mb: 1024,
            entry_namespace: namespace.to_owned(),
            entry_labels: BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "traefik".to_owned(),
            )]),
            entry_ip: None,
            entry_service: None,
            entry_sources: Vec::new(),
            dns_labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
        }
    }
}

/// The Kubernetes driver. Cheap to clone.
#[derive(Clone)]
pub struct KubeDriver {
    client: Client,
    settings: KubeSettings,
    instance: String,
    /// The entry proxy's cluster IP once read (a Service's cluster IP never changes).
    entry_ip: Arc<tokio::sync::OnceCell<Option<IpAddr>>>,
}

impl std::fmt::Debug for KubeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDriver")
            .field("settings", &self.settings)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// How long a stopped or removed Pod may take to go, beyond its grace period.
const GONE_SLACK: Duration = Duration::from_secs(30);

impl KubeDriver {
    /// A driver using `client` (from a kubeconfig, the in-cluster service account, or a test
    /// server's address). Nothing is asked yet.
    pub fn new(client: Client, settings: KubeSettings, instance: &str) -> KubeDriver {
        KubeDriver {
            client,
            settings,
            instance: instance.to_owned(),
            entry_ip: Arc::default(),
        }
    }

    /// A driver for the API server at `api_url`, spoken to without credentials (a `kubectl
    /// proxy`, a test server), or without one for the kubeconfig (`KUBECONFIG`,
    /// `~/.kube/config`) or the pod's service account. Nothing is asked yet.
    pub async fn connect(
        api_url: Option<&str>,
        settings: KubeSettings,
        instance: &str,
    ) -> Result<KubeDriver, DriverError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            DriverError::Unreachable(format!("no Kubernetes client: {e}"))
        };
        let client = match api_url {
            Some(url) => {
                let uri = url.parse().map_err(|e| unreachable(&e))?;
                let mut config = ::kube::Config::new(uri);
                config.default_namespace = settings.namespace.clone();
                Client::try_from(config).map_err(|e| unreachable(&e))?
            }
            None => Client::try_default().await.map_err(|e| unreachable(&e))?,
        };
        Ok(KubeDriver::new(client, settings, instance))
    }

    /// The same cluster, serving another installation.
    pub fn for_instance(&self, instance: &str) -> KubeDriver {
        KubeDriver {
            instance: instance.to_owned(),
            ..self.clone()
        }
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    fn api<K>(&self) -> Api<K>
    where
        K: ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as ::kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn names(&self, runtime_id: &str) -> crate::spec::Names {
        crate::spec::Names::new(&self.instance, runtime_id)
    }

    /// `instance=…[,runtime=…]`: this installation's objects (one runtime's).
    fn selector(&self, runtime_id: Option<&str>) -> ListParams {
        let selector = match runtime_id {
            Some(id) => format!(
                "{}={},{}={id}",
                labels::MANAGED_BY,
                self.instance,
                labels::RUNTIME
            ),
            None => format!("{}={}", labels::MANAGED_BY, self.instance),
        };
        ListParams::default().labels(&selector)
    }

    async fn secret(&self, runtime_id: &str) -> Result<Option<Secret>, DriverError> {
        let name = self.names(runtime_id).base;
        self.api::<Secret>()
            .get_opt(&name)
            .await
            .map_err(|e| classify(&e, None))
    }

    async fn pod(&self, runtime_id: &str) -> Result<Option<Pod>, DriverError> {
        let name = self.names(runtime_id).base;
        self.api::<Pod>()
            .get_opt(&name)
            .await
            .map_err(|e| classify(&e, None))
    }
}

/// One of an object's annotations (empty when missing).
fn annotation(secret: &Secret, key: &str) -> String {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
        .unwrap_or_default()
}

#[async_trait]
impl RuntimeDriver for KubeDriver {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        let policy = policy::baseline(&self.instance, &self.settings.namespace);
        self.apply(&policy).await?;
        Ok(Isolation::Enforced)
    }

    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        spec.check().map_err(DriverError::Config)?;
        self.ensure_policy(spec).await?;
        Ok(Prepared {
            entry_ip: self.entry_ip().await?,
            trusted_proxies: self.settings.entry_sources.clone(),
        })
    }

    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        spec.check().map_err(DriverError::Config)?;
        self.ensure_claim(spec).await?;
        let made_from = self
            .secret(&spec.runtime_id)
            .await?
            .map(|s| annotation(&s, annotations::CONFIG_HASH));
        if replace || made_from.as_deref() != Some(spec.config_hash.as_str()) {
            // Another configuration's Pod goes (callers stopped it gracefully first): like a
            // new container, the runtime starts when asked.
            if made_from.is_some() {
                self.delete_pod(&spec.runtime_id, Duration::ZERO).await?;
            }
            self.apply(&objects::secret(spec, config, &self.settings))
                .await?;
        }
        self.ensure_policy(spec).await?;
        self.observe(&spec.runtime_id)
            .await?
            .ok_or_else(|| DriverError::Docker("the runtime's Secret disappeared".into()))
    }

    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError> {
        if running {
            self.start(runtime_id).await
        } else {
            self.delete_pod(runtime_id, grace).await
        }
    }

    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError> {
        let Some(secret) = self.secret(runtime_id).await? else {
            return Ok(None);
        };
        let pod = self.pod(runtime_id).await?;
        let claim = match &pod {
            Some(pod) if !observe::is_pending(pod) => None,
            _ => self.claim(runtime_id).await?,
        };
        let provisioning_failed = match &claim {
            Some(c) if claim::is_unbound(c) => {
                self.provisioning_failure(&self.names(runtime_id).volume())
                    .await?
            }
            _ => None,
        };
        let waiting = observe::Waiting {
            claim: claim.as_ref(),
            provisioning_failed: provisioning_failed.as_deref(),
        };
        Ok(Some(observe::observation(&secret, pod.as_ref(), waiting)))
    }

    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        let params = self.selector(None);
        let secrets = self
            .api::<Secret>()
            .list(&params)
            .await
            .map_err(|e| classify(&e, None))?;
        let pods = self
            .api::<Pod>()
            .list(&params)
            .await
            .map_err(|e| classify(&e, None))?;
        let mut by_runtime: BTreeMap<String, Pod> = pods
            .items
            .into_iter()
            .filter_map(|pod| Some((observe::runtime_of(&pod.metadata)?, pod)))
            .collect();
        Ok(secrets
            .items
            .iter()
            .filter(|s| observe::runtime_of(&s.metadata).is_some())
            .map(|secret| {
                let pod =
                    observe::runtime_of(&secret.metadata).and_then(|id| by_runtime.remove(&id));
                observe::observation(secret, pod.as_ref(), observe::Waiting::default())
            })
            .collect())
    }

    async fn remove(&self, runtime_id: &str, wipe_workspace: bool) -> Result<(), DriverError> {
        let names = self.names(runtime_id);
        self.delete_pod(runtime_id, Duration::ZERO).await?;
        self.delete::<NetworkPolicy>(&names.base).await?;
        self.delete::<Secret>(&names.base).await?;
        if wipe_workspace {
            self.delete::<PersistentVolumeClaim>(&names.volume())
                .await?;
        }
        Ok(())
    }

    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        let name = self.names(runtime_id).base;
        let params = LogParams {
            tail_lines: Some(i64::try_from(lines).unwrap_or(i64::MAX)),
            ..LogParams::default()
        };
        match self.api::<Pod>().logs(&name, &params).await {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            // No Pod, or one whose container has not started: nothing to show.
            Err(e) if matches!(errors::status(&e), Some(400 | 404)) => Ok(Vec::new()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        let Some(pod) = self.pod(runtime_id).await? else {
            return Ok(Stats::default());
        };
        stats::of(&self.client, &self.settings.namespace, &pod).await
    }

    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        // A claim is a volume of its requested size: the storage holds the limit. What it holds
        // is only reported by each node's kubelet, which a namespaced role cannot ask.
        Ok(DiskUsage {
            engine_enforced: true,
            by_runtime: BTreeMap::new(),
        })
    }

    fn hardening_gaps(&self) -> Vec<String> {
        vec![
            "process limit: Kubernetes caps processes per pod on each node (the kubelet's \
             podPidsLimit), not per runtime: set it on the nodes"
                .to_owned(),
        ]
    }
}
