//! Who is calling: the request's gateway key, looked up once and cached (an unknown key is
//! remembered as unknown for a minute), checked on every request, and counted while in flight.

use super::Gateway;
use super::catalog::Caller;
use super::error::ApiError;
use crate::database::LookupError;
use axum::http::{HeaderMap, header};
use std::sync::Arc;

impl Gateway {
    /// The caller of the request's key, or why there is none.
    pub(super) async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, ApiError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::bad_key("Missing API key: send it as `Authorization: Bearer <key>`.")
            })?;
        let wrong = || ApiError::bad_key("Incorrect API key provided.");
        if !clawloops_models::keys::well_formed(key) {
            self.metrics.key_check("malformed");
            return Err(wrong());
        }
        let hash = clawloops_models::keys::hash(key);
        let caller = if let Some(caller) = self.callers.get(&hash).await {
            self.metrics.key_check("cached");
            caller
        } else if self.unknown.contains_key(&hash) {
            self.metrics.key_check("cached_unknown");
            return Err(wrong());
        } else {
            let loaded = match self
                .lookups
                .run(|pool| async move { Caller::load(&pool, &hash).await })
                .await
            {
                Ok(loaded) => loaded,
                Err(LookupError::Busy) => {
                    self.metrics.key_check("busy");
                    return Err(ApiError::busy(
                        "The gateway is checking many keys right now; try again in a moment.",
                    ));
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot read gateway keys");
                    return Err(ApiError::internal(
                        "The gateway cannot check keys right now; try again shortly.",
                    ));
                }
            };
            let Some(caller) = loaded else {
                self.metrics.key_check("unknown");
                self.unknown.insert(hash, ());
                return Err(wrong());
            };
            self.metrics.key_check("looked_up");
            let caller = Arc::new(caller);
            self.callers.insert(hash, caller.clone()).await;
            caller
        };
        caller.check(time::OffsetDateTime::now_utc())?;
        if let Some(message) = self.breaker.refusal(&caller) {
            return Err(ApiError::paused(message));
        }
        Ok(caller)
    }

    /// Counts a request of `caller`'s key in flight until the returned guard is dropped, or
    /// refuses it (429) when the key already has `key_concurrency` requests in flight.
    pub(super) fn enter(&self, caller: &Caller) -> Result<InFlight, ApiError> {
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(caller.key_id).or_insert(0);
        if *count >= self.config.key_concurrency {
            return Err(ApiError::limited(
                "too_many_concurrent_requests",
                format!(
                    "This key already has {} requests in flight; wait for one to finish.",
                    self.config.key_concurrency
                ),
                1,
            ));
        }
        *count += 1;
        Ok(InFlight {
            counts: self.in_flight.clone(),
            key: caller.key_id,
        })
    }
}

/// One request of a key in flight; dropping it (the request ended, however) frees its place.
pub(crate) struct InFlight {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>>,
    key: uuid::Uuid,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}
