//! The driver's own types: what to run, what is running, and what went wrong.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// Label keys on everything ClawLoops creates in Docker.
pub mod labels {
    /// The installation that owns the object (its instance id).
    pub const MANAGED_BY: &str = "org.clawloops.instance";
    /// The runtime id.
    pub const RUNTIME: &str = "org.clawloops.runtime";
    /// The owning user's id.
    pub const OWNER: &str = "org.clawloops.owner";
    /// Hash of the rendered configuration and image the container was made from.
    pub const CONFIG_HASH: &str = "org.clawloops.config-hash";
    /// The port the runtime listens on (its endpoint is read back from the engine with it).
    pub const PORT: &str = "org.clawloops.port";
    /// The path that answers 200 once the runtime can take traffic.
    pub const READY_PATH: &str = "org.clawloops.ready-path";
}

/// How a runtime image is run: its port, health path and mounts. One per image kind
/// (OpenClaw, the tiny stub), from settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The port the runtime listens on inside its network.
    pub port: u16,
    /// The path that answers 200 once the runtime can take traffic.
    pub ready_path: String,
    /// Where the workspace volume is mounted.
    pub state_mount: String,
    /// Where the rendered configuration directory is mounted read-only (when the image has one).
    pub config_mount: Option<String>,
    /// The user the process runs as (`uid:gid`).
    pub user: String,
    /// Small writable tmpfs mounts on the read-only root: path → options.
    pub tmpfs: Vec<(String, String)>,
    /// Environment for the process.
    pub env: Vec<(String, String)>,
    /// The command an engine that checks readiness itself (Swarm) runs inside the runtime: exit
    /// status 0 once `ready_path` answers 200. Engines that probe from outside ignore it.
    #[serde(default)]
    pub health_command: Vec<String>,
}

/// Resource limits for one container.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mb: u32,
    pub cpus: f64,
    pub pids: u32,
    /// The most the workspace volume may hold, in MiB (`None`: no limit). A hard limit where
    /// the engine supports volume quotas, else measured and enforced by stopping the runtime
    /// (see docs/workspace-disk-limits.md).
    #[serde(default)]
    pub disk_mb: Option<u32>,
}

impl Limits {
    /// The workspace limit in bytes, if there is one.
    pub fn disk_bytes(&self) -> Option<u64> {
        self.disk_mb.map(|mb| u64::from(mb) * 1024 * 1024)
    }
}

/// The most a workspace limit may be, in MiB (16 TiB).
pub const MAX_DISK_MB: u32 = 16 * 1024 * 1024;

/// Everything needed to create one user's runtime container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeSpec {
    /// The runtime's id (`rt-<username>`), also the base of every Docker name.
    pub runtime_id: String,
    /// The owning user's id.
    pub owner: String,
    /// The installation's id (labels tell our objects from anyone else's).
    pub instance: String,
    pub image: String,
    pub profile: Profile,
    pub limits: Limits,
    /// Hash of configuration + image + limits: a change means the container is replaced.
    pub config_hash: String,
    /// What the runtime may reach beyond the entry proxy.
    #[serde(default)]
    pub egress: crate::firewall::Egress,
    /// The node the runtime must run on (where its workspace lives), on engines with several
    /// nodes; `None` lets the driver choose (and report its choice in
    /// [`Observation::node`]).
    #[serde(default)]
    pub placement: Option<String>,
}

pub mod ids;

impl RuntimeSpec {
    /// Whether every id and name in the spec has its expected shape, or what does not.
    pub fn check(&self) -> Result<(), String> {
        if !ids::runtime_id(&self.runtime_id) {
            return Err(format!(
                "the runtime id {:?} is not rt- and a workspace name",
                self.runtime_id
            ));
        }
        if !ids::label(&self.owner) {
            return Err("the owner is not a user id".into());
        }
        if !ids::label(&self.instance) {
            return Err("the installation is not an installation id".into());
        }
        if !ids::image(&self.image) {
            return Err(format!("{:?} is not an image reference", self.image));
        }
        if !ids::label(&self.config_hash) {
            return Err("the configuration hash is not a hash".into());
        }
        if self
            .placement
            .as_deref()
            .is_some_and(|node| !ids::node(node))
        {
            return Err("the placement is not a node name".into());
        }
        let Limits {
            memory_mb,
            cpus,
            pids,
            disk_mb,
        } = self.limits;
        let sane = (32..=1_048_576).contains(&memory_mb)
            && cpus.is_finite()
            && (0.01..=256.0).contains(&cpus)
            && (16..=1_000_000).contains(&pids)
            && disk_mb.is_none_or(|mb| (1..=MAX_DISK_MB).contains(&mb));
        if !sane {
            return Err("the limits are out of range".into());
        }
        Ok(())
    }

    /// The names of everything the engine holds for this runtime.
    pub fn names(&self) -> Names {
        Names::new(&self.instance, &self.runtime_id)
    }
    /// The container's (or service's) name (also the name of its configuration directory).
    pub fn container_name(&self) -> String {
        self.names().base
    }
    /// `…-net`: the runtime's own network.
    pub fn network_name(&self) -> String {
        self.names().network()
    }
    /// `…-workspace`: the persistent state and workspace.
    pub fn volume_name(&self) -> String {
        self.names().volume()
    }
    /// A stable hostname: OpenClaw recognises its own lease after a hard restart by it.
    pub fn hostname(&self) -> String {
        format!("oc-{}", self.runtime_id.trim_start_matches("rt-"))
    }
    /// The labels every object of this runtime carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::MANAGED_BY.to_owned(), self.instance.clone()),
            (labels::RUNTIME.to_owned(), self.runtime_id.clone()),
            (labels::OWNER.to_owned(), self.owner.clone()),
        ])
    }
}

