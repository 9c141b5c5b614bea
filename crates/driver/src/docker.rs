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
            .map_err(|e| classify(e, None))?;
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

    /// The runtime network's subnet and the entry proxy's address on it, when the network
    /// exists (one inspect, which is all a reconciler pass needs when nothing changed).
    async fn network_state(&self, name: &str) -> Result<Option<NetworkState>, DriverError> {
        let network = match self.docker.inspect_network(name, None).await {
            Ok(network) => network,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(classify(e, None)),
        };
        let Some(subnet) = network
            .ipam
            .and_then(|ipam| ipam.config)
            .into_iter()
            .flatten()
            .find_map(|c| c.subnet?.parse().ok())
        else {
            return Err(DriverError::Docker(format!(
                "the runtime network {name} has no IPv4 subnet"
            )));
        };
        let bridge = network
            .options
            .as_ref()
            .and_then(|o| o.get(BRIDGE_NAME))
            .cloned();
        let entry = self.entry_proxy.as_ref().and_then(|proxy| {
            network
                .containers
                .unwrap_or_default()
                .into_values()
                .find(|e| e.name.as_deref() == Some(proxy.as_str()))
                .and_then(|e| e.ipv4_address)
        });
        Ok(Some(NetworkState {
            subnet,
            entry,
            bridge,
        }))
    }

    /// Connects the entry proxy to the runtime's network at the subnet's second host address
    /// (the first is the gateway, i.e. the Docker host, which is never trusted). Idempotent.
    async fn connect_entry(
        &self,
        spec: &RuntimeSpec,
        network: &NetworkState,
    ) -> Result<Option<std::net::IpAddr>, DriverError> {
        let Some(proxy) = &self.entry_proxy else {
            return Ok(None);
        };
        let Some(address) = entry_address(network.subnet) else {
            return Err(DriverError::Docker(format!(
                "the runtime network {} has no room for the entry proxy",
                network.subnet
            )));
        };
        let name = spec.network_name();
        if let Some(current) = &network.entry {
            if current.split('/').next() == Some(address.to_string().as_str()) {
                return Ok(Some(address.into()));
            }
            // Attached at another address (made by hand?): move it to the agreed one.
            self.disconnect_entry(&name).await?;
        }
        let proxy_id = match self.docker.inspect_container(proxy, None).await {
            Ok(c) => c.id.unwrap_or_default(),
            Err(e) if status_of(&e) == Some(404) => {
                return Err(DriverError::EntryProxyMissing(proxy.clone()));
            }
            Err(e) => return Err(classify(e, None)),
        };
        let request = NetworkConnectRequest {
            container: proxy_id,
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(address.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        match self.docker.connect_network(&name, request).await {
            Ok(()) => Ok(Some(address.into())),
            // A concurrent prepare connected it first.
            Err(e) if e.to_string().contains("already exists") => Ok(Some(address.into())),
            Err(e) => Err(classify(e, None)),
        }
    }

    async fn disconnect_entry(&self, network: &str) -> Result<(), DriverError> {
        let Some(proxy) = &self.entry_proxy else {
            return Ok(());
        };
        let request = NetworkDisconnectRequest {
            container: proxy.clone(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(404)) => Ok(()),
            Err(e) if e.to_string().contains("not connected") => Ok(()),
            Err(e) => Err(classify(e, None)),
        }
    }

    /// The runtime's own network, on a free /28 of the pool, with a bridge the host firewall
    /// recognises ([`firewall::bridge_name`]); internal unless the runtime may reach the public
    /// internet. A network of another egress class (the setting changed) or from before the
    /// firewall is replaced, with the runtime's container. Concurrent creations that pick the
    /// same subnet are told so by Docker ("overlaps") and try again.
    async fn create_network(&self, spec: &RuntimeSpec) -> Result<NetworkState, DriverError> {
        let name = spec.network_name();
        let bridge = firewall::bridge_name(spec.egress, &name);
        if let Some(state) = self.network_state(&name).await? {
            if state.bridge.as_deref() == Some(bridge.as_str()) {
                return Ok(state);
            }
            tracing::info!(network = %name, egress = spec.egress.as_str(), "replacing a runtime network of another egress class");
            if let Some(old) = self.find(&spec.runtime_id).await? {
                self.remove(&old.id).await?;
            }
            self.disconnect_entry(&name).await?;
            match self.docker.remove_network(&name).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(classify(e, None)),
            }
        }
        // Subnets Docker refused as overlapping: another creation may hold one before its
        // network is listed (or a host route covers it), so it is not tried again.
        let mut refused: Vec<ipnet::IpNet> = Vec::new();
        for _ in 0..8 {
            let all = self
                .docker
                .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                .await
                .map_err(|e| classify(e, None))?;
            if all.iter().any(|n| n.name.as_deref() == Some(name.as_str())) {
                return self.existing_network(&name).await;
            }
            let used: Vec<ipnet::IpNet> = all
                .iter()
                .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
                .flatten()
                .filter_map(|c| c.subnet.as_deref()?.parse().ok())
                .chain(refused.iter().copied())
                .collect();
            let Some(subnet) = free_subnet(self.subnet_pool, &used, &spec.runtime_id) else {
                return Err(DriverError::Docker(format!(
                    "no free subnet is left in the runtime network pool {} (widen runtime_network_pool)",
                    self.subnet_pool
                )));
            };
            // Internal (no route out) unless public egress is allowed; other runtimes are on
            // other networks either way, and the host firewall has the last word.
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(spec.egress == firewall::Egress::None),
                options: Some(HashMap::from([(BRIDGE_NAME.to_owned(), bridge.clone())])),
                labels: Some(spec.labels()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    return Ok(NetworkState {
                        subnet,
                        entry: None,
                        bridge: Some(bridge),
                    });
                }
                Err(e) if status_of(&e) == Some(409) => return self.existing_network(&name).await,
                Err(e) if e.to_string().contains("overlaps") => {
                    refused.push(ipnet::IpNet::V4(subnet));
                    continue;
                }
                Err(e) => return Err(classify(e, None)),
            }
        }
        Err(DriverError::Docker(
            "no free subnet could be claimed for the runtime network after 8 tries".into(),
        ))
    }

    async fn existing_network(&self, name: &str) -> Result<NetworkState, DriverError> {
        self.network_state(name).await?.ok_or_else(|| {
            DriverError::Docker(format!(
                "the runtime network {name} vanished while it was made"
            ))
        })
    }

    /// The runtime's configuration directory: one plain name directly under the root, or an
    /// error (a name with separators or dots would reach elsewhere on the disk).
    fn config_dir(&self, spec: &RuntimeSpec) -> Result<PathBuf, DriverError> {
        let name = spec.container_name();
        let mut parts = std::path::Path::new(&name).components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(part)), None) if part == name.as_str() => {
                Ok(self.config_root.join(part))
            }
            _ => Err(DriverError::Config(format!(
                "{name:?} is not a directory name under the configuration root"
            ))),
        }
    }

    /// The bollard client, for tests that inspect what the driver made.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the engine's local volume driver takes a `size` (a project quota: its data root
    /// on XFS mounted with `pquota`). Asked once, by making and removing a tiny volume.
    pub async fn volume_quotas(&self) -> Result<bool, DriverError> {
        let ask = || async {
            let name = format!("{}-quota-probe", crate::spec::name_prefix(&self.instance));
            let probe = VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([(
                    labels::MANAGED_BY.to_owned(),
                    self.instance.clone(),
                )])),
                driver_opts: Some(HashMap::from([("size".to_owned(), "1048576".to_owned())])),
                ..Default::default()
            };
            match self.docker.create_volume(probe).await {
                Ok(_) => {
                    let options = RemoveVolumeOptionsBuilder::new().force(true).build();
                    if let Err(e) = self.docker.remove_volume(&name, Some(options)).await {
                        tracing::warn!(error = %e, volume = %name, "could not remove the quota probe volume");
                    }
                    tracing::info!("the Docker engine holds workspace volumes to their size limit");
                    Ok(true)
                }
                Err(e) if quota_unsupported(&e) => {
                    tracing::info!(
                        "the Docker engine cannot hold volumes to a size (its data root is not on \
                         XFS with pquota): workspace limits are measured and enforced by stopping"
                    );
                    Ok(false)
                }
                Err(e) => Err(classify(e, None)),
            }
        };
        self.volume_quotas.get_or_try_init(ask).await.copied()
    }

    fn managed_filter(&self, extra: Option<(&str, &str)>) -> HashMap<String, Vec<String>> {
        let mut wanted = vec![format!("{}={}", labels::MANAGED_BY, self.instance)];
        if let Some((key, value)) = extra {
            wanted.push(format!("{key}={value}"));
        }
        HashMap::from([("label".to_owned(), wanted)])
    }
}

