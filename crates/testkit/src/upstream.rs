//! A small OpenAI-compatible upstream for gateway tests. The upstream model name picks the
//! behaviour: `ok`, `fail500` (echoes the credential it got, to test scrubbing), `slow` (a
//! stream of 100 chunks, 50 ms apart, that notes being cancelled), `garbage` (200, not JSON),
//! `cut` (a stream that breaks off), `nousage` (a stream without a usage chunk) and `unauth`
//! (401).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct Fake {
    pub seen: Mutex<Vec<Seen>>,
    /// Streams the client went away from before their end.
    pub cancelled: AtomicUsize,
    /// Streams that ran to their end.
    pub finished: AtomicUsize,
}

impl Fake {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub fake: Arc<Fake>,
}

impl Upstream {
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// The usage every answer reports.
pub const PROMPT_TOKENS: i64 = 11;
pub const COMPLETION_TOKENS: i64 = 5;

/// The non-streamed chat answer.
pub fn chat_answer(model: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
    })
}

/// The events of a streamed chat answer, exactly as sent (usage last when asked for).
pub fn stream_events(model: &str, usage: bool) -> Vec<String> {
    let mut events: Vec<String> = ["Hel", "lo", " there", "ünïcødé ✓"]
        .iter()
        .map(|piece| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    if usage {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [],
                   "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}})
        ));
    }
    events.push("data: [DONE]\n\n".into());
    events
}

/// Starts the upstream on 127.0.0.1; it accepts only `Bearer {credential}` (when given).
pub async fn start(credential: Option<&str>) -> Upstream {
    let fake = Arc::new(Fake::default());
    let state = (fake.clone(), credential.map(str::to_owned));
    let app = axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("upstream runs");
    });
    Upstream { addr, fake }
}

type St = (Arc<Fake>, Option<String>);

fn authorized(state: &St, headers: &HeaderMap) -> bool {
    match &state.1 {
        None => true,
        Some(secret) => {
            headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(format!("Bearer {secret}").as_str())
        }
    }
}

async fn models(State(state): State<St>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "bad key"}})),
        )
            .into_response();
    }
    axum::Json(json!({"object": "list", "data": [{"id": "ok", "object": "model"}, {"id": "slow", "object": "model"}]})).into_response()
}

async fn embeddings(State(state): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    note(&state, "/v1/embeddings", &headers, &body);
    axum::Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                      "model": "ok", "usage": {"prompt_tokens": 3, "total_tokens": 3}}))
    .into_response()
}

fn note(state: &St, path: &str, headers: &HeaderMap, body: &[u8]) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    state.0.seen.lock().expect("lock").push(Seen {
        path: path.into(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    body
}

/// Counts a stream as cancelled when it is dropped before its end.
struct Watch {
    fake: Arc<Fake>,
    done: bool,
}

impl Watch {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done {
            self.fake.finished.fetch_add(1, Ordering::SeqCst);
        } else {
            self.fake.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn chat(State(state): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    let doc = note(&state, "/v1/chat/completions", &headers, &body);
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "Incorrect API key"}})),
        )
            .into_response();
    }
    let model = doc["model"].as_str().unwrap_or_default().to_owned();
    let stream = doc["stream"] == true;
    let usage = doc["stream_options"]["include_usage"] == true;
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .expect("response")
    };
    match model.as_str() {
        "fail500" => {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{{\"error\":{{\"message\":\"upstream exploded while using {auth}\"}}}}"),
            )
                .into_response()
        }
        "unauth" => (StatusCode::UNAUTHORIZED, "{\"error\":{\"message\":\"no\"}}").into_response(),
        "garbage" => (StatusCode::OK, "this is not json at all").into_response(),
        "slow" => {
            let watch = Watch {
                fake: state.0.clone(),
                done: false,
            };
            let events = futures_util::stream::unfold((0, watch), |(i, mut watch)| async move {
                if i == 100 {
                    watch.finish();
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let chunk =
                    format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n");
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), (i + 1, watch)))
            });
            sse(Body::from_stream(events))
        }
        "cut" => {
            let first = stream_events(&model, false)[0].clone();
            let events = futures_util::stream::unfold(0, move |i| {
                let first = first.clone();
                async move {
                    match i {
                        0 => Some((Ok(Bytes::from(first)), 1)),
                        1 => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Some((Err(std::io::Error::other("connection lost")), 2))
                        }
                        _ => None,
                    }
                }
            });
            sse(Body::from_stream(events))
        }
        _ if stream => {
            let events = stream_events(&model, usage && model != "nousage");
            let watch = Watch {
                fake: state.0.clone(),
                done: false,
            };
            let chunks = futures_util::stream::unfold(
                (events.into_iter(), watch),
                |(mut it, mut watch)| async move {
                    match it.next() {
                        Some(e) => {
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                            Some((Ok::<_, std::io::Error>(Bytes::from(e)), (it, watch)))
                        }
                        None => {
                            watch.finish();
                            None
                        }
                    }
                },
            );
            sse(Body::from_stream(chunks))
        }
        _ => axum::Json(chat_answer(&model)).into_response(),
    }
}
