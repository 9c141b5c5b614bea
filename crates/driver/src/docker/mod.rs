//! The Docker implementation of [`RuntimeDriver`], through bollard. Docker's 404 and 409
//! answers are outcomes here (already gone, already there), not failures.

use crate::firewall::{self, Firewall, FirewallMode};
use crate::spec::Names;
use crate::{
    DiskUsage, DriverError, Isolation, Observation, Phase, Prepared, RuntimeDriver, RuntimeSpec,
    Stats, labels,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointIpamConfig,
    EndpointSettings, HostConfig, Ipam, IpamConfig, Mount, MountType, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod container;
mod convert;
mod network;
mod volumes;
use container::{Found, probe_client};
#[cfg(test)]
use convert::exit_code;
pub(crate) use convert::{classify, stats_from, status_of};
use convert::{observation_from, quota_unsupported};
pub use network::default_subnet_pool;
#[cfg(test)]
use network::{entry_address, free_subnet};
pub use volumes::managed_volumes;

/// The Docker driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerDriver {
    docker: Docker,
    instance: String,
    http: reqwest::Client,
    /// Where rendered configurations are written (one directory per runtime, bind-mounted
    /// read-only into its container): on the Docker host, so it belongs to the driver.
    config_root: PathBuf,
    /// Where runtime networks get their subnets.
    subnet_pool: Ipv4Net,
    /// The entry proxy's container (Traefik), joined to every runtime's network.
    entry_proxy: Option<String>,
    /// The host firewall that keeps runtimes to the entry proxy (shared by every clone).
    firewall: Arc<Firewall>,
    /// Whether the engine holds volumes to a `size` (asked once, shared by every clone).
    volume_quotas: Arc<tokio::sync::OnceCell<bool>>,
}

impl DockerDriver {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and agrees on an API
    /// version (Debian 12's engine speaks 1.41).
    /// An engine that is down now is not fatal: every call then fails with
    /// [`DriverError::Unreachable`], and works again once the engine is back.
    pub async fn connect(instance: &str, config_root: &Path) -> Result<Self, DriverError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| DriverError::Unreachable(e.to_string()))?;
        Self::with_client(docker, instance, config_root).await
    }

    /// Connects to the engine at a Unix socket path (tests use a dead one).
    pub async fn connect_socket(
        socket: &str,
        instance: &str,
        config_root: &Path,
    ) -> Result<Self, DriverError> {
        let docker = Docker::connect_with_socket(socket, 30, bollard::API_DEFAULT_VERSION)
            .map_err(|e| DriverError::Unreachable(e.to_string()))?;
        Self::with_client(docker, instance, config_root).await
    }

    async fn with_client(
        docker: Docker,
        instance: &str,
        config_root: &Path,
    ) -> Result<Self, DriverError> {
        let docker = match docker.clone().negotiate_version().await {
            Ok(negotiated) => negotiated,
            Err(err) => {
                tracing::warn!(error = %err, "the Docker engine is not answering yet");
                docker
            }
        };
        let http = probe_client().map_err(|e| DriverError::Docker(e.to_string()))?;
        Ok(DockerDriver {
            docker,
            instance: instance.to_owned(),
            http,
            config_root: std::path::absolute(config_root)
                .map_err(|e| DriverError::Config(e.to_string()))?,
            subnet_pool: default_subnet_pool(),
            entry_proxy: None,
            firewall: Arc::new(Firewall::new(FirewallMode::Managed)),
            volume_quotas: Arc::default(),
        })
    }

    /// The same engine, serving another installation (the runtime manager serves whichever
    /// control plane authenticated; each keeps to its own labels and directories).
    pub fn for_instance(&self, instance: &str) -> DockerDriver {
        DockerDriver {
            instance: instance.to_owned(),
            ..self.clone()
        }
    }

    /// Allocates runtime networks from `pool` (a /28 each) instead of Docker's default address
    /// pools, which run out after about 30 networks.
    pub fn with_subnet_pool(mut self, pool: Ipv4Net) -> Self {
        self.subnet_pool = pool;
        self
    }

    /// Who keeps the host firewall for runtimes: this driver ([`FirewallMode::Managed`], the
    /// default) or someone else.
    pub fn with_firewall(mut self, mode: FirewallMode) -> Self {
        self.firewall = Arc::new(Firewall::new(mode));
        self
    }

    /// The host firewall this driver keeps.
    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// Joins `container` (the entry proxy, Traefik) to every runtime's network, at a fixed
    /// address: the runtime trusts identity headers from that address only.
    pub fn with_entry_proxy(mut self, container: Option<String>) -> Self {
        self.entry_proxy = container.filter(|c| !c.is_empty());
        self
    }

    /// The bollard client, for tests that inspect what the driver made.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    fn managed_filter(&self, extra: Option<(&str, &str)>) -> HashMap<String, Vec<String>> {
        let mut wanted = vec![format!("{}={}", labels::MANAGED_BY, self.instance)];
        if let Some((key, value)) = extra {
            wanted.push(format!("{key}={value}"));
        }
        HashMap::from([("label".to_owned(), wanted)])
    }
}

