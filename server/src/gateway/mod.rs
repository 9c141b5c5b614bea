//! The model gateway: an OpenAI-compatible API in front of the registered upstreams. A request
//! is authenticated by its gateway key, checked against the models the key's user may use,
//! reserved against the user's limits, forwarded (streams pass through chunk by chunk), and
//! settled and logged when it ends, however it ends.

pub mod breaker;
pub mod catalog;
pub mod error;
mod keys;
pub mod metrics;
pub mod quota;
mod relay;
pub mod usage;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use catalog::{Caller, Registry};
use clawloops_models::Sealer;
use clawloops_wire::request::Endpoint;
use error::ApiError;
use quota::Quotas;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use usage::UsageLog;

/// How long a key found unknown is answered from memory (any key change clears it at once).
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(60);
/// How long a request waits for a lookup slot before it is told to come back.
const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// The channel the database announces registry, key and limit changes on.
pub const CHANNEL: &str = "clawloops_gateway";

/// How the gateway treats bodies and upstreams.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    /// Database lookups of uncached keys at once (a flood of junk keys waits for these instead
    /// of taking the pool from sign-in and forward-auth).
    pub key_lookups: usize,
    /// Requests one key may have in flight at once (streams count until they end).
    pub key_concurrency: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(120),
            key_lookups: 4,
            key_concurrency: 64,
        }
    }
}

