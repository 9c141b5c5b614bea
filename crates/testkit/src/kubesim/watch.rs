//! Watches as the API server streams them: the changes after the requested resourceVersion
//! (410 Gone when compacted away), or every object now as ADDED, then changes as they happen,
//! with bookmarks when asked, until the timeout or a compaction ends the stream.

use super::Sim;
use super::api::status;
use super::select::{Fields, Labels};
use super::store::Change;
use super::validate::Kind;
use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// A watch: the changes after the requested resourceVersion (410 Gone when compacted away),
/// or every object now as ADDED, then changes as they happen, with bookmarks when asked,
/// until the timeout or a compaction ends it.
pub(super) fn watch(
    sim: Arc<Sim>,
    kind: Kind,
    ns: String,
    labels: Labels,
    fields: Fields,
    q: HashMap<String, String>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(300u64);
    let from = q.get("resourceVersion").cloned().unwrap_or_default();
    tokio::spawn(async move {
        let line = |kind_: &str, object: &Value| {
            let mut text =
                serde_json::to_vec(&json!({"type": kind_, "object": object})).unwrap_or_default();
            text.push(b'\n');
            Bytes::from(text)
        };
        let selected = |o: &Value| labels.matches(o["metadata"].get("labels")) && fields.matches(o);
        let mark = |revision: u64, end: bool| {
            let mut meta = json!({"resourceVersion": revision.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            json!({"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta})
        };
        let (first, mut changes, mut last, epoch) = {
            let store = sim.lock();
            let epoch = store.epoch;
            if initial || from.is_empty() || from == "0" {
                let now: Vec<Value> = store
                    .all(kind.resource, &ns)
                    .into_iter()
                    .filter(|o| selected(o))
                    .collect();
                let mut lines: Vec<Bytes> = now.iter().map(|o| line("ADDED", o)).collect();
                if initial {
                    lines.push(line("BOOKMARK", &mark(store.revision(), true)));
                }
                (lines, store.subscribe(), store.revision(), epoch)
            } else {
                let asked: u64 = from.parse().unwrap_or(0);
                match store.since(asked) {
                    Some((replay, rx)) => {
                        let lines = replay
                            .iter()
                            .filter(|c| {
                                c.resource == kind.resource
                                    && c.namespace == ns
                                    && selected(&c.object)
                            })
                            .map(|c| line(c.kind, &c.object))
                            .collect();
                        (lines, rx, store.revision(), epoch)
                    }
                    None => {
                        let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": format!("too old resource version: {asked} ({})", store.revision()),
                            "reason": "Expired", "code": 410});
                        sim.expired
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = tx.try_send(line("ERROR", &gone));
                        return;
                    }
                }
            }
        };
        for l in first {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        // The newest revision the client has heard of (by an event or a bookmark).
        let mut told = last;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change { revision, resource, namespace, kind: k, object }) => {
                        if revision > last && resource == kind.resource && namespace == ns && selected(&object) {
                            if tx.send(line(k, &object)).await.is_err() {
                                return;
                            }
                            told = revision;
                        }
                        last = last.max(revision);
                    }
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let (revision, now_epoch) = { let s = sim.lock(); (s.revision(), s.epoch) };
                    if now_epoch != epoch || tokio::time::Instant::now() >= deadline {
                        return;
                    }
                    // Changes are sent under the store's lock: every one up to `revision` is
                    // queued now, and goes out before a bookmark says it did.
                    while let Ok(c) = changes.try_recv() {
                        if c.revision > last && c.resource == kind.resource && c.namespace == ns && selected(&c.object) {
                            if tx.send(line(c.kind, &c.object)).await.is_err() {
                                return;
                            }
                            told = c.revision;
                        }
                        last = last.max(c.revision);
                    }
                    if bookmarks && revision > told {
                        sim.bookmarks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if tx.send(line("BOOKMARK", &mark(revision, false))).await.is_err() {
                            return;
                        }
                        told = revision;
                        last = last.max(revision);
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(500, "InternalError", "watch"))
}
