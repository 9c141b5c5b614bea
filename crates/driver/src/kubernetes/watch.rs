//! Waiting for the cluster by watching, not polling: a watch that breaks (an API server
//! restart, history compacted away: 410 Gone) lists again and goes on, with back-off.

use ::kube::Api;
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, Event};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;

/// Returns once the Pod `name` with `uid` no longer exists (deleted, or replaced by another
/// of the same name).
pub async fn until_gone(api: Api<Pod>, name: &str, uid: &str) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let is_it = |pod: &Pod| pod.metadata.uid.as_deref() == Some(uid);
    // Whether the current (re)list found it.
    let mut listed = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = false,
            Ok(Event::InitApply(pod)) => listed |= is_it(&pod),
            Ok(Event::InitDone) if !listed => return,
            Ok(Event::Apply(pod)) if !is_it(&pod) => return,
            Ok(Event::Delete(pod)) if is_it(&pod) => return,
            Ok(_) => {}
            // The stream lists again after a 410 and backs off after other errors.
            Err(e) => tracing::debug!(pod = name, error = %e, "the watch restarts"),
        }
    }
}
