//! The HTTP surface: the Leptos app and its server functions, plus plain routes for
//! health and metrics, wrapped in request ids, one log line per request and metrics.

mod health;
pub mod metrics;

use app::ssr::AppState;
use axum::{Router, extract::FromRef, routing::get};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::sync::Arc;
use std::time::Duration;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
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
}

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
    let routes = generate_route_list(app::App);
    let context = {
        let app = state.app.clone();
        move || provide_context(app.clone())
    };
    let shell = {
        let options = state.leptos.clone();
        move || app::shell(options.clone())
    };
    let request_id = axum::http::HeaderName::from_static("x-request-id");

    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::export))
        .leptos_routes_with_context(&state, routes, context.clone(), shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<ServerState, _>(
            context,
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", id, method = %req.method(), path = req.uri().path())
                })
                .on_request(())
                .on_response(
                    |res: &axum::http::Response<_>, latency: Duration, _span: &tracing::Span| {
                        tracing::event!(
                            Level::INFO,
                            status = res.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1000.0,
                            "request"
                        );
                    },
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
