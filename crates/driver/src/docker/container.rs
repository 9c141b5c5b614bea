//! A runtime's container as the engine is asked to make it: the hardening (no capabilities,
//! no new privileges, read-only root, no swap, no IPv6), the limits, and its two mounts; and
//! the client that probes its readiness.

use super::*;

/// A runtime's container as listed: what it is, and the path its readiness is asked on.
pub(super) struct Found {
    pub observed: Observation,
    pub ready_path: Option<String>,
}

impl DockerDriver {
    /// The runtime's configuration directory: one plain name directly under the root, or an
    /// error (a name with separators or dots would reach elsewhere on the disk).
    pub(super) fn config_dir(&self, names: &Names) -> Result<PathBuf, DriverError> {
        let name = &names.base;
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

    /// This installation's containers (one runtime's, with `runtime_id`), as observations
    /// without readiness.
    pub(super) async fn containers(
        &self,
        runtime_id: Option<&str>,
    ) -> Result<Vec<Found>, DriverError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.managed_filter(runtime_id.map(|id| (labels::RUNTIME, id))))
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(found.into_iter().filter_map(observation_from).collect())
    }

    /// The runtime's container, if there is one.
    pub(super) async fn container(&self, runtime_id: &str) -> Result<Option<Found>, DriverError> {
        Ok(self.containers(Some(runtime_id)).await?.into_iter().next())
    }

    /// Freezes (Docker pause, the cgroup freezer) or thaws the runtime's container.
    pub(super) async fn freeze(&self, runtime_id: &str, paused: bool) -> Result<(), DriverError> {
        let found = self
            .container(runtime_id)
            .await?
            .ok_or_else(|| DriverError::Missing(runtime_id.to_owned()))?;
        let phase = found.observed.phase;
        let outcome = match (paused, phase) {
            (true, Phase::Paused) | (false, Phase::Running) => return Ok(()),
            (true, _) => self.docker.pause_container(&found.observed.handle).await,
            (false, _) => self.docker.unpause_container(&found.observed.handle).await,
        };
        match outcome {
            Ok(()) => Ok(()),
            // A container that is not running can be neither frozen nor thawed: a freeze asked of
            // one that stopped meanwhile is moot, and a thaw of one that is not frozen is done.
            Err(e) if status_of(&e) == Some(409) && (!paused || phase != Phase::Running) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Thaws a frozen container first: a frozen process neither stops nor dies.
    pub(super) async fn thaw(&self, found: &Found) -> Result<(), DriverError> {
        if found.observed.phase == Phase::Paused {
            match self.docker.unpause_container(&found.observed.handle).await {
                Ok(()) => {}
                Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
                Err(e) => return Err(classify(&e, None)),
            }
        }
        Ok(())
    }

    /// Removes a container forcefully (a missing one, or one being removed, is fine).
    pub(super) async fn remove_container(&self, id: &str) -> Result<(), DriverError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Whether the image is available to this engine.
    pub async fn image_present(&self, image: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Writes the rendered configuration atomically where the container mounts it read-only.
    pub(super) fn install_config(&self, spec: &RuntimeSpec, text: &str) -> Result<(), DriverError> {
        let owner = crate::files::numeric_owner(&spec.profile.user);
        let dir = self.config_dir(&spec.names())?;
        crate::files::write_atomically(&self.config_root, &dir, text, owner).map_err(|e| {
            match e.raw_os_error() {
                Some(28) => DriverError::DiskFull(e.to_string()),
                _ => DriverError::Config(e.to_string()),
            }
        })
    }

    /// Whether the runtime answers its readiness path now (asked from the host, which reaches
    /// runtime networks).
    pub(super) async fn probe(&self, found: &Found) -> bool {
        let (Some(endpoint), Some(path)) = (&found.observed.endpoint, &found.ready_path) else {
            return false;
        };
        // No X-Forwarded-* headers: OpenClaw refuses forwarded requests from peers that are not
        // its trusted proxies, and the prober (the host) never is one.
        self.http
            .get(format!("{endpoint}{path}"))
            .send()
            .await
            .is_ok_and(|res| res.status().is_success())
    }

    /// The create request for `spec`'s container.
    pub(super) fn container_body(
        &self,
        spec: &RuntimeSpec,
    ) -> Result<ContainerCreateBody, DriverError> {
        let profile = &spec.profile;
        let mut labels = spec.labels();
        labels.insert(labels::CONFIG_HASH.to_owned(), spec.config_hash.clone());
        labels.insert(labels::PORT.to_owned(), profile.port.to_string());
        labels.insert(labels::READY_PATH.to_owned(), profile.ready_path.clone());
        let mut mounts = vec![Mount {
            target: Some(profile.state_mount.clone()),
            source: Some(spec.volume_name()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }];
        if let Some(target) = &profile.config_mount {
            mounts.push(Mount {
                target: Some(target.clone()),
                source: Some(self.config_dir(&spec.names())?.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            });
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "CPUs are validated to a few hundred at most; `as` saturates anyway"
        )]
        let nano_cpus = (spec.limits.cpus * 1e9) as i64;
        let host_config = HostConfig {
            memory: Some(i64::from(spec.limits.memory_mb) * 1024 * 1024),
            // No swap beyond the memory limit.
            memory_swap: Some(i64::from(spec.limits.memory_mb) * 1024 * 1024),
            nano_cpus: Some(nano_cpus),
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
        Ok(ContainerCreateBody {
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
        })
    }
}

/// Whether the host has IPv6 at all (else the sysctl that turns it off does not exist).
fn host_has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6/conf/all/disable_ipv6").exists()
}

/// The client for readiness probes. It follows no redirect: the runtime answering is
/// untrusted, and the prober runs on the host, outside the runtime firewall, so a redirect
/// would make it fetch any address the runtime names (a 3xx is simply "not ready").
pub(super) fn probe_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}
