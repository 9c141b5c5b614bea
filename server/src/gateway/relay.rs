//! One request's way through: read and check the body, reserve, forward (with fallback before
//! any byte went back), pass the answer through, settle and log.

use super::Gateway;
use super::catalog::{Caller, Model};
use super::error::ApiError;
use super::quota::{Amount, Quota, QuotaError, Reservation};
use super::usage::Record;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clawloops_models::registry::cost_nano;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;

/// The OpenAI endpoints the gateway relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The endpoint's name in usage rows and metrics.
    fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// Completion tokens reserved when a request names no maximum and its model no context window.
const DEFAULT_MAX_OUTPUT: i64 = 4096;
/// The most hops along fallbacks.
const MAX_HOPS: usize = 3;
/// The largest non-streamed answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Relays one request.
pub async fn relay(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut model = None;
    let response = match relay_inner(&gw, endpoint, &headers, body, &mut model).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    gw.metrics.answered(
        model.as_deref(),
        endpoint.label(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn relay_inner(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    answered_by: &mut Option<String>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = gw.authenticate(headers).await?;
    let limit = gw.config.max_body_bytes;
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(ApiError::too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| {
            ApiError::bad_request(format!("The request body is not a JSON object: {e}."))
        })?;
    let alias = match doc.get("model") {
        Some(serde_json::Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`model` must be a model name (a string).",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "You must provide a model parameter (`model`).",
            ));
        }
    };
    let registry = gw.registry().await;
    let model = registry
        .by_alias(&alias)
        .ok_or_else(|| ApiError::unknown_model(&alias))?
        .clone();
    if !caller.models.contains(&model.id) {
        return Err(ApiError::not_allowed(&alias));
    }
    *answered_by = Some(model.alias.clone());
    let stream = endpoint != Endpoint::Embeddings
        && doc.get("stream").and_then(serde_json::Value::as_bool) == Some(true);

    // The worst case: the whole body as prompt (about four bytes a token) and the most output.
    let prompt_estimate = i64::try_from(bytes.len() / 4 + 1).unwrap_or(i64::MAX);
    let max_output = if endpoint == Endpoint::Embeddings {
        0
    } else {
        doc.get("max_completion_tokens")
            .or_else(|| doc.get("max_tokens"))
            .and_then(serde_json::Value::as_i64)
            .filter(|n| *n >= 0)
            .unwrap_or_else(|| match model.context_window {
                Some(w) => (i64::from(w) - prompt_estimate).max(1),
                None => DEFAULT_MAX_OUTPUT,
            })
    };
    let worst = Amount {
        tokens: prompt_estimate + max_output,
        cost_nano: cost_nano(
            prompt_estimate,
            max_output,
            model.price_in_micro,
            model.price_out_micro,
        ),
    };
    let mut ticket = Ticket {
        gw: gw.clone(),
        caller: caller.clone(),
        model: model.clone(),
        endpoint,
        stream,
        started,
        first_byte: None,
        reservation: None,
        prompt_estimate,
        reported: None,
        counted_output: 0,
        scanner: SseScanner::default(),
        ended: false,
        streaming: false,
        status: 200,
        error_code: None,
    };
    match gw
        .quotas
        .reserve(caller.user_id, &caller.limits, worst)
        .await
    {
        Ok(r) => ticket.reservation = Some(r),
        Err(QuotaError::Denied(d)) => {
            let (code, message) = match d.quota {
                Quota::Rpm => (
                    "rate_limit_exceeded",
                    format!("Rate limit reached: {} requests per minute.", d.limit),
                ),
                Quota::Tpm => (
                    "rate_limit_exceeded",
                    format!(
                        "Rate limit reached: {} tokens per minute (this request may use up to {}).",
                        d.limit, worst.tokens
                    ),
                ),
                Quota::Tokens => (
                    "budget_exceeded",
                    format!(
                        "Token budget used up: {} tokens per period (this request may use up to {}). Ask an administrator for more, or send a smaller max_tokens.",
                        d.limit, worst.tokens
                    ),
                ),
                Quota::Cost => (
                    "budget_exceeded",
                    format!(
                        "Spending budget used up: ${:.2} per period. Ask an administrator for more.",
                        d.limit as f64 / 1e9
                    ),
                ),
            };
            return Err(ticket.fail(ApiError::limited(code, message, d.retry_after)));
        }
        Err(QuotaError::Database(err)) => {
            tracing::error!(error = %err, "cannot reserve quota");
            return Err(ticket.fail(ApiError::internal(
                "The gateway cannot check limits right now; try again shortly.",
            )));
        }
    }
    if stream {
        // Ask for the usage chunk at the end of the stream.
        let options = doc
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
    }

    // Forward, moving along fallbacks on connection failures, timeouts and 5xx.
    let mut current = model;
    let mut hops = 0;
    let response = loop {
        doc.insert(
            "model".into(),
            serde_json::Value::String(current.upstream_model.clone()),
        );
        let fallback = current
            .fallback
            .and_then(|id| registry.by_id(id).cloned())
            .filter(|_| hops < MAX_HOPS);
        let outcome = send(gw, &current, endpoint, &doc).await;
        let retry = match &outcome {
            Ok(resp) => resp.status().is_server_error(),
            Err(_) => true,
        };
        match (retry, fallback) {
            (true, Some(next)) => {
                tracing::info!(model = %current.alias, fallback = %next.alias, "upstream failed; trying the fallback");
                hops += 1;
                *answered_by = Some(next.alias.clone());
                current = next;
                ticket.model = current.clone();
            }
            _ => match outcome {
                Ok(resp) => break resp,
                Err(err) => return Err(ticket.fail(err)),
            },
        }
    };
    ticket.first_byte = Some(started.elapsed());
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ticket.fail(ApiError::upstream(format!(
            "The upstream of `{}` refused the gateway's credential (HTTP {}). An administrator should check the model's credential.",
            ticket.model.alias,
            status.as_u16()
        ))));
    }
    if !status.is_success() {
        let text = read_all(gw, response).await.unwrap_or_default();
        let text = gw.scrub(&text);
        if status.is_server_error() {
            let snippet = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
            return Err(ticket.fail(ApiError::upstream(format!(
                "The upstream of `{}` failed (HTTP {}): {snippet}",
                ticket.model.alias,
                status.as_u16()
            ))));
        }
        // The client's own mistake, as the upstream explains it.
        ticket.status = status.as_u16();
        ticket.error_code = Some("upstream_rejected".into());
        let mut out = Response::new(Body::from(text));
        *out.status_mut() =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(out);
    }
    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_sse {
        return Ok(stream_through(gw, response, ticket));
    }
    let text = match read_all(gw, response).await {
        Ok(text) => text,
        Err(err) => return Err(ticket.fail(err)),
    };
    let Ok(parsed) = serde_json::from_slice::<WithUsage>(&text) else {
        return Err(ticket.fail(ApiError::upstream(format!(
            "The upstream of `{}` sent an answer that is not JSON.",
            ticket.model.alias
        ))));
    };
    ticket.reported = parsed.usage.map(Usage::pair);
    if ticket.reported.is_none() {
        ticket.counted_output = i64::try_from(text.len() / 4).unwrap_or(0);
    }
    ticket.ended = true;
    let mut out = Response::new(Body::from(gw.scrub(&text)));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(out)
}

