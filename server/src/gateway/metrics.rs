//! The gateway's Prometheus series (exported with the server's at `GET /metrics`): requests by
//! model, endpoint and status, tokens by model, latency to the answer's first byte and the
//! upstream's, how streams ended, and the usage writer's progress.
//!
//! Labels are bounded: `model` is a registered alias (or `-` before one is known), never what a
//! client typed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: String,
    endpoint: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    model: String,
    outcome: &'static str,
}

type Histograms = Family<ModelLabels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.25 ms … ~4 min in doublings: the gateway's own overhead up to slow model answers.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_25, 2.0, 20,
    ))
}

/// The gateway's counters and histograms (cheap clones of shared series).
#[derive(Clone)]
pub struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    answer: Histograms,
    upstream: Histograms,
    streams: Family<StreamLabels, Counter>,
    keys: Family<KeyLabels, Counter>,
    usage_written: Counter,
    usage_failed: Counter,
    refreshes: Counter,
    trips: Family<RuleLabels, Counter>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            requests: Family::default(),
            tokens: Family::default(),
            answer: Histograms::new_with_constructor(latency),
            upstream: Histograms::new_with_constructor(latency),
            streams: Family::default(),
            keys: Family::default(),
            usage_written: Counter::default(),
            usage_failed: Counter::default(),
            refreshes: Counter::default(),
            trips: Family::default(),
        }
    }
}

impl GatewayMetrics {
    /// Adds the series to `registry` (prefixed there, e.g. `clawloops_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_requests",
            "Gateway requests answered, by model (- before one was chosen), endpoint and HTTP status",
            self.requests.clone(),
        );
        registry.register(
            "gateway_tokens",
            "Tokens charged by the gateway, by model and kind (prompt, completion)",
            self.tokens.clone(),
        );
        registry.register(
            "gateway_answer_seconds",
            "Time from a gateway request to its answer's first byte, by model",
            self.answer.clone(),
        );
        registry.register(
            "gateway_upstream_first_byte_seconds",
            "Time from a gateway request to the upstream's first byte (fallbacks included), by model",
            self.upstream.clone(),
        );
        registry.register(
            "gateway_streams",
            "Streamed answers by model and how they ended (done, broken, client_closed)",
            self.streams.clone(),
        );
        registry.register(
            "gateway_key_checks",
            "Gateway keys checked, by how: cached (known), cached_unknown, malformed (no database), looked_up, unknown (looked up, not found), busy (no lookup slot)",
            self.keys.clone(),
        );
        registry.register(
            "gateway_usage_rows_written",
            "Usage rows the gateway wrote to PostgreSQL",
            self.usage_written.clone(),
        );
        registry.register(
            "gateway_change_refreshes",
            "Times the gateway dropped its caches and read the registry again for change notes from the database (other replicas' changes, or its listener reconnecting)",
            self.refreshes.clone(),
        );
        registry.register(
            "gateway_breaker_trips",
            "Runaway-agent breaker trips this replica opened, by rule (spend_rate, request_rate, repeats, errors)",
            self.trips.clone(),
        );
        registry.register(
            "gateway_usage_write_failures",
            "Usage batches that failed to write (kept and tried again)",
            self.usage_failed.clone(),
        );
    }

    /// One answered request; `model` is `None` when it was refused before a model was chosen.
    pub fn answered(
        &self,
        model: Option<&str>,
        endpoint: &'static str,
        status: u16,
        took: Duration,
    ) {
        let model = model.unwrap_or("-").to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                model: model.clone(),
                endpoint,
                status,
            })
            .inc();
        self.answer
            .get_or_create(&ModelLabels { model })
            .observe(took.as_secs_f64());
    }

    /// What a finished request used, and how long the upstream took to start answering.
    pub fn used(&self, model: &str, prompt: i64, completion: i64, upstream: Option<Duration>) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            if let Ok(n) = u64::try_from(n)
                && n > 0
            {
                self.tokens
                    .get_or_create(&TokenLabels {
                        model: model.to_owned(),
                        kind,
                    })
                    .inc_by(n);
            }
        }
        if let Some(took) = upstream {
            self.upstream
                .get_or_create(&ModelLabels {
                    model: model.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// The caches were refreshed for change notes (counted once the registry was read).
    /// This replica opened a breaker trip.
    pub fn breaker_tripped(&self, rule: &str) {
        self.trips
            .get_or_create(&RuleLabels { rule: rule.into() })
            .inc();
    }

    pub fn refreshed(&self) {
        self.refreshes.inc();
    }

    /// How a key was checked.
    pub fn key_check(&self, outcome: &'static str) {
        self.keys.get_or_create(&KeyLabels { outcome }).inc();
    }

    /// How a streamed answer ended.
    pub fn stream_ended(&self, model: &str, outcome: &'static str) {
        self.streams
            .get_or_create(&StreamLabels {
                model: model.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A usage batch of `rows` was written (or failed to be).
    pub fn usage_batch(&self, rows: usize, ok: bool) {
        if ok {
            self.usage_written.inc_by(rows as u64);
        } else {
            self.usage_failed.inc();
        }
    }
}