/// The gateway's state.
pub struct Gateway {
    pool: sqlx::PgPool,
    sealer: Sealer,
    config: GatewayConfig,
    client: reqwest::Client,
    registry: RwLock<Arc<Registry>>,
    callers: moka::future::Cache<[u8; 32], Arc<Caller>>,
    /// Keys looked up and not found, so that a client repeating one costs no query.
    unknown: moka::sync::Cache<[u8; 32], ()>,
    /// Lookups of keys not in a cache, on a pool of their own (`key_lookups` connections): a
    /// flood of junk keys waits here, never for the connections of sign-in and pages.
    lookups: crate::database::Lookups,
    /// Requests in flight per key.
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>>,
    quotas: Arc<Quotas>,
    usage: UsageLog,
    /// The runaway-agent breaker's counts and rules.
    pub breaker: breaker::Breaker,
    /// Its Prometheus series.
    pub metrics: metrics::GatewayMetrics,
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The registry must be read again before it is used.
    stale: std::sync::atomic::AtomicBool,
    /// Set when the shutdown grace is over: streams still open end with an error event.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Gateway {
    /// The gateway, with its usage writer, quota flusher and change listener running.
    pub async fn start(
        pool: sqlx::PgPool,
        sealer: Sealer,
        config: GatewayConfig,
    ) -> anyhow::Result<Arc<Gateway>> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // Without the database the server still starts (readiness says why); the registry is
        // then read at the first request.
        let (registry, stale) = match Registry::load(&pool, &sealer).await {
            Ok(registry) => (registry, false),
            Err(err) => {
                tracing::warn!(error = %err, "could not read the model registry; trying again at the first request");
                (Registry::default(), true)
            }
        };
        let breaker_settings = match pool.acquire().await {
            Ok(mut conn) => clawloops_models::breaker::settings(&mut conn).await.ok(),
            Err(_) => None,
        };
        let metrics = metrics::GatewayMetrics::default();
        let (usage, writer) = UsageLog::new(pool.clone(), metrics.clone());
        let quotas = Arc::new(Quotas::new(pool.clone()));
        let gateway = Arc::new(Gateway {
            callers: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(UNKNOWN_KEY_TTL)
                .build(),
            lookups: crate::database::Lookups::new(
                &pool,
                u32::try_from(config.key_lookups).unwrap_or(u32::MAX),
                LOOKUP_WAIT,
            ),
            in_flight: Arc::default(),
            closing: tokio::sync::watch::Sender::new(false),
            registry: RwLock::new(Arc::new(registry)),
            quotas: quotas.clone(),
            breaker: breaker::Breaker::new(breaker_settings),
            pool,
            sealer,
            config,
            client,
            usage,
            metrics,
            tasks: std::sync::Mutex::default(),
            writer: std::sync::Mutex::default(),
            stale: std::sync::atomic::AtomicBool::new(stale),
        });
        let writer = tokio::spawn(writer);
        let tasks = vec![
            writer.abort_handle(),
            tokio::spawn(quotas.flush_forever()).abort_handle(),
            tokio::spawn(gateway.clone().listen()).abort_handle(),
            tokio::spawn(gateway.clone().share_forever()).abort_handle(),
        ];
        *gateway
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tasks;
        *gateway
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(writer);
        Ok(gateway)
    }

    /// Stops the background tasks after the usage still queued is written and settled quota
    /// use is moved to PostgreSQL (call once the server accepts no more requests).
    /// Ends the streams still open with an error event (`server_shutting_down`), so that their
    /// clients see a proper end instead of a cut connection; the shutdown grace is over.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    pub async fn shutdown(&self) {
        self.usage.close();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = writer
            && tokio::time::timeout(Duration::from_secs(10), writer)
                .await
                .is_err()
        {
            tracing::warn!("the usage writer did not finish within 10 s");
        }
        if let Err(err) = self.quotas.release_all(|| self.abort()).await {
            tracing::warn!(error = %err, "could not write quota use at shutdown");
        }
    }

    /// Stops the background tasks at once, writing nothing (for an owner that goes away without
    /// a shutdown, such as a test's server).
    pub fn abort(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }

    /// The sealer for provider credentials.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The registry, read again first when something changed.
    async fn registry(&self) -> Arc<Registry> {
        if self.stale.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.reload().await;
        }
        self.current()
    }

    fn current(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Drops every cached caller; the registry is read again before its next use. Called after
    /// this process commits a change, and for every change note from the database.
    pub fn invalidate(&self) {
        self.callers.invalidate_all();
        self.unknown.invalidate_all();
        self.stale.store(true, std::sync::atomic::Ordering::Release);
        self.breaker.stale();
    }

    /// Drops every cached caller and reads the registry and the breaker's rules again now.
    pub async fn refresh(&self) {
        self.callers.invalidate_all();
        self.unknown.invalidate_all();
        self.reload().await;
        self.reload_breaker().await;
    }

    async fn reload(&self) {
        match Registry::load(&self.pool, &self.sealer).await {
            Ok(fresh) => {
                *self
                    .registry
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
            }
            Err(err) => {
                // Try again at the next request.
                self.stale.store(true, std::sync::atomic::Ordering::Release);
                tracing::warn!(error = %err, "could not reload the model registry");
            }
        }
    }

    /// Follows `clawloops_gateway` until the process ends.
    async fn listen(self: Arc<Self>) {
        loop {
            match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        self.refresh().await;
                        self.metrics.refreshed();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => {
                                    // Gather a burst of notes into one reload.
                                    while let Ok(Some(_)) = tokio::time::timeout(
                                        Duration::from_millis(20),
                                        listener.try_recv(),
                                    )
                                    .await
                                    .unwrap_or(Ok(None))
                                    {}
                                    self.refresh().await;
                                    self.metrics.refreshed();
                                }
                                Ok(None) => {
                                    self.refresh().await;
                                    self.metrics.refreshed();
                                }
                                Err(err) => {
                                    tracing::warn!(error = %err, "gateway change listener failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not listen for gateway changes");
                    }
                },
                Err(err) => tracing::warn!(error = %err, "could not listen for gateway changes"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Replaces every provider credential in `text` (error bodies passed back).
    fn scrub(&self, text: &[u8]) -> Vec<u8> {
        use secrecy::ExposeSecret;
        let mut out = text.to_vec();
        for secret in &self.current().secrets {
            let needle = secret.expose_secret().as_bytes();
            if needle.len() < 4 {
                continue;
            }
            while let Some(at) = out.windows(needle.len()).position(|w| w == needle) {
                out.splice(at..at + needle.len(), b"[redacted]".iter().copied());
            }
        }
        out
    }
}

/// The gateway's routes (its own state; merge into the main router).
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/{*rest}", any(unknown))
        .with_state(gateway)
}

async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let caller = match gw.authenticate(&headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let registry = gw.registry().await;
    let mut data: Vec<_> = caller
        .models
        .iter()
        .filter_map(|id| registry.by_id(*id))
        .map(|m| {
            serde_json::json!({
                "id": m.alias,
                "object": "model",
                "created": m.created,
                "owned_by": "clawloops",
            })
        })
        .collect();
    data.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

async fn chat(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    relay::relay(gw, Endpoint::Chat, headers, body).await
}

async fn completions(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    relay::relay(gw, Endpoint::Completions, headers, body).await
}

async fn embeddings(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    relay::relay(gw, Endpoint::Embeddings, headers, body).await
}

async fn unknown(uri: Uri) -> Response {
    ApiError::not_found(uri.path()).into_response()
}
