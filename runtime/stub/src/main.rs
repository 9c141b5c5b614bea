//! A stand-in for the OpenClaw gateway in tests and benchmarks: it listens where OpenClaw does
//! (port 18789), answers the same health endpoints (`/healthz`, `/readyz`), becomes ready after
//! `STUB_READY_AFTER_MS`, and exits at once on SIGTERM. `/echo` answers with the request's
//! headers, so entry-layer tests can see exactly what reached a runtime; `/stream` never ends by itself; `/cookies` sets
//! cookies as a hostile page would (one for its own host, others for a parent domain), so
//! they can see which reach the browser. `runtime-stub probe …`
//! tries addresses from inside the container instead ([`probe`]). Built as a static binary
//! into a `FROM scratch` image by `scripts/build-images.sh`.

mod probe;

use axum::{
    Json, Router,
    http::{HeaderMap, StatusCode},
    routing::get,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("probe") => {
            let timeout_ms = args.next().and_then(|t| t.parse().ok()).unwrap_or(2000);
            probe::run(timeout_ms, args.collect()).await;
            return;
        }
        // The engine's health check (images without a shell): exit status 0 when the URL
        // answers 200.
        Some("ready") => {
            let url = args.next().unwrap_or_default();
            std::process::exit(i32::from(!probe::ready(&url).await));
        }
        _ => {}
    }
    // A runtime that fails (the driver tests observe its exit code).
    if let Some(code) = std::env::var("STUB_EXIT_WITH")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        eprintln!("runtime-stub: exiting with status {code}, as STUB_EXIT_WITH asks");
        std::process::exit(code);
    }
    let port: u16 = std::env::var("STUB_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18789);
    let ready_after = Duration::from_millis(
        std::env::var("STUB_READY_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let started = Instant::now();
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "ok": true, "status": "live" })) }),
        )
        .route(
            "/readyz",
            get(move || async move { readiness(started.elapsed() >= ready_after) }),
        )
        .route("/echo", get(echo))
        .route("/cookies", get(cookies))
        .route("/stream", get(stream))
        .route("/", get(|| async { "ClawLoops runtime stub\n" }));
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("runtime-stub: cannot listen on port {port}: {err}");
            std::process::exit(1);
        }
    };
    eprintln!("runtime-stub: listening on port {port}");
    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
        // As PID 1 a process ignores SIGTERM unless it handles it.
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    });
    if let Err(err) = serve.await {
        eprintln!("runtime-stub: {err}");
        std::process::exit(1);
    }
}

/// The request's headers (name → values), as the runtime received them.
async fn echo(headers: HeaderMap) -> Json<Value> {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        out.insert(name.as_str().to_owned(), Value::Array(values));
    }
    Json(json!({ "headers": out }))
}

/// An answer that never ends by itself, a line every 200 ms: a stand-in for a workspace's
/// long-lived connection (the OpenClaw UI's WebSocket), which only the runtime's end closes.
async fn stream() -> axum::response::Response {
    use axum::response::IntoResponse;
    let ticks = futures_util::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((
            Ok::<_, std::convert::Infallible>(format!("tick {n}\n")),
            n + 1,
        ))
    });
    axum::body::Body::from_stream(ticks).into_response()
}

/// Cookies for this host and, as a hostile page would try, for the parent domain (to swap the
/// control plane's session or fill every workspace's cookie jar), spelled several ways.
async fn cookies(headers: HeaderMap) -> impl axum::response::IntoResponse {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let host = host.split(':').next().unwrap_or(host);
    let parent = host.split_once('.').map_or(host, |(_, parent)| parent);
    let set = [
        "own=1; Path=/; HttpOnly".to_owned(),
        format!("clawloops_session=swapped; Domain={parent}; Path=/"),
        format!("bomb=xxxxxxxx; path=/; DOMAIN =.{parent}"),
        format!("quiet=1; Path=/;domain={host}"),
    ];
    let mut out = HeaderMap::new();
    for cookie in set {
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            out.append(axum::http::header::SET_COOKIE, value);
        }
    }
    (out, "cookies set\n")
}

fn readiness(ready: bool) -> (StatusCode, Json<Value>) {
    if ready {
        (StatusCode::OK, Json(json!({ "ready": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false })),
        )
    }
}