/// Sends the request to the model's upstream, up to its response headers.
async fn send(
    gw: &Gateway,
    model: &Model,
    endpoint: Endpoint,
    doc: &serde_json::Map<String, serde_json::Value>,
) -> Result<reqwest::Response, ApiError> {
    let mut request = gw
        .client
        .post(format!("{}{}", model.base_url, endpoint.path()))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(doc).unwrap_or_default());
    if let Some(secret) = &model.credential {
        request = request.bearer_auth(secret.expose_secret());
    }
    match tokio::time::timeout(gw.config.first_byte_timeout, request.send()).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(err)) if err.is_connect() => {
            tracing::warn!(model = %model.alias, error = %err, "cannot connect to the upstream");
            Err(ApiError::upstream(format!(
                "Cannot connect to the upstream of `{}`.",
                model.alias
            )))
        }
        Ok(Err(err)) if err.is_timeout() => Err(ApiError::timeout(format!(
            "The upstream of `{}` did not answer in time.",
            model.alias
        ))),
        Ok(Err(err)) => {
            tracing::warn!(model = %model.alias, error = %err, "upstream request failed");
            Err(ApiError::upstream(format!(
                "The request to the upstream of `{}` failed.",
                model.alias
            )))
        }
        Err(_) => Err(ApiError::timeout(format!(
            "The upstream of `{}` sent nothing for {} s.",
            model.alias,
            gw.config.first_byte_timeout.as_secs()
        ))),
    }
}

