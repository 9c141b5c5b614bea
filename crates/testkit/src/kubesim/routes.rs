//! The simulated API server's routes: the core (`/api/v1`) and named-group (`/apis/…`) paths
//! of the resources it serves, onto the handlers of `api`.

use super::Sim;
use super::api::{Params, create, delete, fetch, list, pod_log, replace};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async {
                axum::Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kubesim"}))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}",
            get(core_list).post(core_create),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}/{name}",
            get(core_get).put(core_replace).delete(core_delete),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}",
            get(group_list).post(group_create),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
            get(group_get).put(group_replace).delete(group_delete),
        )
        .with_state(sim)
}

async fn core_list(
    s: State<Arc<Sim>>,
    Path((ns, r)): Path<(String, String)>,
    q: Query<Params>,
) -> Response {
    list(s, "v1", &ns, &r, q)
}
async fn group_list(
    s: State<Arc<Sim>>,
    Path((g, v, ns, r)): Path<(String, String, String, String)>,
    q: Query<Params>,
) -> Response {
    list(s, &format!("{g}/{v}"), &ns, &r, q)
}
async fn core_create(
    s: State<Arc<Sim>>,
    Path((ns, r)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    create(&s, "v1", &ns, &r, &body)
}
async fn group_create(
    s: State<Arc<Sim>>,
    Path((g, v, ns, r)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    create(&s, &format!("{g}/{v}"), &ns, &r, &body)
}
async fn core_get(
    s: State<Arc<Sim>>,
    Path((ns, r, n)): Path<(String, String, String)>,
) -> Response {
    fetch(&s, "v1", &ns, &r, &n).await
}
async fn group_get(
    s: State<Arc<Sim>>,
    Path((g, v, ns, r, n)): Path<(String, String, String, String, String)>,
) -> Response {
    fetch(&s, &format!("{g}/{v}"), &ns, &r, &n).await
}
async fn core_replace(
    s: State<Arc<Sim>>,
    Path((ns, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    replace(&s, "v1", &ns, &r, &n, &body)
}
async fn group_replace(
    s: State<Arc<Sim>>,
    Path((g, v, ns, r, n)): Path<(String, String, String, String, String)>,
    body: Bytes,
) -> Response {
    replace(&s, &format!("{g}/{v}"), &ns, &r, &n, &body)
}
async fn core_delete(
    s: State<Arc<Sim>>,
    Path((ns, r, n)): Path<(String, String, String)>,
    q: Query<Params>,
    body: Bytes,
) -> Response {
    delete(&s, "v1", &ns, &r, &n, &q, &body)
}
async fn group_delete(
    s: State<Arc<Sim>>,
    Path((g, v, ns, r, n)): Path<(String, String, String, String, String)>,
    q: Query<Params>,
    body: Bytes,
) -> Response {
    delete(&s, &format!("{g}/{v}"), &ns, &r, &n, &q, &body)
}
