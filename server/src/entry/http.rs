//! The entry layer's HTTP endpoints, outside sessions: Traefik's forward-auth check and the
//! workspace routes Traefik's HTTP provider polls.

use super::{Decision, Deny, EntryRequest, USER_ID_HEADER, handoff};
use crate::http::ServerState;
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
        headers
            .get_all(name)
            .iter()
            .map(axum::http::HeaderValue::len)
            .sum::<usize>()
            > limit
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
        uri: text("x-forwarded-uri"),
    };
    let decision = state.entry.decide(request).await;
    state.metrics.decision(match &decision {
        Decision::Allow { .. } => "allow",
        Decision::SignIn => "sign_in",
        Decision::NotRunning => "not_running",
        Decision::Handoff { .. } => "handoff",
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
        // A site of their own: the control plane hands the signed-in person over (or asks them
        // to sign in first), then sends them back to the page they asked for.
        Decision::SignIn if page && state.entry.hands_off() => {
            let asked = handoff::safe_path(text("x-forwarded-uri"));
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "workspace",
                    workspace_of_request(&state, text("x-forwarded-host")),
                )
                .append_pair("path", &asked)
                .finish();
            redirect(&format!("{public}/workspace/handoff?{query}"))
        }
        Decision::SignIn if page => redirect(&format!("{public}/login?next=/workspace")),
        Decision::Handoff { cookie, location } => {
            let https = public.starts_with("https://");
            let secure = if https { "; Secure" } else { "" };
            // Absolute: Traefik resolves a relative Location of forward-auth's answer against
            // forward-auth's own address. The host is the workspace host the decision matched.
            let scheme = if https { "https" } else { "http" };
            let host = text("x-forwarded-host").unwrap_or_default();
            let mut response = redirect(&format!("{scheme}://{host}{location}"));
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={cookie}; Path=/; HttpOnly; SameSite=Lax{secure}",
                handoff::COOKIE
            )) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
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
    if !trusted || !from_the_proxy_itself(&headers) {
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

/// Whether a request comes from the entry proxy itself: not forwarded at all, or forwarded only
/// by the proxy's own loopback entry point (`internal`, several replicas), never on behalf of
/// anyone else.
fn from_the_proxy_itself(headers: &HeaderMap) -> bool {
    let mut hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|hop| hop.trim().parse::<std::net::IpAddr>());
    hops.all(|hop| hop.is_ok_and(|ip| ip.is_loopback()))
        && (headers.get("x-forwarded-for").is_some() || !headers.contains_key("x-forwarded-host"))
}

/// The workspace name of a forwarded host, or "" (the handoff then refuses).
fn workspace_of_request<'h>(state: &ServerState, host: Option<&'h str>) -> &'h str {
    state
        .entry
        .workspace_domain()
        .and_then(|domain| clawloops_wire::edge::workspace_of(host?, domain))
        .unwrap_or_default()
}

#[derive(Debug, serde::Deserialize)]
pub struct HandoffQuery {
    #[serde(default)]
    workspace: String,
    path: Option<String>,
}

/// `GET /workspace/handoff?workspace=…&path=…` on the control plane (workspaces on a site of
/// their own, see [`crate::handoff`]): the signed-in owner gets a one-time code and is sent to
/// their workspace host to exchange it; anyone else is asked to sign in or refused.
pub async fn handoff(
    State(state): State<ServerState>,
    auth: axum_login::AuthSession<app::ssr::identity::auth::Backend>,
    axum::extract::Query(query): axum::extract::Query<HandoffQuery>,
) -> Response {
    let public = state.app.public_url();
    if !state.entry.hands_off() {
        return refuse(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Workspaces here are entered directly.",
            true,
            public,
        );
    }
    let path = handoff::safe_path(query.path.as_deref());
    let (Some(user), Some(session)) = (auth.user, auth.session.id()) else {
        let back: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("workspace", &query.workspace)
            .append_pair("path", &path)
            .finish();
        let next: String =
            url::form_urlencoded::byte_serialize(format!("/workspace/handoff?{back}").as_bytes())
                .collect();
        return redirect(&format!("{public}/login?next={next}"));
    };
    let own = clawloops_orchestrator::Orchestrator::workspace_name(&user.username);
    if query.workspace != own {
        return refuse(
            StatusCode::FORBIDDEN,
            Deny::NotYours.code(),
            Deny::NotYours.message(),
            true,
            public,
        );
    }
    let Some(base) = state.entry.workspace_url(&user.username) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Workspaces are not routed here.",
            true,
            public,
        );
    };
    match handoff::mint_code(state.app.pool(), &session.to_string(), &own).await {
        Ok(code) => {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code)
                .append_pair("path", &path)
                .finish();
            let base = base.trim_end_matches('/');
            redirect(&format!("{base}{}?{query}", handoff::PATH))
        }
        Err(err) => {
            tracing::error!(error = %err, "could not mint a workspace handoff code");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "ClawLoops cannot open your workspace right now. Try again in a moment.",
                true,
                public,
            )
        }
    }
}
