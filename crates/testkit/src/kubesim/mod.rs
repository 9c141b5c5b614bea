//! An in-test Kubernetes API server ("kubesim") with a kubelet that runs Pods as containers on
//! the local Docker engine. No real API server can be installed on this machine; this one
//! answers the runtime driver with real Kubernetes JSON: objects read into and written from
//! their `k8s-openapi` types, resourceVersions and 409 Conflict, 404, 422 validation, watch
//! streams with bookmarks, and 410 Gone once history is compacted ([`KubeSim::compact`]).
//! Faults can be injected per verb and resource ([`KubeSim::refuse`]): a quota, a missing
//! right. Pods really run (the tiny stub image), so readiness, exit codes, logs and memory use
//! are the process's own; network policies are stored, and judged by [`policy`] instead of a
//! CNI.

mod api;
mod container;
mod kubelet;
pub mod policy;
mod routes;
mod select;
mod store;
mod validate;
mod watch;

use axum::response::Response;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// A refusal to inject: the next `times` requests of `verb` on `resource` are answered with it.
#[derive(Debug, Clone)]
struct Fault {
    verb: String,
    resource: String,
    code: u16,
    reason: String,
    message: String,
    times: usize,
}

/// What the handlers share.
pub struct Sim {
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    kubelet: kubelet::Kubelet,
    /// The storage classes that exist (a claim naming another stays Pending).
    storage_classes: Vec<String>,
    /// While set, the kubelet leaves deleted Pods be.
    hold: AtomicBool,
    /// How many watches were answered 410 Gone, and how many bookmarks were sent.
    expired: AtomicUsize,
    bookmarks: AtomicUsize,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The injected refusal for this request, if one is due.
    fn fault(&self, verb: &str, resource: &str) -> Option<Response> {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = faults
            .iter()
            .position(|f| f.verb == verb && f.resource == resource && f.times > 0)?;
        let fault = &mut faults[at];
        fault.times -= 1;
        Some(api::status(fault.code, &fault.reason, &fault.message))
    }

    async fn pod_metrics(&self, ns: &str, name: &str) -> Response {
        use axum::response::IntoResponse;
        match self.kubelet.metrics(ns, name).await {
            Some((memory, cpu_nanos)) => axum::Json(json!({
                "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": name, "namespace": ns},
                "timestamp": now(), "window": "10s",
                "containers": [{"name": "runtime", "usage": {
                    "memory": format!("{}Ki", memory / 1024), "cpu": format!("{cpu_nanos}n")}}],
            }))
            .into_response(),
            None => api::status(
                404,
                "NotFound",
                &format!("podmetrics.metrics.k8s.io {name:?} not found"),
            ),
        }
    }
}

/// Now, as the API server writes times (RFC 3339, seconds, UTC).
fn now() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// Lower-case hexadecimal of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Records an Event about `object` (as a controller would).
fn event(store: &mut Store, ns: &str, object: &Value, reason: &str, message: &str) {
    let name = format!(
        "{}.{}",
        object["metadata"]["name"].as_str().unwrap_or_default(),
        store.revision()
    );
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "uid": format!("event-{}", store.revision())},
        "involvedObject": {"kind": object["kind"], "name": object["metadata"]["name"],
            "namespace": ns, "uid": object["metadata"]["uid"]},
        "reason": reason, "message": message, "type": "Warning",
        "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
    });
    store.put(("events".into(), ns.into(), name), event);
}

/// The garbage collector: objects owned by `removed` go too (pods through the kubelet).
fn collect_garbage(store: &mut Store, removed: &Value) {
    let Some(uid) = removed["metadata"]["uid"].as_str() else {
        return;
    };
    let ns = removed["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for kind in validate::KINDS {
        for object in store.all(kind.resource, &ns) {
            let owned = object["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
            if !owned {
                continue;
            }
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = (kind.resource.to_owned(), ns.clone(), name);
            if kind.kind == "Pod" {
                if object["metadata"]["deletionTimestamp"].is_null() {
                    let mut ending = object.clone();
                    ending["metadata"]["deletionTimestamp"] = json!(now());
                    ending["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    store.put(key, ending);
                }
            } else if let Some(gone) = store.remove(&key) {
                collect_garbage(store, &gone);
            }
        }
    }
}

/// A running simulator: its address, and handles to inject faults and compact history.
pub struct KubeSim {
    pub url: String,
    sim: Arc<Sim>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl KubeSim {
    /// Starts a simulator on a free loopback port, its kubelet running Pods on the local
    /// Docker engine (on a network of its own). Storage classes: `standard` (and the
    /// default when a claim names none).
    pub async fn start() -> KubeSim {
        let kubelet = kubelet::Kubelet::new().await;
        let sim = Arc::new(Sim {
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Vec::new()),
            kubelet,
            storage_classes: vec!["standard".to_owned()],
            hold: AtomicBool::new(false),
            expired: AtomicUsize::new(0),
            bookmarks: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = routes::router(Arc::clone(&sim));
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let run = tokio::spawn(kubelet::run(Arc::clone(&sim)));
        KubeSim {
            url,
            sim,
            tasks: vec![serve, run],
        }
    }

    /// Answers the next `times` requests of `verb` (`create`, `get`, `list`, `replace`,
    /// `delete`) on `resource` with `code`, `reason` and `message`.
    pub fn refuse(
        &self,
        verb: &str,
        resource: &str,
        code: u16,
        reason: &str,
        message: &str,
        times: usize,
    ) {
        self.sim
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Fault {
                verb: verb.into(),
                resource: resource.into(),
                code,
                reason: reason.into(),
                message: message.into(),
                times,
            });
    }

    /// Compacts the history and ends open watches: watchers resuming from before now get 410
    /// Gone and list again.
    pub fn compact(&self) {
        self.sim.lock().compact();
    }

    /// A client of this API server, `namespace` its default.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("the simulator's address"));
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).expect("a client")
    }

    /// Holds (or lets go) the kubelet's work on deleted Pods.
    pub fn hold_deletions(&self, hold: bool) {
        self.sim.hold.store(hold, Ordering::SeqCst);
    }

    /// How many watches were answered 410 Gone so far.
    pub fn expired(&self) -> usize {
        self.sim.expired.load(Ordering::SeqCst)
    }

    /// How many bookmarks were sent so far.
    pub fn bookmarks(&self) -> usize {
        self.sim.bookmarks.load(Ordering::SeqCst)
    }

    /// One object as stored, or `None`.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.sim
            .lock()
            .get(&(resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Every object of `resource` in `namespace`.
    pub fn objects(&self, resource: &str, namespace: &str) -> Vec<Value> {
        self.sim.lock().all(resource, namespace)
    }

    /// The Docker container running a Pod, if one does.
    pub fn container_of(&self, namespace: &str, pod: &str) -> Option<String> {
        self.sim.kubelet.container_name(namespace, pod)
    }

    /// The Docker network Pods run on (the pod network): join a container to it to reach
    /// Pods by their IPs, as an entry proxy in the cluster does.
    pub fn network(&self) -> &str {
        &self.sim.kubelet.network
    }

    /// The Docker volume holding a claim's data.
    pub fn volume_of(&self, namespace: &str, claim: &str) -> String {
        self.sim.kubelet.volume_name(namespace, claim)
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.sim.kubelet.clean_up();
    }
}
