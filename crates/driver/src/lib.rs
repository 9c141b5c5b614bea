//! The runtime manager's driver: everything ClawLoops does to a runtime goes through the
//! [`RuntimeDriver`] trait, shaped by what the orchestrator needs (make it exist as specified,
//! run or stop it, observe it, remove it) rather than by one engine. The engine owns
//! networking, endpoints and placement. [`docker::DockerDriver`] (one host) and
//! [`swarm::SwarmDriver`] (a Docker Swarm) are the only code in the project that speaks to an
//! engine, through bollard; [`remote::RemoteDriver`] forwards to a runtime manager that holds
//! one. Orchestration (what to do when) lives elsewhere; the driver only knows how.

pub mod disk;
pub mod docker;
pub mod files;
pub mod firewall;
pub mod host;
pub mod kubernetes;
pub mod remote;
pub mod spec;
pub mod swarm;

pub use spec::{
    DiskUsage, DriverError, Isolation, Limits, Observation, Phase, Prepared, Profile, RuntimeSpec,
    Stats, labels,
};

use async_trait::async_trait;
use std::time::Duration;

/// What the orchestrator can ask of a runtime engine. Every method is idempotent: a call
/// repeated after a crash (or made twice by two replicas) finds the work done and succeeds.
#[async_trait]
pub trait RuntimeDriver: Send + Sync + 'static {
    /// Makes sure runtimes reach nothing but the entry proxy (a host firewall, or networks
    /// the engine keeps closed), installing or repairing what is needed. Called before a
    /// runtime's network is made and by the orchestrator every reconciler period; an error
    /// means no runtime may start.
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError>;
    /// Makes the runtime's private network and workspace exist and joins the entry proxy (when
    /// there is one) to that network. The reconciler calls it for running runtimes, so a
    /// recreated entry proxy is joined again.
    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError>;
    /// Makes the runtime exist as `spec` says, with `config` (its rendered `openclaw.json`)
    /// delivered where the profile mounts it, without changing whether it runs. One made from
    /// another configuration hash (or any, when `replace`) is replaced; callers stop it first
    /// when they want it to shut down gracefully.
    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError>;
    /// Starts the runtime, or stops it (SIGTERM, then SIGKILL after `grace`). A missing
    /// runtime is an error to start and fine to stop.
    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError>;
    /// Freezes a running runtime's processes in place (its memory and workspace are kept, it
    /// uses no CPU), or thaws a frozen one. `Ok(false)` where the engine cannot freeze a
    /// runtime: the caller stops it gracefully instead. Freezing a frozen runtime, or thawing
    /// one that is not frozen, is fine; a missing runtime is an error.
    async fn set_paused(&self, runtime_id: &str, paused: bool) -> Result<bool, DriverError> {
        let _ = (runtime_id, paused);
        Ok(false)
    }
    /// The runtime as the engine sees it now, readiness included; `None` when it does not
    /// exist.
    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError>;
    /// Every runtime of this installation.
    async fn list(&self) -> Result<Vec<Observation>, DriverError>;
    /// Removes the runtime (forcefully), its network and its delivered configuration, and
    /// when `wipe_workspace` its workspace. Whatever is already gone is fine.
    async fn remove(&self, runtime_id: &str, wipe_workspace: bool) -> Result<(), DriverError>;
    /// The last `lines` lines of the runtime's output (empty when it does not exist).
    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError>;
    /// Memory and CPU use right now (zeros when it does not run).
    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError>;
    /// How much each of this installation's workspaces holds (the engine walks them: call it
    /// every minute or so, not every second).
    async fn disk_usage(&self) -> Result<DiskUsage, DriverError>;
    /// What of a runtime's hardening this engine cannot enforce, in words for admins (empty
    /// where everything is).
    fn hardening_gaps(&self) -> Vec<String> {
        Vec::new()
    }
}
