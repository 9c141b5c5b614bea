//! The simulated API server's HTTP surface: the core and named-group paths for the resources
//! the runtime driver uses (list, watch, create, get, replace, delete), pod logs and pod
//! metrics, with the status codes and Status bodies a real API server answers.

use super::Sim;
use super::select::{Fields, Labels};
use super::validate::{self, Kind, Refusal};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A Status body with `code`.
pub fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn refused((code, reason, message): Refusal) -> Response {
    status(code, reason, &message)
}

fn not_found(kind: Kind, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} {name:?} not found", kind.resource),
    )
}

pub(super) type Params = HashMap<String, String>;

/// The API server's answer for a resource it does not serve.
fn unknown() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

pub(super) fn list(
    State(sim): State<Arc<Sim>>,
    api_version: &str,
    ns: &str,
    resource: &str,
    Query(q): Query<Params>,
) -> Response {
    let Some(kind) = validate::kind_of(api_version, resource) else {
        return unknown();
    };
    if let Some(answer) = sim.fault("list", resource) {
        return answer;
    }
    let (labels, fields) = match (
        Labels::parse(q.get("labelSelector").map_or("", String::as_str)),
        Fields::parse(q.get("fieldSelector").map_or("", String::as_str)),
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return status(400, "BadRequest", &e),
    };
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return super::watch::watch(sim, kind, ns.to_owned(), labels, fields, q);
    }
    let store = sim.lock();
    let items: Vec<Value> = store
        .all(resource, ns)
        .into_iter()
        .filter(|o| labels.matches(o["metadata"].get("labels")) && fields.matches(o))
        .collect();
    axum::Json(json!({
        "kind": format!("{}List", kind.kind),
        "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": store.revision().to_string()},
        "items": items,
    }))
    .into_response()
}

pub(super) fn create(
    sim: &Sim,
    api_version: &str,
    ns: &str,
    resource: &str,
    body: &[u8],
) -> Response {
    let Some(kind) = validate::kind_of(api_version, resource) else {
        return unknown();
    };
    if let Some(answer) = sim.fault("create", resource) {
        return answer;
    }
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "the body is not JSON");
    };
    if object["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    object["metadata"]["namespace"] = json!(ns);
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        meta.insert("uid".into(), json!(uuid()));
        meta.insert("creationTimestamp".into(), json!(super::now()));
        meta.insert("generation".into(), json!(1));
    }
    let mut object = match validate::check(kind, object) {
        Ok(object) => object,
        Err(refusal) => return refused(refusal),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = (resource.to_owned(), ns.to_owned(), name.clone());
    let mut store = sim.lock();
    if store.get(&key).is_some() {
        return status(
            409,
            "AlreadyExists",
            &format!("{resource} {name:?} already exists"),
        );
    }
    match kind.kind {
        "Pod" => object["status"] = json!({"phase": "Pending", "qosClass": "Guaranteed"}),
        "PersistentVolumeClaim" => {
            let class = object["spec"]["storageClassName"]
                .as_str()
                .map(str::to_owned);
            match class.filter(|c| !sim.storage_classes.contains(c)) {
                None => {
                    object["status"] = json!({"phase": "Bound", "accessModes": object["spec"]["accessModes"],
                        "capacity": {"storage": object["spec"]["resources"]["requests"]["storage"]}});
                    object["spec"]["volumeName"] = json!(format!(
                        "pvc-{}",
                        object["metadata"]["uid"].as_str().unwrap_or_default()
                    ));
                }
                Some(class) => {
                    object["status"] = json!({"phase": "Pending"});
                    super::event(
                        &mut store,
                        ns,
                        &object,
                        "ProvisioningFailed",
                        &format!("storageclass.storage.k8s.io {class:?} not found"),
                    );
                }
            }
        }
        _ => {}
    }
    let made = store.put(key, object);
    (StatusCode::CREATED, axum::Json(made)).into_response()
}