/// Docker's answer to a `size` its local volume driver cannot enforce.
fn quota_unsupported(err: &BollardError) -> bool {
    matches!(err, BollardError::DockerResponseServerError { message, .. }
        if message.to_lowercase().contains("quota"))
}

fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Turns a bollard error into words; `image` names the image for a 404 on create.
fn classify(err: BollardError, image: Option<&str>) -> DriverError {
    match &err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let lower = message.to_lowercase();
            if lower.contains("no space left on device") {
                DriverError::DiskFull(message.clone())
            } else if *status_code == 404 && image.is_some() && lower.contains("image") {
                DriverError::ImageMissing(image.unwrap_or_default().to_owned())
            } else if *status_code == 409 {
                DriverError::Conflict
            } else {
                DriverError::Docker(message.clone())
            }
        }
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::RequestTimeoutError => DriverError::Unreachable(err.to_string()),
        _ => DriverError::Docker(err.to_string()),
    }
}

fn info_from(summary: ContainerSummary) -> Option<ContainerInfo> {
    let labels = summary.labels.unwrap_or_default();
    let runtime_id = labels.get(labels::RUNTIME)?.clone();
    let state = match summary.state {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerSummaryStateEnum::DEAD) => ContainerState::Dead,
        Some(ContainerSummaryStateEnum::EXITED) => {
            ContainerState::Exited(exit_code(summary.status.as_deref().unwrap_or_default()))
        }
        _ => ContainerState::Other,
    };
    let ip = summary
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|networks| {
            networks
                .into_iter()
                .find(|(name, _)| name.starts_with("clawloops-"))
                .and_then(|(_, endpoint)| endpoint.ip_address)
        })
        .and_then(|ip| ip.parse().ok());
    Some(ContainerInfo {
        id: summary.id.unwrap_or_default(),
        name: summary
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
        config_hash: labels.get(labels::CONFIG_HASH).cloned(),
        runtime_id,
        state,
        image: summary.image.unwrap_or_default(),
        ip,
    })
}

