//! A runtime's service as the swarm is asked to make it: the hardening Swarm can express, the
//! limits, the workspace volume, the configuration as a secret, the health check that makes
//! "running" mean "ready", and the node it is pinned to.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, Mount, MountTmpfsOptions, MountType,
    MountVolumeOptions, NetworkAttachmentConfig, ResourceObject, SecretSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecPrivileges, TaskSpecContainerSpecSecrets, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::ListSecretsOptionsBuilder;
use sha2::{Digest, Sha256};

/// The label that records the node a runtime is pinned to.
pub(super) const NODE_LABEL: &str = "org.clawloops.node";

/// How often the engine runs the health command, and how long one run may take.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a runtime gets between SIGTERM and SIGKILL (the single-host driver's default).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A configuration's secret.
struct Secret {
    id: String,
    name: String,
}

impl SwarmDriver {
    /// Makes the runtime's service exist as `spec` says (0 replicas when new), replacing the
    /// spec of one made from another configuration (or any, when `replace`).
    pub(super) async fn ensure_service(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<(), DriverError> {
        self.check_image(&spec.image).await?;
        let secret = self.ensure_secret(spec, config).await?;
        let existing = self.service(&spec.runtime_id).await?;
        let pinned = existing
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.labels.as_ref())
            .and_then(|l| l.get(NODE_LABEL).cloned());
        let node = match (&spec.placement, pinned) {
            (Some(node), _) => node.clone(),
            (None, Some(node)) => node,
            (None, None) => self.least_loaded_node(&spec.runtime_id).await?,
        };
        let wanted = self.service_spec(spec, &secret, &node);
        match existing {
            None => match self.manager.create_service(wanted, None).await {
                Ok(_) => {}
                // A twin of this call (another replica, a resumed task) made it first.
                Err(e) if status_of(&e) == Some(409) => {}
                Err(e) => return Err(classify(&e, Some(&spec.image))),
            },
            Some(service) => {
                let made_from = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.labels.as_ref())
                    .and_then(|l| l.get(labels::CONFIG_HASH).cloned());
                if replace || made_from.as_deref() != Some(spec.config_hash.as_str()) {
                    // Replaced in place (same service, same node), not running: like a new
                    // container, it starts when asked.
                    self.update_service(&spec.runtime_id, |current| {
                        *current = wanted.clone();
                        if replace {
                            force_new_task(current);
                        }
                    })
                    .await?;
                }
            }
        }
        // Earlier configurations' secrets (one still used by a stopping task stays until the
        // next call).
        self.remove_secrets(&spec.runtime_id, Some(&secret.name))
            .await
    }

    /// Whether the image can be run: known to the registry the nodes pull from, or present in
    /// the manager's own store (a swarm whose nodes were loaded by hand).
    async fn check_image(&self, image: &str) -> Result<(), DriverError> {
        if self
            .manager
            .inspect_registry_image(image, None)
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self.manager.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Err(DriverError::ImageMissing(image.into())),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// The configuration as a secret named by its content's hash (secrets cannot change: a new
    /// configuration is a new secret).
    async fn ensure_secret(&self, spec: &RuntimeSpec, config: &str) -> Result<Secret, DriverError> {
        let digest = Sha256::digest(config.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let short = format!("{:016x}", u64::from_be_bytes(first));
        let name = format!("{}-config-{short}", spec.names().base);
        let secret = SecretSpec {
            name: Some(name.clone()),
            labels: Some(spec.labels()),
            data: Some(BASE64.encode(config.as_bytes())),
            ..Default::default()
        };
        let id = match self.manager.create_secret(secret).await {
            Ok(made) => made.id,
            Err(e) if status_of(&e) == Some(409) => self
                .manager
                .inspect_secret(&name)
                .await
                .map_err(|e| classify(&e, None))?
                .id
                .unwrap_or_default(),
            Err(e) => return Err(classify(&e, None)),
        };
        Ok(Secret { id, name })
    }

    /// Deletes the runtime's secrets except `keep`; one still in use stays.
    pub(super) async fn remove_secrets(
        &self,
        runtime_id: &str,
        keep: Option<&str>,
    ) -> Result<(), DriverError> {
        let options = ListSecretsOptionsBuilder::new()
            .filters(&self.filter(Some(runtime_id)))
            .build();
        let secrets = self
            .manager
            .list_secrets(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        for secret in secrets {
            let name = secret.spec.and_then(|s| s.name).unwrap_or_default();
            if Some(name.as_str()) == keep {
                continue;
            }
            match self.manager.delete_secret(&name).await {
                Ok(()) => {}
                Err(e) if matches!(status_of(&e), Some(400 | 404 | 409)) => {}
                Err(e) => return Err(classify(&e, None)),
            }
        }
        Ok(())
    }

    /// The service spec for `spec`, pinned to `node`, with no replicas.
    fn service_spec(&self, spec: &RuntimeSpec, secret: &Secret, node: &str) -> ServiceSpec {
        let profile = &spec.profile;
        let mut labels = spec.labels();
        labels.insert(labels::CONFIG_HASH.to_owned(), spec.config_hash.clone());
        labels.insert(labels::PORT.to_owned(), profile.port.to_string());
        labels.insert(labels::READY_PATH.to_owned(), profile.ready_path.clone());
        labels.insert(NODE_LABEL.to_owned(), node.to_owned());
        let (uid, gid) = crate::files::numeric_owner(&profile.user).unwrap_or((0, 0));
        let secrets = profile.config_mount.as_ref().map(|dir| {
            vec![TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(format!("{}/openclaw.json", dir.trim_end_matches('/'))),
                    uid: Some(uid.to_string()),
                    gid: Some(gid.to_string()),
                    mode: Some(0o400),
                }),
                secret_name: Some(secret.name.clone()),
                secret_id: Some(secret.id.clone()),
            }]
        });
        let health_check = (!profile.health_command.is_empty()).then(|| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_owned())
                    .chain(profile.health_command.iter().cloned())
                    .collect(),
            ),
            interval: Some(nanos(HEALTH_INTERVAL)),
            timeout: Some(nanos(HEALTH_TIMEOUT)),
            retries: Some(3),
            start_period: Some(0),
            start_interval: None,
        });
        let container = TaskSpecContainerSpec {
            image: Some(spec.image.clone()),
            // The service's labels (port included): task containers are found on their node
            // by them.
            labels: Some(labels.clone()),
            hostname: Some(spec.hostname()),
            env: Some(
                profile
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            user: Some(profile.user.clone()),
            read_only: Some(true),
            mounts: Some(mounts(spec)),
            capability_drop: Some(vec!["ALL".into()]),
            // Asked for, though engines at API 1.41 drop it (reported: HARDENING_GAPS).
            privileges: Some(TaskSpecContainerSpecPrivileges {
                no_new_privileges: Some(true),
                ..Default::default()
            }),
            stop_grace_period: Some(nanos(STOP_GRACE)),
            health_check,
            secrets,
            ..Default::default()
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "CPUs are validated to a few hundred at most; `as` saturates anyway"
        )]
        let nano_cpus = (spec.limits.cpus * 1e9) as i64;
        let task = TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(bollard::models::Limit {
                    nano_cpus: Some(nano_cpus),
                    memory_bytes: Some(i64::from(spec.limits.memory_mb) * 1024 * 1024),
                    pids: Some(i64::from(spec.limits.pids)),
                }),
                reservations: Some(ResourceObject::default()),
                ..Default::default()
            }),
            // The orchestrator owns crash recovery (it counts crashes and backs off): the
            // engine does not restart a runtime by itself.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.hostname=={node}")]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(spec.network_name()),
                ..Default::default()
            }]),
            force_update: Some(0),
            ..Default::default()
        };
        ServiceSpec {
            name: Some(spec.container_name()),
            labels: Some(labels),
            task_template: Some(task),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
                ..Default::default()
            }),
            // DNS round robin: a virtual IP needs IPVS, which not every kernel has; the entry
            // proxy is given the task's own address anyway.
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: None,
            }),
            ..Default::default()
        }
    }
}

