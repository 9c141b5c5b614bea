//! The runtime manager's driver: everything ClawLoops does to a container goes through the
//! [`RuntimeDriver`] trait, and [`docker::DockerDriver`] (bollard) is the only code in the project
//! that speaks to Docker. Orchestration (what to do when) lives elsewhere; the driver only knows
//! how.

pub mod disk;
pub mod docker;
pub mod files;
pub mod firewall;
pub mod host;
pub mod remote;
pub mod spec;

pub use spec::{
    ContainerInfo, ContainerState, DiskUsage, DriverError, Isolation, Limits, Prepared, Profile,
    RuntimeSpec, Stats, labels,
};

use async_trait::async_trait;
use std::time::Duration;

/// What the orchestrator can ask of a container runtime.
#[async_trait]
pub trait RuntimeDriver: Send + Sync + 'static {
    /// Makes sure runtimes on this host reach nothing but the entry proxy (the host firewall:
    /// see [`firewall`]), installing or repairing the rules. Called before every runtime
    /// network is made and by the orchestrator every reconciler period; an error means no
    /// runtime may start.
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError>;
    /// Creates the runtime's private network and workspace volume when missing, and connects
    /// the entry proxy (when there is one) to that network. Idempotent; the reconciler calls it
    /// for running runtimes so a recreated entry proxy is connected again.
    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError>;
    /// Whether the image is available locally.
    async fn image_present(&self, image: &str) -> Result<bool, DriverError>;
    /// The runtime's container, if there is one.
    async fn find(&self, runtime_id: &str) -> Result<Option<ContainerInfo>, DriverError>;
    /// Every container this installation manages.
    async fn list(&self) -> Result<Vec<ContainerInfo>, DriverError>;
    /// Writes the runtime's rendered configuration (`openclaw.json`) atomically where `create`
    /// mounts it read-only.
    async fn install_config(&self, spec: &RuntimeSpec, text: &str) -> Result<(), DriverError>;
    /// Creates (does not start) the container for `spec`.
    async fn create(&self, spec: &RuntimeSpec) -> Result<ContainerInfo, DriverError>;
    /// Starts a created or stopped container.
    async fn start(&self, container_id: &str) -> Result<(), DriverError>;
    /// SIGTERM, then SIGKILL after `grace`. A missing or already stopped container is fine.
    async fn stop(&self, container_id: &str, grace: Duration) -> Result<(), DriverError>;
    /// Removes the container (forcefully). A missing container is fine.
    async fn remove(&self, container_id: &str) -> Result<(), DriverError>;
    /// Removes the runtime's network and configuration and, when `wipe_workspace`, its workspace
    /// volume.
    async fn cleanup(&self, spec: &RuntimeSpec, wipe_workspace: bool) -> Result<(), DriverError>;
    /// Whether the runtime answers its readiness endpoint now.
    async fn probe(&self, container: &ContainerInfo, profile: &Profile) -> bool;
    /// The last `lines` lines of the container's output.
    async fn logs(&self, container_id: &str, lines: usize) -> Result<Vec<String>, DriverError>;
    /// Memory and CPU use right now.
    async fn stats(&self, container_id: &str) -> Result<Stats, DriverError>;
    /// How much each of this installation's workspace volumes holds (the engine walks them:
    /// call it every minute or so, not every second).
    async fn disk_usage(&self) -> Result<DiskUsage, DriverError>;
}
