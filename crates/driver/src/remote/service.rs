//! The runtime manager's side of the internal API.

use super::{Call, INSTANCE_HEADER, MIN_SECRET_LEN};
use crate::docker::DockerDriver;
use crate::{DriverError, RuntimeDriver};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Who may call, and with what.
#[derive(Debug, Clone)]
pub struct Access {
    /// The shared secret (at least [`MIN_SECRET_LEN`] characters).
    pub secret: String,
    /// Addresses or networks the control plane calls from.
    pub allowed_clients: Vec<ipnet::IpNet>,
    /// Where the installation this manager serves is written down: the first caller's
    /// installation (as named in [`INSTANCE_HEADER`]) is kept there, and calls for any
    /// other are refused, so the header can never reach another installation's runtimes.
    /// `None`: kept in memory for the process's life (tests).
    pub pin: Option<std::path::PathBuf>,
}

/// How this manager runs runtimes, from its own settings: a caller names which runtime and
/// where it stands, never the profile (user, mounts, environment), another image or wider
/// egress.
#[derive(Debug, Clone)]
pub struct Policy {
    pub profile: crate::Profile,
    /// The images runtimes may run.
    pub images: Vec<String>,
    pub egress: crate::firewall::Egress,
}

struct Shared {
    driver: DockerDriver,
    access: Access,
    policy: Policy,
    /// The installation served, once known.
    pinned: tokio::sync::Mutex<Option<String>>,
}

/// The runtime manager's router: `POST /v1/driver` (authenticated) and `GET /healthz`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: without the peer's
/// address every call is refused.
pub fn router(driver: DockerDriver, access: Access, policy: Policy) -> Result<Router, String> {
    if access.secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the shared secret must be at least {MIN_SECRET_LEN} characters"
        ));
    }
    let pinned = match &access.pin {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_owned()).filter(|t| valid_instance(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        },
        None => None,
    };
    let shared = Arc::new(Shared {
        driver,
        access,
        policy,
        pinned: tokio::sync::Mutex::new(pinned),
    });
    Ok(Router::new()
        .route("/v1/driver", post(call))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(shared))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn authorized(shared: &Shared, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Response> {
    let allowed = peer.is_some_and(|peer| {
        let ip = peer.ip().to_canonical();
        shared
            .access
            .allowed_clients
            .iter()
            .any(|net| net.contains(&ip))
    });
    if !allowed {
        tracing::warn!(peer = ?peer, "runtime manager call from an address that is not allowed");
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "this address may not call the runtime manager",
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches: bool = presented
        .as_bytes()
        .ct_eq(shared.access.secret.as_bytes())
        .into();
    if !matches {
        tracing::warn!(peer = ?peer, "runtime manager call without the shared secret");
        return Some(refuse(
            StatusCode::UNAUTHORIZED,
            "the shared secret is missing or wrong",
        ));
    }
    None
}

fn valid_instance(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Largest accepted call (a spec with its rendered configuration is a few KiB).
const MAX_BODY: usize = 1024 * 1024;

async fn call(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let headers = parts.headers;
    if let Some(refused) = authorized(&shared, peer, &headers) {
        return refused;
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the call is too large");
    };
    let Some(instance) = headers
        .get(INSTANCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_instance(v))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the x-clawloops-instance header must name the installation",
        );
    };
    if let Some(refused) = pin(&shared, instance).await {
        return refused;
    }
    let mut call: Call = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, &format!("not a driver call: {e}"));
        }
    };
    if call.spec().is_some_and(|spec| spec.instance != instance) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the runtime belongs to another installation",
        );
    }
    if let Err(message) = admit(&shared.policy, &mut call) {
        tracing::warn!(op = call.op(), %message, "runtime manager call refused");
        return refuse(StatusCode::BAD_REQUEST, &message);
    }
    tracing::debug!(op = call.op(), instance, "runtime manager call");
    // Every call is by runtime id, and the driver for this installation only sees objects
    // labelled as its own: anything else on the engine is invisible to the caller.
    let driver = shared.driver.for_instance(instance);
    Json(perform(&driver, call).await).into_response()
}

/// Refuses a call for an installation other than the one this manager serves (pinning the
/// first one it sees).
async fn pin(shared: &Shared, instance: &str) -> Option<Response> {
    let mut pinned = shared.pinned.lock().await;
    match pinned.as_deref() {
        Some(served) if served == instance => None,
        Some(_) => {
            tracing::warn!(instance, "runtime manager call for another installation");
            Some(refuse(
                StatusCode::FORBIDDEN,
                "this runtime manager serves another installation",
            ))
        }
        None => {
            if let Some(path) = &shared.access.pin
                && let Err(e) = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(path, instance))
            {
                tracing::error!(error = %e, path = %path.display(), "cannot write down the installation served");
                return Some(refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the runtime manager cannot write down the installation it serves",
                ));
            }
            tracing::info!(
                instance,
                "the runtime manager serves this installation from now on"
            );
            *pinned = Some(instance.to_owned());
            None
        }
    }
}

/// Checks every id and name a call carries, and puts this manager's own profile and egress
/// in place of the caller's. The reason for a refusal is returned.
fn admit(policy: &Policy, call: &mut Call) -> Result<(), String> {
    if let Some(id) = call.runtime_id()
        && !crate::spec::ids::runtime_id(id)
    {
        return Err(format!("{id:?} is not a runtime id"));
    }
    if let Call::Prepare { spec } | Call::Ensure { spec, .. } = call {
        spec.check()?;
        if !policy.images.contains(&spec.image) {
            return Err(format!(
                "the image {} is not one this runtime manager runs",
                spec.image
            ));
        }
        spec.profile = policy.profile.clone();
        spec.egress = policy.egress;
    }
    Ok(())
}

async fn perform(driver: &DockerDriver, call: Call) -> Result<serde_json::Value, DriverError> {
    fn to_value(v: impl serde::Serialize) -> Result<serde_json::Value, DriverError> {
        serde_json::to_value(v).map_err(|e| DriverError::Docker(e.to_string()))
    }
    match call {
        Call::EnsureIsolation => to_value(driver.ensure_isolation().await?),
        Call::Prepare { spec } => to_value(driver.prepare(&spec).await?),
        Call::Ensure {
            spec,
            config,
            replace,
        } => to_value(driver.ensure(&spec, &config, replace).await?),
        Call::SetRunning {
            runtime_id,
            running,
            grace_ms,
        } => {
            let grace = Duration::from_millis(grace_ms.min(MAX_GRACE_MS));
            to_value(driver.set_running(&runtime_id, running, grace).await?)
        }
        Call::SetPaused { runtime_id, paused } => {
            to_value(driver.set_paused(&runtime_id, paused).await?)
        }
        // Readiness is asked of the address the engine reports, never one the caller names.
        Call::Observe { runtime_id } => to_value(driver.observe(&runtime_id).await?),
        Call::List => to_value(driver.list().await?),
        Call::Remove {
            runtime_id,
            wipe_workspace,
        } => to_value(driver.remove(&runtime_id, wipe_workspace).await?),
        Call::Logs { runtime_id, lines } => {
            to_value(driver.logs(&runtime_id, lines.min(10_000)).await?)
        }
        Call::Stats { runtime_id } => to_value(driver.stats(&runtime_id).await?),
        Call::DiskUsage => to_value(driver.disk_usage().await?),
    }
}

/// The longest stop grace a caller may ask for (ten minutes).
const MAX_GRACE_MS: u64 = 600_000;
