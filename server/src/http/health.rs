//! Liveness and readiness probes.

use super::ServerState;
use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// How long readiness waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the database answers, 503 when it does not or when the process is
/// shutting down (so the entry proxy sends new requests to other replicas).
pub async fn ready(State(state): State<ServerState>) -> (StatusCode, Json<Value>) {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    let ping = sqlx::query("SELECT 1").execute(state.app.pool());
    match tokio::time::timeout(DB_TIMEOUT, ping).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "up" })),
        ),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database query failed");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness: database did not answer within {DB_TIMEOUT:?}");
            not_ready()
        }
    }
}

fn not_ready() -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "not_ready", "database": "down" })),
    )
}