/// `Exited (137) 3 seconds ago` → 137.
fn exit_code(status: &str) -> i64 {
    status
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(code, _)| code.parse().ok())
        .unwrap_or(-1)
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
        // The engine holds the volume to its limit where it can; elsewhere the limit is
        // measured (`disk_usage`) and enforced by the orchestrator.
        let driver_opts = match spec.limits.disk_bytes() {
            Some(bytes) if self.volume_quotas().await? => {
                Some(HashMap::from([("size".to_owned(), bytes.to_string())]))
            }
            _ => None,
        };
        let volume = VolumeCreateRequest {
            name: Some(spec.volume_name()),
            labels: Some(spec.labels()),
            driver_opts,
            ..Default::default()
        };
        // Creating an existing named volume returns it unchanged.
        self.docker
            .create_volume(volume)
            .await
            .map_err(|e| classify(e, None))?;
        Ok(Prepared { entry_ip })
    }

    async fn image_present(&self, image: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(classify(e, None)),
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
            .map_err(|e| classify(e, None))?;
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
            .map_err(|e| classify(e, None))?;
        Ok(found.into_iter().filter_map(info_from).collect())
    }

    async fn create(&self, spec: &RuntimeSpec) -> Result<ContainerInfo, DriverError> {
        let profile = &spec.profile;
        let mut labels = spec.labels();
        labels.insert(labels::CONFIG_HASH.to_owned(), spec.config_hash.clone());
        let mut mounts = vec![Mount {
            target: Some(profile.state_mount.clone()),
            source: Some(spec.volume_name()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }];
        if let Some(target) = &profile.config_mount {
            mounts.push(Mount {
                target: Some(target.clone()),
                source: Some(self.config_dir(spec)?.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            });
        }
        let host_config = HostConfig {
            memory: Some(i64::from(spec.limits.memory_mb) * 1024 * 1024),
            // No swap beyond the memory limit.
            memory_swap: Some(i64::from(spec.limits.memory_mb) * 1024 * 1024),
            nano_cpus: Some((spec.limits.cpus * 1e9) as i64),
            pids_limit: Some(i64::from(spec.limits.pids)),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(profile.tmpfs.iter().cloned().collect()),
            mounts: Some(mounts),
            network_mode: Some(spec.network_name()),
            // No IPv6 inside (the host firewall refuses it anyway; where the host has none,
            // the setting does not exist).
            sysctls: host_has_ipv6().then(|| {
                HashMap::from([("net.ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned())])
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname()),
            user: Some(profile.user.clone()),
            env: Some(
                profile
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(labels),
            stop_timeout: Some(30),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.container_name())
            .build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| classify(e, Some(&spec.image)))?;
        self.find(&spec.runtime_id)
            .await?
            .ok_or_else(|| DriverError::Docker("the new container disappeared".into()))
    }

    async fn start(&self, container_id: &str) -> Result<(), DriverError> {
        match self.docker.start_container(container_id, None).await {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => Err(classify(e, None)),
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
            Err(e) => Err(classify(e, None)),
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
            Err(e) => Err(classify(e, None)),
        }
    }

    async fn install_config(&self, spec: &RuntimeSpec, text: &str) -> Result<(), DriverError> {
        let owner = crate::config::numeric_owner(&spec.profile.user);
        let dir = self.config_dir(spec)?;
        crate::config::write_atomically(&self.config_root, &dir, text, owner).map_err(|e| {
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
            Err(e) => return Err(classify(e, None)),
        }
        match std::fs::remove_dir_all(self.config_dir(spec)?) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::Config(e.to_string())),
        }
        if wipe_workspace {
            let options = RemoveVolumeOptionsBuilder::new().force(true).build();
            match self
                .docker
                .remove_volume(&spec.volume_name(), Some(options))
                .await
            {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(classify(e, None)),
            }
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
                Err(e) => return Err(classify(e, None)),
            }
        }
        let skip = out.len().saturating_sub(lines);
        Ok(out.split_off(skip))
    }

    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        let engine_enforced = self.volume_quotas().await?;
        let dirs = volume_dirs(self).await?;
        let walked = tokio::task::spawn_blocking(move || {
            let mut by_runtime = std::collections::BTreeMap::new();
            for (runtime, dir) in dirs {
                match crate::disk::tree_bytes(&dir, crate::disk::Budget::default()) {
                    Ok(tally) => {
                        if tally.partial {
                            tracing::warn!(%runtime, entries = tally.entries, "workspace too large to measure whole; counted a part");
                        }
                        by_runtime.insert(runtime, tally.bytes);
                    }
                    // Not on this host's disk (or not ours to read): no figure rather than a wrong one.
                    Err(e) => {
                        tracing::warn!(%runtime, error = %e, "could not measure a workspace volume (is the engine's volume directory readable here?)");
                    }
                }
            }
            by_runtime
        })
        .await
        .map_err(|e| DriverError::Docker(e.to_string()))?;
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
        let sample = sample.map_err(|e| classify(e, None))?;
        let memory = sample.memory_stats.unwrap_or_default();
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
            .unwrap_or(0);
        let cpu = |stats: Option<bollard::models::ContainerCpuStats>| {
            stats.map_or((0u64, 0u64, 1u32), |s| {
                (
                    s.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
                    s.system_cpu_usage.unwrap_or(0),
                    s.online_cpus.unwrap_or(1),
                )
            })
        };
        let (total, system, cpus) = cpu(sample.cpu_stats);
        let (pre_total, pre_system, _) = cpu(sample.precpu_stats);
        let cpu_delta = total.saturating_sub(pre_total) as f64;
        let system_delta = system.saturating_sub(pre_system) as f64;
        let cpu_cores = if system_delta > 0.0 {
            cpu_delta / system_delta * f64::from(cpus)
        } else {
            0.0
        };
        Ok(Stats {
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            cpu_cores,
        })
    }
}

/// The default pool runtime networks come from.
/// A runtime network as `prepare` needs it.
struct NetworkState {
    subnet: Ipv4Net,
    /// The entry proxy's address on it (`10.213.0.18/28`), when attached.
    entry: Option<String>,
    /// Its bridge interface's name, when ClawLoops chose it.
    bridge: Option<String>,
}

/// The client for readiness probes. It follows no redirect: the runtime answering is
/// untrusted, and the prober runs on the host, outside the runtime firewall, so a redirect
/// would make it fetch any address the runtime names (a 3xx is simply "not ready").
fn probe_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}

/// How recent a firewall check a runtime start relies on (the reconciler checks every 5 s).
const FIREWALL_FRESH: Duration = Duration::from_secs(10);

/// The network option that names a bridge network's interface.
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

fn host_has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6/conf/all/disable_ipv6").exists()
}