#[async_trait]
impl RuntimeDriver for DockerDriver {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        match self.firewall.ensure().await? {
            firewall::Outcome::External => Ok(Isolation::External),
            firewall::Outcome::Unchanged => Ok(Isolation::Enforced),
            firewall::Outcome::Installed => {
                tracing::info!("runtime firewall installed (runtimes reach the entry proxy only)");
                Ok(Isolation::Enforced)
            }
        }
    }

    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        // No runtime network without the rules that fence it off (checked now, or by the
        // reconciler within the last few seconds).
        if self.firewall.ensure_within(FIREWALL_FRESH).await? == firewall::Outcome::Installed {
            tracing::info!("runtime firewall installed (runtimes reach the entry proxy only)");
        }
        if self.firewall.mode() == FirewallMode::Managed
            && spec.profile.port != firewall::RUNTIME_PORT
        {
            return Err(DriverError::Isolation(format!(
                "the runtime profile's port is {}, but the runtime firewall lets the entry proxy \
                 reach runtimes on port {} only",
                spec.profile.port,
                firewall::RUNTIME_PORT
            )));
        }
        let network = self.create_network(spec).await?;
        let entry_ip = self.connect_entry(spec, &network).await?;
        self.ensure_workspace(spec).await?;
        Ok(Prepared {
            entry_ip,
            ..Prepared::default()
        })
    }

    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        self.install_config(spec, config)?;
        if !self.image_present(&spec.image).await? {
            return Err(DriverError::ImageMissing(spec.image.clone()));
        }
        if let Some(Found {
            observed,
            ready_path,
        }) = self.container(&spec.runtime_id).await?
        {
            // A container made before readiness labels existed is made again.
            let same = observed.config_hash.as_deref() == Some(spec.config_hash.as_str());
            if !replace && same && ready_path.is_some() {
                return Ok(observed);
            }
            self.remove_container(&observed.handle).await?;
        }
        let body = self.container_body(spec)?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.container_name())
            .build();
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {}
            // A twin of this call (another replica, a resumed task) made it first.
            Err(e) if status_of(&e) == Some(409) => {}
            Err(e) => return Err(classify(&e, Some(&spec.image))),
        }
        self.container(&spec.runtime_id)
            .await?
            .map(|found| found.observed)
            .ok_or_else(|| DriverError::Docker("the new container disappeared".into()))
    }

    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError> {
        let Some(found) = self.container(runtime_id).await? else {
            return if running {
                Err(DriverError::Missing(runtime_id.to_owned()))
            } else {
                Ok(())
            };
        };
        self.thaw(&found).await?;
        let container = found.observed;
        let outcome = if running {
            self.docker.start_container(&container.handle, None).await
        } else {
            let seconds = i32::try_from(grace.as_secs()).unwrap_or(30);
            let options = StopContainerOptionsBuilder::new().t(seconds).build();
            self.docker
                .stop_container(&container.handle, Some(options))
                .await
        };
        match outcome {
            Ok(()) => Ok(()),
            // 304: already so; 404 while stopping: gone.
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) if !running && status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn set_paused(&self, runtime_id: &str, paused: bool) -> Result<bool, DriverError> {
        self.freeze(runtime_id, paused).await.map(|()| true)
    }

    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError> {
        let Some(found) = self.container(runtime_id).await? else {
            return Ok(None);
        };
        let ready = found.observed.phase == Phase::Running && self.probe(&found).await;
        Ok(Some(Observation {
            ready,
            ..found.observed
        }))
    }

    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        let found = self.containers(None).await?;
        Ok(found.into_iter().map(|f| f.observed).collect())
    }

    async fn remove(&self, runtime_id: &str, wipe_workspace: bool) -> Result<(), DriverError> {
        let names = Names::new(&self.instance, runtime_id);
        if let Some(found) = self.container(runtime_id).await? {
            self.thaw(&found).await?;
            self.remove_container(&found.observed.handle).await?;
        }
        // A network with the entry proxy still attached cannot be removed.
        self.disconnect_entry(&names.network()).await?;
        match self.docker.remove_network(&names.network()).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(classify(&e, None)),
        }
        match std::fs::remove_dir_all(self.config_dir(&names)?) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::Config(e.to_string())),
        }
        if wipe_workspace {
            self.remove_workspace(&names).await?;
        }
        Ok(())
    }

    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        let Some(Found {
            observed: container,
            ..
        }) = self.container(runtime_id).await?
        else {
            return Ok(Vec::new());
        };
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let stream = self.docker.logs(&container.handle, Some(options));
        collect_logs(stream, lines).await
    }

    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        let Some(Found {
            observed: container,
            ..
        }) = self.container(runtime_id).await?
        else {
            return Ok(Stats::default());
        };
        let options = StatsOptionsBuilder::new().stream(false).build();
        let mut stream = self.docker.stats(&container.handle, Some(options));
        let Some(sample) = stream.next().await else {
            return Ok(Stats::default());
        };
        Ok(stats_from(sample.map_err(|e| classify(&e, None))?))
    }

    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        let engine_enforced = self.volume_quotas().await?;
        let walked = self.measure_workspaces().await?;
        Ok(DiskUsage {
            engine_enforced,
            by_runtime: walked,
        })
    }
}

/// A container's output, at most the last `lines` lines (a container that vanished meanwhile
/// has none).
pub(crate) async fn collect_logs(
    mut stream: impl futures_util::Stream<Item = Result<bollard::container::LogOutput, BollardError>>
    + Unpin,
    lines: usize,
) -> Result<Vec<String>, DriverError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(output) => out.extend(output.to_string().lines().map(str::to_owned)),
            Err(e) if status_of(&e) == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(classify(&e, None)),
        }
    }
    let skip = out.len().saturating_sub(lines);
    Ok(out.split_off(skip))
}

/// How recent a firewall check a runtime start relies on (the reconciler checks every 5 s).
const FIREWALL_FRESH: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