/// Reads a whole (non-streamed) answer, each read bounded by the idle timeout.
async fn read_all(gw: &Gateway, response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    loop {
        match tokio::time::timeout(gw.config.idle_timeout, chunks.next()).await {
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(ApiError::upstream("The upstream's answer is too large."));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Ok(Some(Err(_))) => {
                return Err(ApiError::upstream(
                    "The upstream closed the connection mid-answer.",
                ));
            }
            Err(_) => {
                return Err(ApiError::timeout(
                    "The upstream stopped sending mid-answer.",
                ));
            }
        }
    }
}

/// Passes an SSE stream through chunk by chunk, reading the usage as it goes by.
fn stream_through(gw: &Arc<Gateway>, response: reqwest::Response, mut ticket: Ticket) -> Response {
    ticket.streaming = true;
    struct State {
        upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        ticket: Ticket,
        idle: std::time::Duration,
        done: bool,
    }
    let state = State {
        upstream: response.bytes_stream().boxed(),
        ticket,
        idle: gw.config.idle_timeout,
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match tokio::time::timeout(st.idle, st.upstream.next()).await {
            Ok(Some(Ok(chunk))) => {
                st.ticket.scanner.feed(&chunk);
                Some((Ok::<Bytes, std::convert::Infallible>(chunk), st))
            }
            Ok(None) => {
                st.ticket.stream_ended();
                None
            }
            Ok(Some(Err(_))) | Err(_) => {
                st.done = true;
                st.ticket.scanner.finish();
                st.ticket.ended = true;
                st.ticket.status = 502;
                st.ticket.error_code = Some("upstream_interrupted".into());
                let err =
                    ApiError::upstream("The upstream stream broke off; the answer is incomplete.");
                let event = format!("\n\ndata: {}\n\ndata: [DONE]\n\n", err.body());
                Some((Ok(Bytes::from(event)), st))
            }
        }
    });
    // A client that leaves early drops the state, and with it the upstream request and the
    // ticket (settled with what the scanner saw so far).
    let mut out = Response::new(Body::from_stream(body));
    let headers = out.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    out
}

/// Reads `data:` lines of an SSE stream for the usage object (and counts events as a fallback).
#[derive(Default)]
pub struct SseScanner {
    line: Vec<u8>,
    pub usage: Option<(i64, i64)>,
    pub events: i64,
    pub saw_done: bool,
}

/// The longest line kept while looking for usage (longer lines are content, passed through).
const MAX_LINE: usize = 1024 * 1024;

impl SseScanner {
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.line.len() + end <= MAX_LINE {
                self.line.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.line);
                self.line(&line);
            } else {
                self.line.clear();
            }
            rest = &rest[end + 1..];
        }
        if self.line.len() + rest.len() <= MAX_LINE {
            self.line.extend_from_slice(rest);
        }
    }

    pub fn finish(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.line(&line);
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.saw_done = true;
            return;
        }
        self.events += 1;
        if memchr_usage(data)
            && let Ok(parsed) = serde_json::from_slice::<WithUsage>(data)
            && let Some(usage) = parsed.usage
        {
            self.usage = Some(usage.pair());
        }
    }
}