/// The workspace volume (made by the engine of the node the task lands on, labelled) and the
/// tmpfs mounts on the read-only root.
fn mounts(spec: &RuntimeSpec) -> Vec<Mount> {
    let mut mounts = vec![Mount {
        target: Some(spec.profile.state_mount.clone()),
        source: Some(spec.volume_name()),
        typ: Some(MountType::VOLUME),
        volume_options: Some(MountVolumeOptions {
            labels: Some(spec.labels()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for (path, options) in &spec.profile.tmpfs {
        mounts.push(Mount {
            target: Some(path.clone()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: tmpfs_size(options),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    mounts
}

/// The `size=` of tmpfs options (`rw,size=16m`) in bytes.
fn tmpfs_size(options: &str) -> Option<i64> {
    let size = options.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (digits, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: i64 = digits.parse().ok()?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

pub(super) fn set_replicas(spec: &mut ServiceSpec, replicas: u64) {
    let wanted = i64::try_from(replicas).unwrap_or(1);
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(wanted),
        }),
        ..Default::default()
    });
}

/// Makes the engine replace the task even though nothing else changed (a restart).
pub(super) fn force_new_task(spec: &mut ServiceSpec) {
    if let Some(task) = spec.task_template.as_mut() {
        task.force_update = Some(task.force_update.unwrap_or_default().wrapping_add(1));
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_sizes() {
        assert_eq!(tmpfs_size("rw,size=16m"), Some(16 << 20));
        assert_eq!(tmpfs_size("size=2G,mode=1777"), Some(2 << 30));
        assert_eq!(tmpfs_size("size=512"), Some(512));
        assert_eq!(tmpfs_size("rw"), None);
        assert_eq!(tmpfs_size("size=3x"), None);
    }
}
