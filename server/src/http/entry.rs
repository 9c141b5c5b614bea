//! The entry layer's HTTP endpoints, outside sessions: Traefik's forward-auth check and the
//! workspace routes Traefik's HTTP provider polls.

use super::ServerState;
use crate::entry::{Decision, EntryRequest, USER_ID_HEADER};
use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use clawloops_orchestrator::USER_HEADER;
use std::net::SocketAddr;

/// `GET /internal/entry/auth`: Traefik's forwardAuth middleware asks this for every request to
/// a workspace host, describing it in `X-Forwarded-*` headers. 200 with the identity headers
/// lets it pass; anything else is returned to the browser as is.
pub async fn auth(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let public = state.app.public_url();
    // Browsers keep a site's cookies far below this; more is an attack or a broken client.
    let oversized = |name: &str, limit: usize| {
        headers.get_all(name).iter().map(|v| v.len()).sum::<usize>() > limit
    };
    if oversized(header::COOKIE.as_str(), MAX_COOKIE_BYTES) {
        state.metrics.decision("too_large");
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            "The request's cookies are too large. Clear this site's cookies and sign in again.",
            false,
            public,
        );
    }
    if oversized("x-forwarded-uri", MAX_URI_BYTES) {
        state.metrics.decision("too_large");
        return refuse(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            "The address is too long.",
            false,
            public,
        );
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = EntryRequest {
        host: text("x-forwarded-host"),
        cookie: text(header::COOKIE.as_str()),
    };
    let decision = state.entry.decide(request).await;
    state.metrics.decision(match &decision {
        Decision::Allow { .. } => "allow",
        Decision::SignIn => "sign_in",
        Decision::NotRunning => "not_running",
        Decision::Deny(deny) => deny.code(),
        Decision::Unavailable => "unavailable",
        Decision::Busy => "busy",
    });
    let page = is_page_request(&headers);
    match decision {
        Decision::Allow {
            user_id,
            username,
            cookie,
        } => {
            let mut response = StatusCode::OK.into_response();
            let out = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&username) {
                out.insert(USER_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&user_id.to_string()) {
                out.insert(USER_ID_HEADER, v);
            }
            // Traefik replaces the forwarded Cookie header with this one (and drops it when
            // absent): the ClawLoops session never reaches the runtime.
            if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                out.insert(header::COOKIE, v);
            }
            out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Decision::SignIn if page => redirect(&format!("{public}/login?next=/workspace")),
        Decision::SignIn => refuse(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Sign in to ClawLoops to open your workspace.",
            false,
            public,
        ),
        Decision::NotRunning if page => redirect(&format!("{public}/workspace")),
        Decision::NotRunning => refuse(
            StatusCode::CONFLICT,
            "RUNTIME_NOT_RUNNING",
            "Your runtime is not running. Start it from ClawLoops.",
            false,
            public,
        ),
        Decision::Deny(deny) => refuse(
            StatusCode::FORBIDDEN,
            deny.code(),
            deny.message(),
            page,
            public,
        ),
        Decision::Busy => {
            let mut response = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "ClawLoops is checking many sign-ins right now. Try again in a moment.",
                page,
                public,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Decision::Unavailable => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "ClawLoops cannot check your sign-in right now. Try again in a moment.",
            page,
            public,
        ),
    }
}

/// The most cookie bytes a workspace request may carry.
const MAX_COOKIE_BYTES: usize = 16 * 1024;
/// The longest workspace request path and query.
const MAX_URI_BYTES: usize = 16 * 1024;

/// A browser navigating (not a script, not a WebSocket): it gets pages and redirects.
fn is_page_request(headers: &HeaderMap) -> bool {
    let get = headers
        .get("x-forwarded-method")
        .is_none_or(|m| m.as_bytes().eq_ignore_ascii_case(b"GET"));
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    get && html && !headers.contains_key(header::UPGRADE)
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refusal: a small page for browsers, `{code, message}` for everything else.
fn refuse(status: StatusCode, code: &str, message: &str, page: bool, public: &str) -> Response {
    if page {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Workspace \
             unavailable</title><meta name=\"viewport\" content=\"width=device-width\"></head>\
             <body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;\
             padding:0 1rem;color-scheme:light dark\"><h1>Workspace unavailable</h1><p>{message}\
             </p><p><a href=\"{public}/\">Back to ClawLoops</a></p></body></html>"
        );
        return (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response();
    }
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

/// `GET /internal/entry/traefik`: the workspace routers and services, for Traefik's HTTP
/// provider. Only the entry proxy may read it: the caller must be a trusted proxy (or this
/// machine) calling directly, not a request Traefik forwards for a browser.
pub async fn traefik(
    State(state): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip = peer.ip().to_canonical();
    let trusted = ip.is_loopback() || state.guard.trusted_proxies.iter().any(|n| n.contains(&ip));
    let forwarded =
        headers.contains_key("x-forwarded-for") || headers.contains_key("x-forwarded-host");
    if !trusted || forwarded {
        return refuse(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "Only the entry proxy may read its routes.",
            false,
            "",
        );
    }
    match state.entry.traefik_routes().await {
        Ok(doc) => Json(doc).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not list workspace routes");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The workspace routes cannot be read right now.",
                false,
                "",
            )
        }
    }
}
