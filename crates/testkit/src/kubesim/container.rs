//! Making a Pod's container: its volumes (the claim's Docker volume given to the fsGroup,
//! Secret files group-readable), its security context and limits as Docker options, and the
//! statuses a kubelet reports while it cannot start.

use super::kubelet::{Kubelet, SIM_LABEL, set_status, uid};
use super::{Sim, now};
use base64::Engine as _;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) fn waiting(pod: &Value, reason: &str, message: &str) -> Value {
    json!({"phase": "Pending", "containerStatuses": [{
        "name": "runtime", "ready": false, "restartCount": 0, "started": false,
        "image": pod["spec"]["containers"][0]["image"], "imageID": "",
        "state": {"waiting": {"reason": reason, "message": message}}}]})
}

fn unschedulable(message: &str) -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": message}]})
}

/// Makes and starts the container: `Ok(None)` when it must wait (a claim not bound), `Err`
/// with the status to report when it cannot start.
pub(super) async fn realise(sim: &Sim, pod: &Value) -> Result<Option<String>, Value> {
    let k = &sim.kubelet;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    let image = c["image"].as_str().unwrap_or_default();
    let security = &spec["securityContext"];
    let group = security["fsGroup"]
        .as_u64()
        .and_then(|g| u32::try_from(g).ok());
    let mut mounts = Vec::new();
    let mut tmpfs = HashMap::new();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let vname = volume["name"].as_str().unwrap_or_default();
        let Some(target) = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == vname)
        else {
            continue;
        };
        let path = target["mountPath"].as_str().unwrap_or_default().to_owned();
        if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            let found = sim
                .lock()
                .get(&("persistentvolumeclaims".into(), ns.into(), claim.into()))
                .cloned();
            if found.as_ref().and_then(|c| c["status"]["phase"].as_str()) != Some("Bound") {
                let why = match found {
                    None => format!(
                        "0/1 nodes are available: persistentvolumeclaim {claim:?} not found."
                    ),
                    Some(_) => {
                        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
                            .to_owned()
                    }
                };
                return Err(unschedulable(&why));
            }
            let volume = k
                .volume(ns, claim, group)
                .await
                .map_err(|e| waiting(pod, "CreateContainerError", &e))?;
            mounts.push(Mount {
                target: Some(path),
                source: Some(volume),
                typ: Some(MountType::VOLUME),
                ..Mount::default()
            });
        } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
            let found = sim
                .lock()
                .get(&("secrets".into(), ns.into(), secret.into()))
                .cloned();
            let Some(found) = found else {
                return Err(waiting(
                    pod,
                    "CreateContainerConfigError",
                    &format!("secret {secret:?} not found"),
                ));
            };
            let dir = k
                .secret_files(&uid(pod), vname, &volume["secret"], &found, group)
                .map_err(|e| waiting(pod, "CreateContainerConfigError", &e))?;
            mounts.push(Mount {
                target: Some(path),
                source: Some(dir),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Mount::default()
            });
        } else if volume["emptyDir"]["medium"] == "Memory" {
            let size = volume["emptyDir"]["sizeLimit"]
                .as_str()
                .map(|s| s.replace("Mi", "m").replace("Gi", "g").replace("Ki", "k"));
            tmpfs.insert(
                path,
                size.map_or_else(|| "rw".to_owned(), |s| format!("rw,size={s}")),
            );
        }
    }
    if k.docker.inspect_image(image).await.is_err() {
        return Err(waiting(
            pod,
            "ErrImagePull",
            &format!("failed to pull and unpack image {image:?}: not found"),
        ));
    }
    let container = format!("kubesim-{}-{ns}-{name}", k.id);
    let body = container_body(pod, k, mounts, tmpfs);
    let options = CreateContainerOptionsBuilder::new()
        .name(&container)
        .build();
    let made = k.docker.create_container(Some(options), body).await;
    if let Err(e) = made.and(Ok(())) {
        return Err(waiting(pod, "CreateContainerError", &e.to_string()));
    }
    if let Err(e) = k.docker.start_container(&container, None).await {
        return Err(waiting(pod, "RunContainerError", &e.to_string()));
    }
    let ip = k
        .docker
        .inspect_container(&container, None)
        .await
        .ok()
        .and_then(|i| {
            i.network_settings?
                .networks?
                .get(&k.network)?
                .ip_address
                .clone()
        })
        .unwrap_or_default();
    let started = now();
    set_status(
        sim,
        pod,
        json!({
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
            "startTime": started, "qosClass": "Guaranteed",
            "conditions": conditions(false),
            "containerStatuses": [{"name": "runtime", "ready": false, "started": true, "restartCount": 0,
                "image": image, "imageID": format!("docker-pullable://{image}"), "containerID": format!("docker://{container}"),
                "state": {"running": {"startedAt": started}}}],
        }),
    );
    Ok(Some(container))
}

