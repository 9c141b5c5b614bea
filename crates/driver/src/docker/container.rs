//! A runtime's container as the engine is asked to make it: the hardening (no capabilities,
//! no new privileges, read-only root, no swap, no IPv6), the limits, and its two mounts; and
//! the client that probes its readiness.

use super::*;

impl DockerDriver {
    /// The runtime's configuration directory: one plain name directly under the root, or an
    /// error (a name with separators or dots would reach elsewhere on the disk).
    pub(super) fn config_dir(&self, spec: &RuntimeSpec) -> Result<PathBuf, DriverError> {
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

    /// The create request for `spec`'s container.
    pub(super) fn container_body(
        &self,
        spec: &RuntimeSpec,
    ) -> Result<ContainerCreateBody, DriverError> {
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
