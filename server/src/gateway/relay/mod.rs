//! One request's way through: read and check the body, reserve, forward (with fallback before
//! any byte went back), pass the answer through, settle and log.

use super::Gateway;
use super::catalog::{Caller, Model, Registry};
use super::error::ApiError;
use super::quota::{Amount, Quota, QuotaError, Reservation};
use super::usage::Record;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clawloops_wire::cost_nano;
use clawloops_wire::request::{self, Endpoint};
use clawloops_wire::usage::{SseScanner, answer_usage};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most hops along fallbacks.
mod stream;
use stream::{Ticket, stream_through};

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
    let admitted = match gw.authenticate(headers).await {
        Ok(caller) => gw.enter(&caller).map(|in_flight| (caller, in_flight)),
        Err(err) => Err(err),
    };
    let (caller, in_flight) = match admitted {
        Ok(admitted) => admitted,
        Err(err) => {
            drain(body).await;
            return Err(err);
        }
    };
    // A request refused before its ticket is made still counts for the breaker, as a failure.
    let refuse = |err: ApiError| {
        gw.breaker_saw(&caller, 0, true, 0);
        err
    };
    let limit = gw.config.max_body_bytes;
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(refuse(ApiError::too_large(limit)));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| refuse(ApiError::too_large(limit)))?;
    let parsed =
        request::parse(endpoint, &bytes).map_err(|e| refuse(ApiError::bad_request(e.0)))?;
    if !parsed.dropped.is_empty() {
        tracing::debug!(dropped = ?parsed.dropped, "fields the endpoint does not define were not forwarded");
    }
    let registry = gw.registry().await;
    // One answer for a model that does not exist and one the key may not use: a key learns
    // nothing about models beyond its own.
    let model = registry
        .by_alias(&parsed.alias)
        .filter(|m| caller.models.contains(&m.id))
        .ok_or_else(|| refuse(ApiError::unknown_model(&parsed.alias)))?
        .clone();
    *answered_by = Some(model.alias.clone());
    let stream = parsed.stream;
    // The worst case along the fallback chain: a fallback may be dearer or have a larger window.
    let chain = fallback_chain(&registry, &model);
    let worst = chain
        .iter()
        .map(|m| request::plan(&parsed, &m.upstream_model, m.bounds()).worst)
        .fold(Amount::default(), |a, b| Amount {
            tokens: a.tokens.max(b.tokens),
            cost_nano: a.cost_nano.max(b.cost_nano),
        });
    let prompt_estimate = request::prompt_estimate(parsed.bytes);
    let mut ticket = Ticket {
        _in_flight: in_flight,
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
        fingerprint: clawloops_models::breaker::fingerprint(
            &model.alias,
            &super::breaker::subject(&parsed.fields),
        ),
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
                        "Token budget used up: {} tokens per {} (this request may use up to {}). It renews in {}; ask an administrator for more, or send a smaller max_tokens.",
                        d.limit,
                        caller.limits.period.name(),
                        worst.tokens,
                        renews_in(d.retry_after)
                    ),
                ),
                Quota::Cost | Quota::Compute => (
                    "budget_exceeded",
                    format!(
                        "Budget used up: ${:.2} per {} for model requests and runtime time together. It renews in {}; ask an administrator to raise or reset it.",
                        d.limit as f64 / 1e9,
                        caller.limits.period.name(),
                        renews_in(d.retry_after)
                    ),
                ),
            };
            return Err(ticket.fail(ApiError::limited(code, message, d.retry_after)));
        }
        Err(QuotaError::Negative) => {
            tracing::error!(?worst, "a request's worst case came out negative");
            return Err(ticket.fail(ApiError::internal(
                "The gateway cannot work out this request's cost; try again shortly.",
            )));
        }
        Err(QuotaError::Database(err)) => {
            tracing::error!(error = %err, "cannot reserve quota");
            return Err(ticket.fail(ApiError::internal(
                "The gateway cannot check limits right now; try again shortly.",
            )));
        }
    }
    // Forward, moving along fallbacks on connection failures, timeouts and 5xx.
    let mut hops = chain.into_iter();
    let mut current = hops.next().unwrap_or(model);
    let response = loop {
        let planned = request::plan(&parsed, &current.upstream_model, current.bounds());
        let outcome = send(gw, &current, endpoint, &planned.body).await;
        let retry = match &outcome {
            Ok(resp) => resp.status().is_server_error(),
            Err(_) => true,
        };
        match (retry, hops.next()) {
            (true, Some(next)) => {
                tracing::info!(model = %current.alias, fallback = %next.alias, "upstream failed; trying the fallback");
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
    let Ok(reported) = answer_usage(&text) else {
        return Err(ticket.fail(ApiError::upstream(format!(
            "The upstream of `{}` sent an answer that is not JSON.",
            ticket.model.alias
        ))));
    };
    ticket.reported = reported;
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

/// The model and its fallbacks, in order (at most [`MAX_HOPS`] of them, each once).
fn fallback_chain(registry: &Registry, model: &Arc<Model>) -> Vec<Arc<Model>> {
    let mut chain = vec![model.clone()];
    while chain.len() <= MAX_HOPS {
        let Some(next) = chain
            .last()
            .and_then(|m| m.fallback)
            .and_then(|id| registry.by_id(id))
            .filter(|next| !chain.iter().any(|m| m.id == next.id))
        else {
            break;
        };
        chain.push(next.clone());
    }
    chain
}

/// Sends the request to the model's upstream, up to its response headers.
/// The most of a refused request's body read before answering, and for how long.
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Reads and discards the rest of a request refused before its body was read. A server that
/// closes a connection with unread request bytes resets it, and a proxy in front (Traefik)
/// that is still sending then answers 502 instead of passing the refusal on. Bounded in size
/// and time: a larger or slower body is cut off as before.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

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

/// "3 days", "5 hours", "12 minutes": how long until a budget period ends.
fn renews_in(secs: u64) -> String {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s >= 2 * 86400 => plural(s / 86400, "day"),
        s if s >= 3600 => plural(s / 3600, "hour"),
        s => plural((s / 60).max(1), "minute"),
    }
}
