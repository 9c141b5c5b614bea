//! The HTTP surface: the Leptos app and its server functions, plus plain routes for
//! health and metrics, wrapped in request ids, one log line per request and metrics.

mod error_status;
mod exports;
mod health;
pub mod metrics;
pub mod request_guard;
mod sso;

use crate::entry::http as entry;
use app::ssr::AppState;
use app::ssr::identity::auth::{Backend, store::PgSessionStore};
use axum::{
    Router,
    extract::{FromRef, State},
    routing::get,
};
use axum_login::AuthManagerLayerBuilder;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::sync::Arc;
use std::time::Duration;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::{ServeDir, ServeFile},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};
use tracing::Level;

pub use metrics::HttpMetrics;

/// Everything the router's handlers can reach.
#[derive(Clone)]
pub struct ServerState {
    /// What server functions and pages use.
    pub app: AppState,
    /// Where the built site lives, for the Leptos integration.
    pub leptos: LeptosOptions,
    /// Request counters and latency histograms.
    pub metrics: Arc<HttpMetrics>,
    /// Client address and same-origin checks.
    pub guard: request_guard::GuardConfig,
    /// Whether the session cookie carries `Secure`.
    pub cookie_secure: bool,
    /// The session cookie's `Domain` (covering the workspace hosts), when workspaces are routed.
    pub cookie_domain: Option<String>,
    /// Set when the process begins to shut down: readiness answers 503 from then on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Signs the session cookie (derived from the installation key): a made-up session id is
    /// refused without a lookup, here and at forward-auth.
    pub session_key: tower_sessions::cookie::Key,
    /// Forward-auth and the workspace routes.
    pub entry: Arc<crate::entry::EntryGate>,
    /// The OpenAI-compatible model gateway.
    pub gateway: Arc<crate::gateway::Gateway>,
}

/// How long a page or server function may take to start its answer.
const APP_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "clawloops_session";

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(state: &ServerState) -> Self {
        state.leptos.clone()
    }
}

impl FromRef<ServerState> for AppState {
    fn from_ref(state: &ServerState) -> Self {
        state.app.clone()
    }
}

/// The complete router.
pub fn router(state: ServerState) -> Router {
    // Leptos renders with tasks spawned on a global executor. leptos_axum sets it lazily in
    // some handlers but not in the 404 fallback: a process whose first rendered page was a
    // 404 dropped that page's tasks and the request never finished. Set it up front.
    let _ = any_spawner::Executor::init_tokio();
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());

    // The dashboard's files: pre-compressed by the build (brotli, then gzip, by what the
    // browser accepts). With hashed names (release builds) a name never changes content, so
    // browsers keep them for a year; unhashed (development) they are checked every time.
    let assets = Router::new()
        .fallback_service(
            ServeDir::new(site_root.join("pkg"))
                .precompressed_br()
                .precompressed_gzip(),
        )
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static(if state.leptos.hash_files {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        ));
    // Probes, metrics and static files need no session: they skip the session layers (which
    // load the session and its user from the database).
    let plain = Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::export))
        .nest("/pkg", assets)
        .route_service(
            "/favicon.svg",
            ServeFile::new(site_root.join("favicon.svg")),
        );

    Router::new()
        .merge(plain)
        .merge(app_routes(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            request_guard::client_info,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let path = crate::telemetry::loggable_path(req.uri().path());
                    // Health checks (the entry proxy asks every replica every second) are
                    // logged at debug level only.
                    if matches!(req.uri().path(), "/readyz" | "/healthz") {
                        tracing::debug_span!("request", id, method = %req.method(), path = %path)
                    } else {
                        tracing::info_span!("request", id, method = %req.method(), path = %path)
                    }
                })
                .on_request(())
                .on_response(
                    |res: &axum::http::Response<_>, latency: Duration, span: &tracing::Span| {
                        let status = res.status().as_u16();
                        let latency_ms = latency.as_secs_f64() * 1000.0;
                        let quiet = span.metadata().is_none_or(|m| *m.level() == Level::DEBUG);
                        if quiet && status < 500 {
                            tracing::event!(Level::DEBUG, status, latency_ms, "request");
                        } else {
                            tracing::event!(Level::INFO, status, latency_ms, "request");
                        }
                    },
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Forward-auth is the hottest path (every workspace request): added after the layers,
        // it skips request ids, the per-request log line and the per-route histogram, and
        // counts its decisions instead (`clawloops_entry_decisions_total`).
        .route("/internal/entry/auth", get(entry::auth))
        // Traefik polls this every second: no log line per poll either.
        .route("/internal/entry/traefik", get(entry::traefik))
        .with_state(state.clone())
        // The model gateway: its own log (the usage table) and metrics, no session, no
        // same-origin check (keys, not cookies).
        .merge(crate::gateway::router(state.gateway.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.app.public_url().starts_with("https://"),
            security_headers,
        ))
}

/// What every response says about how browsers may use it: never framed (clickjacking), never
/// sniffed into another type, no referrer beyond this site (invitation links carry tokens),
/// its own browsing context group, and — served over HTTPS — HTTPS only from now on (HSTS).
/// Pages set their own Content-Security-Policy (with the response's script nonce, see
/// `app::shell`); everything else gets one that allows nothing but inline styles (the small
/// refusal pages of forward-auth).
async fn security_headers(
    State(https): State<bool>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                 form-action 'none'; frame-ancestors 'none'",
            ),
        );
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The Leptos pages and server functions, behind sessions and the same-origin check.
fn app_routes(state: &ServerState) -> Router<ServerState> {
    let routes = generate_route_list(app::App);
    let context = {
        let app = state.app.clone();
        move || provide_context(app.clone())
    };
    let shell = {
        let options = state.leptos.clone();
        move || app::shell(options.clone())
    };
    let policy = state.app.session_policy();
    let mut sessions = SessionManagerLayer::new(PgSessionStore::new(state.app.pool().clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.cookie_secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(policy.idle));
    if let Some(domain) = &state.cookie_domain {
        // Sent to the workspace hosts too, where forward-auth reads it (and strips it before
        // the request reaches the runtime).
        sessions = sessions.with_domain(domain.clone());
    }
    let sessions = sessions.with_signed(state.session_key.clone());
    let auth =
        AuthManagerLayerBuilder::new(Backend::new(state.app.pool().clone()), sessions).build();

    Router::new()
        .route("/admin/usage.csv", get(exports::usage_csv))
        .route("/workspace/handoff", get(entry::handoff))
        .route("/auth/sso/{id}/start", get(sso::start))
        .route("/auth/sso/{id}/callback", get(sso::callback))
        .leptos_routes_with_context(state, routes, context.clone(), shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            ServerState,
            _,
        >(context, app::shell))
        .layer(auth)
        .layer(axum::middleware::from_fn(error_status::from_error_code))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            request_guard::same_origin,
        ))
        // Pages carry the signed-in person's data and change with every action: never cached
        // (a year-long cache is for the hashed assets above).
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
        // A page or call that has not started answering within a minute is abandoned with a
        // 503 rather than holding its connection and tasks for ever.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            APP_REQUEST_TIMEOUT,
        ))
}