fn memchr_usage(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b"\"usage\":")
}

#[derive(serde::Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

impl Usage {
    fn pair(self) -> (i64, i64) {
        (self.prompt_tokens.max(0), self.completion_tokens.max(0))
    }
}

/// One request's accounting: settled and logged when dropped, however the request ended.
struct Ticket {
    gw: Arc<Gateway>,
    caller: Arc<Caller>,
    model: Arc<Model>,
    endpoint: Endpoint,
    stream: bool,
    started: Instant,
    first_byte: Option<std::time::Duration>,
    reservation: Option<Reservation>,
    prompt_estimate: i64,
    /// What the upstream said it used.
    reported: Option<(i64, i64)>,
    /// Completion tokens counted here when the upstream says nothing.
    counted_output: i64,
    /// A stream's usage and event count.
    scanner: SseScanner,
    /// The answer went out whole (or the stream reached its end).
    ended: bool,
    /// The answer is an SSE stream passed through.
    streaming: bool,
    status: u16,
    error_code: Option<String>,
}

impl Ticket {
    /// The upstream's stream ended; without `[DONE]` it broke off.
    fn stream_ended(&mut self) {
        self.scanner.finish();
        self.ended = true;
        if !self.scanner.saw_done {
            self.status = 502;
            self.error_code = Some("upstream_incomplete".into());
        }
    }

    /// Marks the request failed with `err` (nothing was used) and hands the error back.
    fn fail(&mut self, err: ApiError) -> ApiError {
        self.status = err.status.as_u16();
        self.error_code = Some(err.code.to_owned());
        self.prompt_estimate = 0;
        err
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.streaming {
            self.reported = self.scanner.usage;
            self.counted_output = self.scanner.events;
            if !self.ended && self.status < 400 {
                // The client left before the end: what was used so far still counts.
                self.status = 499;
                self.error_code = Some("client_closed".into());
            }
        }
        let (prompt, completion, estimated) = match self.reported {
            Some((p, c)) => (p, c, false),
            None if self.status >= 400 && self.status != 499 && self.counted_output == 0 => {
                (0, 0, false)
            }
            None => (self.prompt_estimate, self.counted_output, true),
        };
        let cost = cost_nano(
            prompt,
            completion,
            self.model.price_in_micro,
            self.model.price_out_micro,
        );
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(Amount {
                tokens: prompt + completion,
                cost_nano: cost,
            });
        }
        let metrics = &self.gw.metrics;
        metrics.used(&self.model.alias, prompt, completion, self.first_byte);
        if self.streaming {
            let outcome = match self.status {
                499 => "client_closed",
                400.. => "broken",
                _ => "done",
            };
            metrics.stream_ended(&self.model.alias, outcome);
        }
        let elapsed = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.gw.usage.record(Record {
            at: time::OffsetDateTime::now_utc(),
            user_id: self.caller.user_id,
            username: self.caller.username.clone(),
            key_id: self.caller.key_id,
            runtime_key: self.caller.runtime_key,
            model_alias: self.model.alias.clone(),
            endpoint: self.endpoint.label(),
            stream: self.stream,
            status: self.status,
            error_code: self.error_code.take(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            estimated,
            cost_nano: cost,
            latency_ms: elapsed(self.started.elapsed()),
            ttfb_ms: self.first_byte.map(elapsed),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_usage_across_chunk_boundaries() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let mut s = SseScanner::default();
            s.feed(&stream[..split]);
            s.feed(&stream[split..]);
            s.finish();
            assert_eq!(s.usage, Some((7, 3)), "split at {split}");
            assert_eq!(s.events, 2);
            assert!(s.saw_done);
        }
    }

    #[test]
    fn scanner_counts_events_without_usage() {
        let mut s = SseScanner::default();
        s.feed(b"data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\n\n: comment\n\n");
        s.finish();
        assert_eq!((s.usage, s.events, s.saw_done), (None, 2, false));
    }
}
