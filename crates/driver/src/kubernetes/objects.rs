//! The Kubernetes objects of one runtime, as the driver asks the API server to make them: the
//! hardening Kubernetes can express (all of it but a per-pod process limit), the limits, the
//! workspace claim, the configuration as a Secret volume, and the network policy.

use super::{KubeSettings, annotations};
use crate::{RuntimeSpec, labels};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The configuration file's key in the Secret (and its name in the mounted directory).
pub const CONFIG_KEY: &str = "openclaw.json";
/// The runtime container's name in its Pod.
pub const CONTAINER: &str = "runtime";
/// How long a runtime gets between SIGTERM and SIGKILL when the Pod is deleted without a
/// grace of its own (the single-host driver's default).
const STOP_GRACE_SECONDS: i64 = 30;

/// The labels every object of a runtime carries.
pub fn runtime_labels(spec: &RuntimeSpec) -> BTreeMap<String, String> {
    spec.labels().into_iter().collect()
}

pub(super) fn meta(name: String, spec: &RuntimeSpec, settings: &KubeSettings) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(settings.namespace.clone()),
        labels: Some(runtime_labels(spec)),
        ..ObjectMeta::default()
    }
}

/// The runtime's Secret: its rendered configuration, and the Pod spec it starts from.
pub fn secret(spec: &RuntimeSpec, config: &str, settings: &KubeSettings) -> Secret {
    let pod_spec = serde_json::to_string(&pod_spec(spec, settings)).unwrap_or_default();
    let mut metadata = meta(spec.names().base, spec, settings);
    metadata.annotations = Some(BTreeMap::from([
        (
            annotations::CONFIG_HASH.to_owned(),
            spec.config_hash.clone(),
        ),
        (annotations::IMAGE.to_owned(), spec.image.clone()),
        (annotations::POD_SPEC.to_owned(), pod_spec),
    ]));
    Secret {
        metadata,
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            ByteString(config.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// The Pod that runs the runtime, from its Secret (`None` when the template is unreadable).
/// The Secret owns it: deleting the Secret deletes the Pod.
pub fn pod_from(secret: &Secret) -> Option<Pod> {
    let template = secret
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::POD_SPEC)?;
    let spec: PodSpec = serde_json::from_str(template).ok()?;
    let mut labels = secret.metadata.labels.clone()?;
    // The port is found again from the Pod alone (its endpoint).
    if let Some(port) = spec
        .containers
        .first()
        .and_then(|c| c.ports.as_ref()?.first())
    {
        labels.insert(labels::PORT.to_owned(), port.container_port.to_string());
    }
    let hash = secret
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::CONFIG_HASH)?;
    Some(Pod {
        metadata: ObjectMeta {
            name: secret.metadata.name.clone(),
            namespace: secret.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                annotations::CONFIG_HASH.to_owned(),
                hash.clone(),
            )])),
            owner_references: owner(secret).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// A reference to `secret` as the owner of a runtime's other objects.
pub fn owner(secret: &Secret) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Secret".to_owned(),
        name: secret.metadata.name.clone()?,
        uid: secret.metadata.uid.clone()?,
        controller: Some(false),
        block_owner_deletion: Some(false),
    })
}

/// The runtime's workspace claim: its disk limit as its size (or the installation's default),
/// on the configured storage class.
pub fn claim(spec: &RuntimeSpec, settings: &KubeSettings) -> PersistentVolumeClaim {
    let mb = spec.limits.disk_mb.unwrap_or(settings.workspace_mb);
    PersistentVolumeClaim {
        metadata: meta(spec.volume_name(), spec, settings),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: settings.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(format!("{mb}Mi")),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The runtime's Pod spec: non-root, every capability dropped, no privilege escalation, the
/// runtime's default seccomp profile, a read-only root, no service-account token, limits on
/// memory, CPU and ephemeral storage, and `restartPolicy: Never` (the orchestrator restarts).
pub fn pod_spec(spec: &RuntimeSpec, settings: &KubeSettings) -> PodSpec {
    let profile = &spec.profile;
    let (uid, gid) = crate::files::numeric_owner(&profile.user).unwrap_or((65534, 65534));
    let limits = BTreeMap::from([
        (
            "memory".to_owned(),
            Quantity(format!("{}Mi", spec.limits.memory_mb)),
        ),
        ("cpu".to_owned(), Quantity(millicores(spec.limits.cpus))),
        (
            "ephemeral-storage".to_owned(),
            Quantity(format!("{}Mi", settings.ephemeral_storage_mb)),
        ),
    ]);
    let mut volumes = vec![Volume {
        name: "workspace".to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: spec.volume_name(),
            read_only: Some(false),
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "workspace".to_owned(),
        mount_path: profile.state_mount.clone(),
        ..VolumeMount::default()
    }];
    if let Some(dir) = &profile.config_mount {
        volumes.push(Volume {
            name: "config".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(spec.names().base),
                // Group-readable: the files' group is the pod's fsGroup, the runtime's.
                default_mode: Some(0o440),
                items: Some(vec![KeyToPath {
                    key: CONFIG_KEY.to_owned(),
                    path: CONFIG_KEY.to_owned(),
                    mode: Some(0o440),
                }]),
                optional: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "config".to_owned(),
            mount_path: dir.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    for (i, (path, options)) in profile.tmpfs.iter().enumerate() {
        let name = format!("tmp-{i}");
        volumes.push(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: tmpfs_size(options).map(Quantity),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: path.clone(),
            ..VolumeMount::default()
        });
    }
    let port = i32::from(profile.port);
    PodSpec {
        containers: vec![Container {
            name: CONTAINER.to_owned(),
            image: Some(spec.image.clone()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            env: Some(
                profile
                    .env
                    .iter()
                    .map(|(name, value)| EnvVar {
                        name: name.clone(),
                        value: Some(value.clone()),
                        value_from: None,
                    })
                    .collect(),
            ),
            ports: Some(vec![ContainerPort {
                container_port: port,
                name: Some("runtime".to_owned()),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(profile.ready_path.clone()),
                    port: IntOrString::Int(port),
                    ..HTTPGetAction::default()
                }),
                period_seconds: Some(1),
                timeout_seconds: Some(3),
                failure_threshold: Some(3),
                success_threshold: Some(1),
                ..Probe::default()
            }),
            resources: Some(ResourceRequirements {
                // Requests as limits: a runtime is never the first evicted under pressure,
                // and the scheduler places it where it fits.
                requests: Some(limits.clone()),
                limits: Some(limits),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                privileged: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(mounts),
            ..Container::default()
        }],
        volumes: Some(volumes),
        hostname: Some(spec.hostname()),
        restart_policy: Some("Never".to_owned()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(STOP_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(i64::from(uid)),
            run_as_group: Some(i64::from(gid)),
            fs_group: Some(i64::from(gid)),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// `0.5` cores as `500m`.
fn millicores(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round().clamp(1.0, 256_000.0);
    // In range by the clamp above.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let milli = milli as u32;
    format!("{milli}m")
}

/// A tmpfs option list's `size=16m` as a quantity (`16Mi`).
fn tmpfs_size(options: &str) -> Option<String> {
    let size = options.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
    let suffix = match unit.to_ascii_lowercase().as_str() {
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| format!("{n}{suffix}"))
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
