//! The simulator's kubelet: binds each new Pod to the one node, waits for its claims and
//! Secrets, runs its container on the local Docker engine with the Pod's security context,
//! limits and volumes, probes its readiness over HTTP, reports its status (running, ready,
//! terminated with the exit code, image pull failures), and on deletion stops it within its
//! grace period before the object goes.

use super::container::{conditions, realise};
use super::{Sim, now};
use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The label on every Docker object of one simulator.
pub(super) const SIM_LABEL: &str = "org.clawloops.kubesim";
/// The node every Pod is bound to.
pub const NODE: &str = "kubesim-node-1";

pub struct Kubelet {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) network: String,
    pub(super) root: tempfile::TempDir,
    /// Pods (by uid) being started or stopped right now.
    pub(super) busy: Mutex<HashSet<String>>,
    /// Pods (by uid) whose container exists: its name.
    pub(super) containers: Mutex<HashMap<String, String>>,
    pub(super) probe: reqwest::Client,
}

impl Kubelet {
    pub async fn new() -> Kubelet {
        let docker = Docker::connect_with_local_defaults().expect("the Docker engine");
        let mut raw = [0u8; 4];
        getrandom::fill(&mut raw).expect("random");
        let id = super::hex(&raw);
        let network = format!("kubesim-{id}");
        let request = NetworkCreateRequest {
            name: network.clone(),
            labels: Some(HashMap::from([(SIM_LABEL.to_owned(), id.clone())])),
            ..NetworkCreateRequest::default()
        };
        docker
            .create_network(request)
            .await
            .expect("the simulator's network");
        Kubelet {
            docker,
            id,
            network,
            root: tempfile::tempdir().expect("tempdir"),
            busy: Mutex::default(),
            containers: Mutex::default(),
            probe: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn container_name(&self, ns: &str, pod: &str) -> Option<String> {
        let name = format!("kubesim-{}-{ns}-{pod}", self.id);
        let known = self.containers.lock().ok()?.values().any(|c| *c == name);
        known.then_some(name)
    }

    pub fn volume_name(&self, ns: &str, claim: &str) -> String {
        format!("kubesim-{}-{ns}-{claim}", self.id)
    }

    /// Deletes a claim's volume once no container holds it.
    pub fn release_claim(&self, ns: &str, claim: &str) {
        let (docker, volume) = (self.docker.clone(), self.volume_name(ns, claim));
        tokio::spawn(async move {
            for _ in 0..50 {
                match docker
                    .remove_volume(
                        &volume,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await
                {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 409,
                        ..
                    }) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    _ => return,
                }
            }
        });
    }

    pub async fn logs(&self, ns: &str, pod: &str, tail: Option<usize>) -> Option<String> {
        let container = self.container_name(ns, pod)?;
        let tail = tail.map_or_else(|| "all".to_owned(), |t| t.to_string());
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let mut stream = self.docker.logs(&container, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        Some(text)
    }

    /// Memory (bytes, without page cache) and CPU (nanocores) of a running Pod.
    pub async fn metrics(&self, ns: &str, pod: &str) -> Option<(u64, u64)> {
        let container = self.container_name(ns, pod)?;
        let options = StatsOptionsBuilder::new().stream(false).build();
        let sample = self
            .docker
            .stats(&container, Some(options))
            .next()
            .await?
            .ok()?;
        let memory = sample.memory_stats?;
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
            .unwrap_or(0);
        let used = memory.usage?.saturating_sub(cache);
        (used > 0).then_some((used, 0))
    }

    /// Removes every container, volume and network of this simulator (the command line: it
    /// runs while a failing test unwinds).
    pub fn clean_up(&self) {
        let filter = format!("label={SIM_LABEL}={}", self.id);
        for (list, remove) in [
            (&["ps", "-aq"][..], &["rm", "-f"][..]),
            (&["volume", "ls", "-q"][..], &["volume", "rm", "-f"][..]),
        ] {
            let (_, ids) = crate::docker(&[list, &["--filter", &filter]].concat());
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = crate::docker(&[remove, &[id]].concat());
            }
        }
        let _ = crate::docker(&["network", "rm", &self.network]);
    }
}

/// The kubelet's loop: every Pod is looked at every 150 ms.
pub async fn run(sim: Arc<Sim>) {
    loop {
        let pods = sim.lock().everywhere("pods");
        for pod in pods {
            look_at(&sim, pod).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

pub(super) fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn claim_busy(sim: &Sim, uid: &str) -> bool {
    sim.kubelet
        .busy
        .lock()
        .map_or(true, |mut b| !b.insert(uid.to_owned()))
}

fn release(sim: &Sim, uid: &str) {
    if let Ok(mut b) = sim.kubelet.busy.lock() {
        b.remove(uid);
    }
}

async fn look_at(sim: &Arc<Sim>, pod: Value) {
    let uid = uid(&pod);
    let container = sim
        .kubelet
        .containers
        .lock()
        .ok()
        .and_then(|c| c.get(&uid).cloned());
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        if !sim.hold.load(std::sync::atomic::Ordering::SeqCst) && !claim_busy(sim, &uid) {
            tokio::spawn(stop(Arc::clone(sim), pod, container));
        }
        return;
    }
    match container {
        None => {
            let ended = matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            if !ended && !claim_busy(sim, &uid) {
                tokio::spawn(start(Arc::clone(sim), pod));
            }
        }
        Some(name) => {
            if !matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            ) {
                observe(sim, &pod, &name).await;
            }
        }
    }
}

/// Where a Pod is stored.
fn pod_key(pod: &Value) -> super::store::Key {
    let field = |f: &str| pod["metadata"][f].as_str().unwrap_or_default().to_owned();
    ("pods".to_owned(), field("namespace"), field("name"))
}

/// Writes the Pod's status (and node), when it changed and the Pod is still the same one.
pub(super) fn set_status(sim: &Sim, pod: &Value, status: Value) {
    let key = pod_key(pod);
    let mut store = sim.lock();
    let Some(mut current) = store.get(&key).cloned() else {
        return;
    };
    if current["metadata"]["uid"] != pod["metadata"]["uid"] {
        return;
    }
    let merged = {
        let mut merged = current["status"].clone();
        for (k, v) in status.as_object().into_iter().flatten() {
            merged[k] = v.clone();
        }
        merged
    };
    if merged == current["status"] && current["spec"]["nodeName"] == NODE {
        return;
    }
    current["status"] = merged;
    current["spec"]["nodeName"] = json!(NODE);
    store.put(key, current);
}

/// Starts a Pod's container, or reports why it cannot start yet.
async fn start(sim: Arc<Sim>, pod: Value) {
    let uid = uid(&pod);
    match realise(&sim, &pod).await {
        Ok(Some(container)) => {
            if let Ok(mut c) = sim.kubelet.containers.lock() {
                c.insert(uid.clone(), container);
            }
        }
        Ok(None) => {}
        Err(status) => set_status(&sim, &pod, status),
    }
    release(&sim, &uid);
}

/// Reports a running container's readiness, or how it ended.
async fn observe(sim: &Sim, pod: &Value, container: &str) {
    let k = &sim.kubelet;
    let Ok(info) = k.docker.inspect_container(container, None).await else {
        set_status(
            sim,
            pod,
            json!({"phase": "Failed", "reason": "ContainerGone", "message": "the container went away"}),
        );
        return;
    };
    let state = info.state.unwrap_or_default();
    let image = pod["spec"]["containers"][0]["image"].clone();
    let status_of = |ready: bool, state: Value| {
        json!([{"name": "runtime", "ready": ready, "started": true, "restartCount": 0, "image": image,
            "imageID": format!("docker-pullable://{}", image.as_str().unwrap_or_default()),
            "containerID": format!("docker://{container}"), "state": state}])
    };
    if state.running == Some(true) {
        let probe = &pod["spec"]["containers"][0]["readinessProbe"]["httpGet"];
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let url = format!(
            "http://{ip}:{}{}",
            probe["port"],
            probe["path"].as_str().unwrap_or("/")
        );
        let ready = probe.is_null()
            || k.probe
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
        let started = pod["status"]["startTime"].clone();
        set_status(
            sim,
            pod,
            json!({"conditions": conditions(ready),
            "containerStatuses": status_of(ready, json!({"running": {"startedAt": started}}))}),
        );
        return;
    }
    let code = state.exit_code.unwrap_or(0);
    let reason = if state.oom_killed == Some(true) {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    set_status(
        sim,
        pod,
        json!({
            "phase": if code == 0 { "Succeeded" } else { "Failed" },
            "conditions": conditions(false),
            "containerStatuses": status_of(false, json!({"terminated": {"exitCode": code, "reason": reason,
                "startedAt": pod["status"]["startTime"], "finishedAt": now(), "containerID": format!("docker://{container}")}})),
        }),
    );
}

/// Stops a deleted Pod's container within its grace, then removes the object.
async fn stop(sim: Arc<Sim>, pod: Value, container: Option<String>) {
    let k = &sim.kubelet;
    let uid = uid(&pod);
    if let Some(container) = container {
        let grace = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30);
        let options = StopContainerOptionsBuilder::new()
            .t(i32::try_from(grace).unwrap_or(30))
            .build();
        let _ = k.docker.stop_container(&container, Some(options)).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = k.docker.remove_container(&container, Some(remove)).await;
        if let Ok(mut c) = k.containers.lock() {
            c.remove(&uid);
        }
    }
    let _ = std::fs::remove_dir_all(k.root.path().join(&uid));
    let key = pod_key(&pod);
    {
        let mut store = sim.lock();
        if store
            .get(&key)
            .is_some_and(|p| p["metadata"]["uid"] == pod["metadata"]["uid"])
        {
            store.remove(&key);
        }
    }
    release(&sim, &uid);
}