/// The entry proxy's address on a runtime network: the second host (the first is the gateway).
fn entry_address(subnet: Ipv4Net) -> Option<std::net::Ipv4Addr> {
    subnet.hosts().nth(1)
}

pub fn default_subnet_pool() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 16).unwrap_or_default()
}

/// A /28 of `pool` that overlaps none of `used`, searched from a place that depends on the
/// runtime (so that concurrent creations seldom pick the same one).
fn free_subnet(pool: Ipv4Net, used: &[ipnet::IpNet], runtime_id: &str) -> Option<Ipv4Net> {
    let candidates: Vec<Ipv4Net> = pool.subnets(28.max(pool.prefix_len())).ok()?.collect();
    if candidates.is_empty() {
        return None;
    }
    let start = runtime_id.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    }) % candidates.len();
    let overlaps = |c: &Ipv4Net| {
        used.iter().any(|u| match u {
            ipnet::IpNet::V4(u) => u.contains(&c.network()) || c.contains(&u.network()),
            ipnet::IpNet::V6(_) => false,
        })
    };
    (0..candidates.len())
        .map(|i| candidates[(start + i) % candidates.len()])
        .find(|c| !overlaps(c))
}

/// The directory each of this installation's workspace volumes keeps its files in on the
/// Docker host, by runtime id.
async fn volume_dirs(driver: &DockerDriver) -> Result<Vec<(String, PathBuf)>, DriverError> {
    Ok(list_volumes(driver)
        .await?
        .into_iter()
        .filter(|v| v.driver == "local" && v.name.ends_with("-workspace"))
        .filter_map(|v| {
            let runtime = v.labels.get(labels::RUNTIME)?.clone();
            crate::spec::ids::runtime_id(&runtime).then(|| (runtime, PathBuf::from(v.mountpoint)))
        })
        .collect())
}

/// Names of the volumes this installation made (for tests and cleanup tools).
pub async fn managed_volumes(driver: &DockerDriver) -> Result<Vec<String>, DriverError> {
    Ok(list_volumes(driver)
        .await?
        .into_iter()
        .map(|v| v.name)
        .collect())
}

/// The volumes this installation made.
async fn list_volumes(driver: &DockerDriver) -> Result<Vec<bollard::models::Volume>, DriverError> {
    let filters = driver.managed_filter(None);
    let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let found = driver
        .docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| classify(e, None))?;
    Ok(found.volumes.unwrap_or_default())
}

#[cfg(test)]
mod tests;
