//! The Docker implementation of [`RuntimeDriver`], through bollard. Docker's 404 and 409
//! answers are outcomes here (already gone, already there), not failures.

use crate::firewall::{self, Firewall, FirewallMode};
use crate::{
    ContainerInfo, ContainerState, DiskUsage, DriverError, Isolation, Prepared, Profile,
    RuntimeDriver, RuntimeSpec, Stats, labels,
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
use container::probe_client;
#[cfg(test)]
use convert::exit_code;
use convert::{classify, info_from, quota_unsupported, stats_from, status_of};
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

    /// Whether `container_id` (full id or unique prefix) is one of this installation's
    /// containers.
    pub async fn manages(&self, container_id: &str) -> Result<bool, DriverError> {
        let mut filters = self.managed_filter(None);
        filters.insert("id".to_owned(), vec![container_id.to_owned()]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(!found.is_empty())
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
        Ok(Prepared { entry_ip })
    }

    async fn image_present(&self, image: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn find(&self, runtime_id: &str) -> Result<Option<ContainerInfo>, DriverError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.managed_filter(Some((labels::RUNTIME, runtime_id))))
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(found.into_iter().find_map(info_from))
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, DriverError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.managed_filter(None))
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(found.into_iter().filter_map(info_from).collect())
    }

    async fn create(&self, spec: &RuntimeSpec) -> Result<ContainerInfo, DriverError> {
        let body = self.container_body(spec)?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.container_name())
            .build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| classify(&e, Some(&spec.image)))?;
        self.find(&spec.runtime_id)
            .await?
            .ok_or_else(|| DriverError::Docker("the new container disappeared".into()))
    }

    async fn start(&self, container_id: &str) -> Result<(), DriverError> {
        match self.docker.start_container(container_id, None).await {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn stop(&self, container_id: &str, grace: Duration) -> Result<(), DriverError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(30);
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        match self
            .docker
            .stop_container(container_id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn remove(&self, container_id: &str) -> Result<(), DriverError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self
            .docker
            .remove_container(container_id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // 409: removal already in progress.
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    async fn install_config(&self, spec: &RuntimeSpec, text: &str) -> Result<(), DriverError> {
        let owner = crate::files::numeric_owner(&spec.profile.user);
        let dir = self.config_dir(spec)?;
        crate::files::write_atomically(&self.config_root, &dir, text, owner).map_err(|e| {
            match e.raw_os_error() {
                Some(28) => DriverError::DiskFull(e.to_string()),
                _ => DriverError::Config(e.to_string()),
            }
        })
    }

    async fn cleanup(&self, spec: &RuntimeSpec, wipe_workspace: bool) -> Result<(), DriverError> {
        // A network with the entry proxy still attached cannot be removed.
        self.disconnect_entry(&spec.network_name()).await?;
        match self.docker.remove_network(&spec.network_name()).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(classify(&e, None)),
        }
        match std::fs::remove_dir_all(self.config_dir(spec)?) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::Config(e.to_string())),
        }
        if wipe_workspace {
            self.remove_workspace(spec).await?;
        }
        Ok(())
    }

    async fn probe(&self, container: &ContainerInfo, profile: &Profile) -> bool {
        let Some(ip) = container.ip else {
            return false;
        };
        let url = format!("http://{ip}:{}{}", profile.port, profile.ready_path);
        // No X-Forwarded-* headers: OpenClaw refuses forwarded requests from peers that are not
        // its trusted proxies, and the prober (the host) never is one.
        self.http
            .get(url)
            .send()
            .await
            .is_ok_and(|res| res.status().is_success())
    }

    async fn logs(&self, container_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(container_id, Some(options));
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(output) => {
                    let text = output.to_string();
                    out.extend(text.lines().map(str::to_owned));
                }
                Err(e) if status_of(&e) == Some(404) => return Ok(Vec::new()),
                Err(e) => return Err(classify(&e, None)),
            }
        }
        let skip = out.len().saturating_sub(lines);
        Ok(out.split_off(skip))
    }

    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        let engine_enforced = self.volume_quotas().await?;
        let walked = self.measure_workspaces().await?;
        Ok(DiskUsage {
            engine_enforced,
            by_runtime: walked,
        })
    }

    async fn stats(&self, container_id: &str) -> Result<Stats, DriverError> {
        let options = StatsOptionsBuilder::new().stream(false).build();
        let mut stream = self.docker.stats(container_id, Some(options));
        let Some(sample) = stream.next().await else {
            return Ok(Stats::default());
        };
        Ok(stats_from(sample.map_err(|e| classify(&e, None))?))
    }
}

/// How recent a firewall check a runtime start relies on (the reconciler checks every 5 s).
const FIREWALL_FRESH: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
