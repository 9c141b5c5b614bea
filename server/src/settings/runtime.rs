//! How runtimes are run: the image and its limits, the engine (one Docker host, or a Docker
//! Swarm), and split mode.

use super::*;

/// Which kind of runtime image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeProfile {
    /// The OpenClaw gateway (production).
    Openclaw,
    /// The tiny stand-in (tests, benchmarks).
    Stub,
}

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub profile: RuntimeProfile,
    pub image: String,
    pub memory_mb: u32,
    pub cpus: f64,
    pub pids: u32,
    /// The most one workspace volume may hold, in MiB (None: no limit).
    pub disk_mb: Option<u32>,
    /// How often workspaces are measured against their limit.
    pub disk_check_secs: u64,
    pub concurrency: usize,
    pub ready_timeout_secs: u64,
    /// The workspace address with `{user}` for the username, once the entry layer routes it.
    pub browser_url: Option<String>,
    /// The model gateway as runtimes reach it (`…/v1`).
    pub model_gateway_url: String,
    /// The IPv4 range runtime networks take their /28 subnets from.
    pub network_pool: ipnet::Ipv4Net,
    /// What runtimes may reach beyond the entry proxy: `none` (default) or `public` internet
    /// addresses (private ranges and the host stay blocked either way).
    pub egress: Egress,
    /// Whether the runtime manager installs the host firewall that enforces it (`managed`,
    /// default) or someone else does (`external`).
    pub firewall: FirewallMode,
    /// Split mode: where `clawloops runtime-manager` listens, and who may call it.
    pub manager: ManagerSettings,
    /// The engine runtimes run on.
    pub engine: Engine,
    /// Minutes without workspace traffic before a runtime is stopped (0 = never).
    pub idle_stop_minutes: u32,
    /// The longest a runtime runs at a time (None = no limit).
    pub max_lifetime_hours: Option<u32>,
}

/// Split mode. With `url` set the control plane drives runtimes through that runtime manager;
/// without it the driver runs in-process (embedded mode).
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// The runtime manager the control plane calls (split mode).
    pub url: Option<url::Url>,
    /// The secret both sides share (required in split mode, at least 32 characters).
    pub secret: Option<SecretString>,
    /// Where `clawloops runtime-manager` listens.
    pub listen: SocketAddr,
    /// Addresses or networks the runtime manager accepts calls from (the control plane).
    pub allowed_clients: Vec<ipnet::IpNet>,
}

/// Which engine runs the runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeEngine {
    /// The Docker engine of this host (or of the runtime manager's, in split mode).
    Docker,
    /// A Docker Swarm across several machines (docs/swarm.md).
    Swarm,
    /// A Kubernetes cluster (docs/kubernetes.md).
    Kubernetes,
}

/// The engine with what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    Docker,
    Swarm(SwarmSettings),
    Kubernetes(Box<KubernetesSettings>),
}

/// Where the swarm is spoken to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmSettings {
    /// A manager's engine (`unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`).
    pub manager: String,
    /// Every node's own engine, by hostname: task addresses, stats, logs, workspace removal.
    pub nodes: std::collections::BTreeMap<String, String>,
    /// The node whose engine runs the entry proxy container.
    pub entry_node: String,
}

impl RawSettings {
    pub(super) fn engine(&self) -> Result<Engine, SettingsError> {
        let fail = |key: &str, text: String| Err(SettingsError::new(key, text));
        match self.runtime_engine {
            RuntimeEngine::Docker => return Ok(Engine::Docker),
            _ if self.runtime_manager_url.is_some() => {
                return fail(
                    "runtime_manager_url",
                    "must be unset with a swarm or a Kubernetes cluster: the control plane \
                     speaks to the engine itself"
                        .into(),
                );
            }
            RuntimeEngine::Kubernetes => return self.kubernetes().map(Engine::Kubernetes),
            RuntimeEngine::Swarm => {}
        }
        if self.runtime_egress != Egress::None {
            return fail(
                "runtime_egress",
                "must be \"none\" on a swarm: runtimes there reach the entry proxy only".into(),
            );
        }
        for (key, address) in std::iter::once(("swarm_manager", &self.swarm_manager))
            .chain(self.swarm_nodes.values().map(|a| ("swarm_nodes", a)))
        {
            let ok = address.starts_with("unix:///")
                || address
                    .strip_prefix("tcp://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !ok {
                return fail(
                    key,
                    format!(
                        "`{address}` must be an engine address like unix:///var/run/docker.sock or tcp://10.0.0.5:2375"
                    ),
                );
            }
        }
        if self.swarm_nodes.is_empty() {
            return fail(
                "swarm_nodes",
                "must name every node's engine by hostname, like { node-1 = \"tcp://10.0.0.5:2375\" }".into(),
            );
        }
        if let Some(bad) = self
            .swarm_nodes
            .keys()
            .find(|n| !clawloops_driver::spec::ids::node(n))
        {
            return fail("swarm_nodes", format!("`{bad}` is not a node's hostname"));
        }
        if self
            .entry_proxy_container
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            return fail(
                "entry_proxy_container",
                "is required on a swarm: the entry proxy is the only way into runtimes there"
                    .into(),
            );
        }
        let entry_node = match &self.swarm_entry_node {
            Some(node) if self.swarm_nodes.contains_key(node) => node.clone(),
            Some(node) => {
                return fail(
                    "swarm_entry_node",
                    format!("`{node}` is not one of swarm_nodes"),
                );
            }
            None => {
                return fail(
                    "swarm_entry_node",
                    "must name the node whose engine runs the entry proxy container".into(),
                );
            }
        };
        Ok(Engine::Swarm(SwarmSettings {
            manager: self.swarm_manager.clone(),
            nodes: self.swarm_nodes.clone(),
            entry_node,
        }))
    }
}