/// The names of one runtime's objects in the engine: `clawloops-<instance prefix>-<runtime
/// id>` and names made from it, unique per installation, so two installations (or a test run
/// beside a real one) can share an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The container's or service's name.
    pub base: String,
}

impl Names {
    pub fn new(instance: &str, runtime_id: &str) -> Names {
        Names {
            base: format!("{}-{runtime_id}", name_prefix(instance)),
        }
    }
    /// `…-net`: the runtime's own network.
    pub fn network(&self) -> String {
        format!("{}-net", self.base)
    }
    /// `…-workspace`: the persistent state and workspace.
    pub fn volume(&self) -> String {
        format!("{}-workspace", self.base)
    }
}

/// `clawloops-<first 8 letters and digits of the installation id>`: the start of every Docker
/// name an installation makes.
pub fn name_prefix(instance: &str) -> String {
    let short: String = instance
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("clawloops-{short}")
}

/// How runtimes are fenced off on their host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// The runtime manager's firewall rules are in place (checked just now).
    Enforced,
    /// Left to someone else by configuration (`runtime_firewall = "external"`).
    External,
}

/// What [`crate::RuntimeDriver::prepare`] made ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// The entry proxy's address as the runtime reaches it, when an entry proxy is configured:
    /// the model gateway is reached through it, and (unless `trusted_proxies` says otherwise)
    /// the only address the runtime believes identity headers from.
    pub entry_ip: Option<IpAddr>,
    /// Where the entry proxy's requests come from when that is not `entry_ip` (addresses or
    /// CIDRs: on Kubernetes, the pod network the entry proxy's pods take addresses from; only
    /// they may connect, by network policy).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// Where a runtime is in its life, in terms every engine can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// It exists and is not running: never started, stopped, or exited by itself
    /// (`exit_code` when it ran).
    Stopped { exit_code: Option<i64> },
    /// The engine is bringing it up (placing it, fetching its image, starting it, or
    /// restarting it).
    Starting,
    /// Its process runs ([`Observation::ready`] says whether it answers).
    Running,
    /// Its processes are frozen in place ([`crate::RuntimeDriver::set_paused`]): memory and
    /// workspace kept, no CPU used, nothing answered.
    Paused,
    /// The engine gave up on it (refused, dead, or its last attempt failed);
    /// [`Observation::reason`] says why.
    Failed { exit_code: Option<i64> },
    /// It belongs on a node that is unreachable now; it comes back with the node.
    NodeDown,
}

impl Phase {
    /// The exit code of the last run, when it ended.
    pub fn exit_code(self) -> Option<i64> {
        match self {
            Phase::Stopped { exit_code } | Phase::Failed { exit_code } => exit_code,
            _ => None,
        }
    }
}

/// What the engine says of one runtime right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub runtime_id: String,
    pub owner: String,
    /// The engine's own id for it (a container id, a service id): for the record and logs.
    pub handle: String,
    pub phase: Phase,
    /// Whether it answers its readiness check. [`crate::RuntimeDriver::observe`] always
    /// finds out; [`crate::RuntimeDriver::list`] reports it where the engine tracks
    /// readiness itself and `false` elsewhere.
    pub ready: bool,
    /// The configuration hash it was made from.
    pub config_hash: Option<String>,
    pub image: String,
    /// Where the entry proxy reaches it (`http://address:port`), while it runs.
    pub endpoint: Option<String>,
    /// The node it runs on (or is pinned to), on engines with several.
    pub node: Option<String>,
    /// The engine's words when it is not running as asked (a rejected task, a node that is
    /// down): for admins, never shown to the runtime's owner.
    pub reason: Option<String>,
    /// What keeps it from starting until someone acts (an image that cannot be pulled, a
    /// storage class that does not exist): a start fails at once with this error instead of
    /// waiting out the ready timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<DriverError>,
}

impl Observation {
    /// Whether it runs and answers.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Running && self.ready
    }
}

/// How much each workspace volume of an installation holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Whether the engine itself holds volumes to their size limit (a volume quota); when not,
    /// a limit is enforced by measuring.
    pub engine_enforced: bool,
    /// Bytes held, by runtime id.
    pub by_runtime: std::collections::BTreeMap<String, u64>,
}

/// Resource use of one container.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    /// CPU use as a share of one core (1.0 = one full core).
    pub cpu_cores: f64,
}

/// What can go wrong, in words fit for a task's last error. Crosses the runtime manager's
/// internal API as `{"kind": …, "message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum DriverError {
    #[error("the Docker engine cannot be reached: {0}")]
    Unreachable(String),
    #[error("the runtime manager cannot be reached: {0}")]
    ManagerUnreachable(String),
    #[error("the runtime manager refused the request: {0}")]
    ManagerRefused(String),
    #[error("the runtime configuration could not be written: {0}")]
    Config(String),
    #[error("the runtime image {0} is not available on this machine")]
    ImageMissing(String),
    #[error("the runtime host is out of disk space: {0}")]
    DiskFull(String),
    #[error("the entry proxy container {0} does not exist")]
    EntryProxyMissing(String),
    #[error("runtimes cannot be isolated on this host: {0}")]
    Isolation(String),
    #[error("a container with this name already exists")]
    Conflict,
    #[error("the runtime {0} does not exist")]
    Missing(String),
    #[error("Docker refused: {0}")]
    Docker(String),
    #[error("the cluster does not allow ClawLoops to do this: {0}")]
    Forbidden(String),
    #[error("the namespace's resource quota does not allow this runtime: {0}")]
    QuotaExceeded(String),
    #[error("the cluster rejected the runtime's definition: {0}")]
    Rejected(String),
    #[error("the runtime's workspace volume cannot be provisioned: {0}")]
    StorageMissing(String),
}