pub(super) fn conditions(ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": ready},
        {"type": "Ready", "status": ready},
    ])
}

fn container_body(
    pod: &Value,
    k: &Kubelet,
    mounts: Vec<Mount>,
    tmpfs: HashMap<String, String>,
) -> ContainerCreateBody {
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    let pod_security = &spec["securityContext"];
    let security = &c["securityContext"];
    let user = |field: &str| {
        security[field]
            .as_i64()
            .or_else(|| pod_security[field].as_i64())
    };
    let user = match (user("runAsUser"), user("runAsGroup")) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        _ => None,
    };
    let limits = &c["resources"]["limits"];
    let memory = limits["memory"]
        .as_str()
        .and_then(clawloops_driver::kubernetes::quantity_bytes);
    let cpus = limits["cpu"]
        .as_str()
        .and_then(clawloops_driver::kubernetes::quantity_cores);
    let mut labels: HashMap<String, String> = pod["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    labels.insert(SIM_LABEL.to_owned(), k.id.clone());
    let drop_all = security["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a few hundred cores at most"
    )]
    let nano_cpus = cpus.map(|c| (c * 1e9) as i64);
    ContainerCreateBody {
        image: c["image"].as_str().map(str::to_owned),
        hostname: spec["hostname"].as_str().map(str::to_owned),
        user,
        env: Some(
            c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!(
                        "{}={}",
                        e["name"].as_str().unwrap_or_default(),
                        e["value"].as_str().unwrap_or_default()
                    )
                })
                .collect(),
        ),
        labels: Some(labels),
        host_config: Some(HostConfig {
            memory: memory.and_then(|m| i64::try_from(m).ok()),
            memory_swap: memory.and_then(|m| i64::try_from(m).ok()),
            nano_cpus,
            cap_drop: drop_all.then(|| vec!["ALL".to_owned()]),
            security_opt: (security["allowPrivilegeEscalation"] == false)
                .then(|| vec!["no-new-privileges:true".to_owned()]),
            readonly_rootfs: security["readOnlyRootFilesystem"].as_bool(),
            group_add: pod_security["fsGroup"]
                .as_i64()
                .map(|g| vec![g.to_string()]),
            mounts: Some(mounts),
            tmpfs: Some(tmpfs),
            network_mode: Some(k.network.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

impl Kubelet {
    /// The claim's volume, made on first use and given to the Pod's fsGroup (setgid,
    /// group-writable), as the kubelet does.
    async fn volume(&self, ns: &str, claim: &str, group: Option<u32>) -> Result<String, String> {
        let name = self.volume_name(ns, claim);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(HashMap::from([(SIM_LABEL.to_owned(), self.id.clone())])),
            ..VolumeCreateRequest::default()
        };
        let made = self
            .docker
            .create_volume(request)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(gid) = group {
            use std::os::unix::fs::PermissionsExt;
            let path = std::path::Path::new(&made.mountpoint);
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| e.to_string())?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o2775))
                .map_err(|e| e.to_string())?;
        }
        Ok(name)
    }

    /// Writes a Secret volume's files for one Pod, group-owned by its fsGroup.
    fn secret_files(
        &self,
        uid: &str,
        volume: &str,
        source: &Value,
        secret: &Value,
        group: Option<u32>,
    ) -> Result<String, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.root.path().join(uid).join(volume);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let default_mode = source["defaultMode"].as_u64().unwrap_or(0o644);
        let items: Vec<(String, String, u64)> = match source["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|i| {
                    (
                        i["key"].as_str().unwrap_or_default().to_owned(),
                        i["path"].as_str().unwrap_or_default().to_owned(),
                        i["mode"].as_u64().unwrap_or(default_mode),
                    )
                })
                .collect(),
            None => secret["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| (k.clone(), k.clone(), default_mode))
                .collect(),
        };
        for (key, path, mode) in items {
            let Some(encoded) = secret["data"][&key].as_str() else {
                return Err(format!("couldn't find key {key} in Secret"));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| e.to_string())?;
            let file = dir.join(&path);
            std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&file, Some(0), group).map_err(|e| e.to_string())?;
            let mode = u32::try_from(mode).unwrap_or(0o644);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
        }
        Ok(dir.display().to_string())
    }
}