pub(super) async fn fetch(
    sim: &Sim,
    api_version: &str,
    ns: &str,
    resource: &str,
    name: &str,
) -> Response {
    if api_version == "metrics.k8s.io/v1beta1" && resource == "pods" {
        return sim.pod_metrics(ns, name).await;
    }
    let Some(kind) = validate::kind_of(api_version, resource) else {
        return unknown();
    };
    if let Some(answer) = sim.fault("get", resource) {
        return answer;
    }
    let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
    match sim.lock().get(&key) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(kind, name),
    }
}

pub(super) fn replace(
    sim: &Sim,
    api_version: &str,
    ns: &str,
    resource: &str,
    name: &str,
    body: &[u8],
) -> Response {
    let Some(kind) = validate::kind_of(api_version, resource) else {
        return unknown();
    };
    if let Some(answer) = sim.fault("replace", resource) {
        return answer;
    }
    let Ok(object) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "the body is not JSON");
    };
    let mut object = match validate::check(kind, object) {
        Ok(object) => object,
        Err(refusal) => return refused(refusal),
    };
    let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
    let mut store = sim.lock();
    let Some(current) = store.get(&key).cloned() else {
        return not_found(kind, name);
    };
    let sent = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !sent.is_empty()
        && sent
            != current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
    {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {resource} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    if kind.kind == "Pod" && object["spec"] != current["spec"] {
        return status(
            422,
            "Invalid",
            &format!(
                "Pod {name:?} is invalid: spec: Forbidden: pod updates may not change fields other than image and a few others"
            ),
        );
    }
    for field in ["uid", "creationTimestamp", "namespace", "deletionTimestamp"] {
        object["metadata"][field] = current["metadata"][field].clone();
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
    }
    object["status"] = current["status"].clone();
    if object["status"].is_null()
        && let Some(o) = object.as_object_mut()
    {
        o.remove("status");
    }
    axum::Json(store.put(key, object)).into_response()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteBody {
    grace_period_seconds: Option<i64>,
}

pub(super) fn delete(
    sim: &Sim,
    api_version: &str,
    ns: &str,
    resource: &str,
    name: &str,
    q: &Params,
    body: &[u8],
) -> Response {
    let Some(kind) = validate::kind_of(api_version, resource) else {
        return unknown();
    };
    if let Some(answer) = sim.fault("delete", resource) {
        return answer;
    }
    let options: DeleteBody = serde_json::from_slice(body).unwrap_or_default();
    let grace = options
        .grace_period_seconds
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
    let mut store = sim.lock();
    let Some(mut object) = store.get(&key).cloned() else {
        return not_found(kind, name);
    };
    if kind.kind == "Pod" {
        // The kubelet stops the container within the grace and then removes the object.
        if object["metadata"]["deletionTimestamp"].is_null() {
            let grace = grace
                .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            object["metadata"]["deletionTimestamp"] = json!(super::now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            object = store.put(key, object);
        }
        return axum::Json(object).into_response();
    }
    let removed = store.remove(&key).unwrap_or(object);
    super::collect_garbage(&mut store, &removed);
    if kind.kind == "PersistentVolumeClaim" {
        sim.kubelet.release_claim(ns, name);
    }
    axum::Json(removed).into_response()
}

pub(super) async fn pod_log(
    State(sim): State<Arc<Sim>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Response {
    let key = ("pods".to_owned(), ns.clone(), name.clone());
    if sim.lock().get(&key).is_none() {
        return status(404, "NotFound", &format!("pods {name:?} not found"));
    }
    let tail = q.get("tailLines").and_then(|t| t.parse().ok());
    match sim.kubelet.logs(&ns, &name, tail).await {
        Some(text) => (StatusCode::OK, text).into_response(),
        None => status(
            400,
            "BadRequest",
            &format!(
                "container \"runtime\" in pod {name:?} is waiting to start: ContainerCreating"
            ),
        ),
    }
}

fn uuid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    let hex = super::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
