//! Prometheus metrics: request counts and latency by route, in-flight requests, pool usage
//! and build info, exported in the text format at `GET /metrics`.
//!
//! The registry belongs to the process state (not a global), so tests can build routers
//! side by side.

use super::ServerState;
use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::time::Instant;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The HTTP and process metrics of one server.
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Gauge,
    pool_size: Gauge,
    pool_idle: Gauge,
    leader: Gauge,
    decisions: Family<DecisionLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s in doublings: page renders, server functions and slow upstreams alike.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

impl HttpMetrics {
    /// A fresh registry with every metric registered, the gateway's included.
    pub fn new(
        build: &app::ssr::BuildInfo,
        gateway: &crate::gateway::metrics::GatewayMetrics,
    ) -> Self {
        let mut registry = Registry::with_prefix("clawloops");
        gateway.register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let in_flight = Gauge::default();
        let pool_size = Gauge::default();
        let pool_idle = Gauge::default();
        let leader = Gauge::default();
        let info = Family::<BuildLabels, Gauge>::default();
        info.get_or_create(&BuildLabels {
            version: build.version.to_owned(),
            commit: build.git_commit.unwrap_or("unknown").to_owned(),
        })
        .set(1);

        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections in the pool",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections in the pool",
            pool_idle.clone(),
        );
        registry.register(
            "reconciler_leader",
            "1 while this replica leads the reconciler (one replica of an installation at a time)",
            leader.clone(),
        );
        registry.register("build_info", "Version of the running binary", info);
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "entry_decisions",
            "Forward-auth decisions on workspace requests, by outcome (allow, sign_in, not_running, the deny code, unavailable)",
            decisions.clone(),
        );
        HttpMetrics {
            registry,
            requests,
            latency,
            in_flight,
            pool_size,
            pool_idle,
            leader,
            decisions,
        }
    }

    /// Counts one forward-auth decision (the hot path skips the per-request middleware).
    pub fn decision(&self, outcome: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { outcome })
            .inc();
    }
}

/// Middleware: counts and times every request under its route pattern (never the raw path,
/// which would make one series per user or file).
pub async fn track(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = route_label(&req);
    let metrics = &state.metrics;
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.in_flight.dec();
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn route_label(req: &Request) -> String {
    if let Some(path) = req.extensions().get::<MatchedPath>() {
        return path.as_str().to_owned();
    }
    // Unmatched requests are static files or 404 pages; keep them in two series.
    if req.uri().path().starts_with("/pkg/") {
        "/pkg/*".to_owned()
    } else {
        "unmatched".to_owned()
    }
}

/// `GET /metrics` in the Prometheus text format.
pub async fn export(State(state): State<ServerState>) -> Response {
    let pool = state.app.pool();
    state.metrics.pool_size.set(i64::from(pool.size()));
    state
        .metrics
        .pool_idle
        .set(i64::try_from(pool.num_idle()).unwrap_or(i64::MAX));
    state
        .metrics
        .leader
        .set(i64::from(state.app.orchestrator().is_leader()));
    let mut body = String::new();
    if let Err(err) = encode(&mut body, &state.metrics.registry) {
        tracing::error!(error = %err, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
