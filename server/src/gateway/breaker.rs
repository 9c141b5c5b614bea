//! The runaway-agent breaker in the gateway. Every finished request of a runtime key (and of
//! personal keys, when the rules say so) is counted per user in this replica's memory and judged
//! at once, so a loop that reaches one replica trips within the request that crossed the line.
//! Each second a replica adds its counts to the shared activity in PostgreSQL and judges each
//! active user on every replica's counts together, so a loop spread over replicas trips too.
//! A trip is one row (one open trip per user, whoever saw it first): the winner drops the cached
//! callers (the key is refused from the next request on, here at once and on other replicas at
//! the change note), holds the runtime (frozen in place) and posts the webhook.

use super::Gateway;
use super::catalog::Caller;
use clawloops_models::breaker::{self, Bucket, Recent, Seen, Settings, Trip};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// How often replicas share their counts.
const SHARE_EVERY: Duration = Duration::from_secs(1);
/// Users active on this replica within this many seconds are judged on shared counts.
const RECENTLY_SECS: i64 = 5;
/// How long the webhook may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Called with the user and the reason (in words for its owner) when this replica opens a trip:
/// the server holds the user's runtime.
pub type OnTrip = Arc<dyn Fn(Uuid, String) + Send + Sync>;

/// One user's watch on this replica.
#[derive(Default)]
struct Watch {
    recent: Recent,
    /// The kind of key seen last (named in the trip).
    runtime_key: bool,
}

/// The breaker's state on this replica.
pub struct Breaker {
    /// This replica's name in the shared activity.
    replica: String,
    settings: RwLock<Arc<Settings>>,
    watches: Mutex<HashMap<Uuid, Watch>>,
    /// Seconds not shared yet.
    outbox: Mutex<HashMap<(Uuid, i64), Bucket>>,
    /// Users whose trip this replica is opening now.
    tripping: Mutex<HashSet<Uuid>>,
    /// Users this replica found over a rule, refused at once from the next request on, until
    /// the trip is in the database (the cached callers then carry it) or could not be written.
    marked: Mutex<HashMap<Uuid, String>>,
    /// How many are marked: the hot path reads this, not the lock.
    any_marked: std::sync::atomic::AtomicUsize,
    on_trip: std::sync::OnceLock<OnTrip>,
    /// The rules must be read again (a change made here; the change note may come later).
    stale: std::sync::atomic::AtomicBool,
}

impl Breaker {
    pub fn new(settings: Option<Settings>) -> Breaker {
        Breaker {
            replica: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            settings: RwLock::new(Arc::new(settings.unwrap_or_else(|| Settings {
                rules: breaker::Rules::default(),
                webhook_url: None,
                updated_at: OffsetDateTime::now_utc(),
                updated_by: None,
            }))),
            watches: Mutex::default(),
            outbox: Mutex::default(),
            tripping: Mutex::default(),
            marked: Mutex::default(),
            any_marked: std::sync::atomic::AtomicUsize::new(0),
            on_trip: std::sync::OnceLock::new(),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sets what holds a user's runtime on a trip (once, when the server is put together).
    pub fn on_trip(&self, hook: OnTrip) {
        if self.on_trip.set(hook).is_err() {
            tracing::warn!("the breaker's trip hook was set twice; the first one stays");
        }
    }

    /// Asks for the rules to be read again within a second.
    pub fn stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The rules in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_settings(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
    }

    /// Why `caller`'s key is refused at once on this replica, if it is.
    pub fn refusal(&self, caller: &Caller) -> Option<String> {
        if self.any_marked.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return None;
        }
        let settings = self.settings();
        if !(caller.runtime_key || settings.rules.include_personal_keys) {
            return None;
        }
        self.marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&caller.user_id)
            .cloned()
    }

    fn mark(&self, user_id: Uuid, message: Option<String>) {
        let mut marked = self.marked.lock().unwrap_or_else(PoisonError::into_inner);
        match message {
            Some(message) => {
                marked.insert(user_id, message);
            }
            None => {
                marked.remove(&user_id);
            }
        }
        self.any_marked
            .store(marked.len(), std::sync::atomic::Ordering::Release);
    }

    /// Counts a finished request; the rule it trips, if any.
    fn count(&self, caller: &Caller, seen: &Seen) -> Option<Trip> {
        let settings = self.settings();
        let rules = &settings.rules;
        if !rules.enabled || !(caller.runtime_key || rules.include_personal_keys) {
            return None;
        }
        let second = seen.at.unix_timestamp();
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((caller.user_id, second))
            .or_insert_with(|| Bucket {
                second,
                ..Bucket::default()
            })
            .add(seen);
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let watch = watches.entry(caller.user_id).or_default();
        watch.runtime_key = caller.runtime_key;
        watch.recent.record(rules, seen)
    }
}

/// What a request asks, for telling near-identical requests apart: the last chat message, or
/// the prompt, or the input.
pub fn subject(fields: &Map<String, Value>) -> String {
    let part = fields
        .get("messages")
        .and_then(|m| m.as_array())
        .and_then(|m| m.last())
        .or_else(|| fields.get("prompt"))
        .or_else(|| fields.get("input"));
    match part {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

impl Gateway {
    /// Counts a finished request of `caller` (`failed`: it was answered with an error) and
    /// trips the breaker when a rule says so.
    pub(super) fn breaker_saw(
        self: &Arc<Self>,
        caller: &Caller,
        cost_nano: i64,
        failed: bool,
        fingerprint: u64,
    ) {
        let seen = Seen {
            at: OffsetDateTime::now_utc(),
            cost_nano,
            failed,
            fingerprint,
        };
        if let Some(trip) = self.breaker.count(caller, &seen) {
            self.clone().trip(caller.user_id, trip, caller.runtime_key);
        }
    }

    /// Opens a trip for the user (unless this replica is at it already) in the background.
    fn trip(self: Arc<Self>, user_id: Uuid, trip: Trip, runtime_key: bool) {
        if !self
            .breaker
            .tripping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user_id)
        {
            return;
        }
        let cooldown = i64::from(self.breaker.settings().rules.cooldown_minutes);
        self.breaker.mark(
            user_id,
            Some(super::catalog::paused_message(
                &trip.words(),
                Some(OffsetDateTime::now_utc() + time::Duration::minutes(cooldown)),
            )),
        );
        tokio::spawn(async move {
            if let Err(err) = self.open_trip(user_id, &trip, runtime_key).await {
                tracing::error!(user = %user_id, error = %err, "could not open a breaker trip");
            }
            // The cached callers carry the trip from here on (or it could not be written).
            self.breaker.mark(user_id, None);
            self.breaker
                .tripping
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&user_id);
        });
    }

    async fn open_trip(&self, user_id: Uuid, trip: &Trip, runtime_key: bool) -> sqlx::Result<()> {
        let settings = self.breaker.settings();
        let kind = if runtime_key { "runtime" } else { "personal" };
        let mut conn = self.pool.acquire().await?;
        let opened = breaker::open_trip(&mut conn, user_id, trip, kind).await?;
        self.breaker
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&user_id);
        // Another replica was first: it holds the runtime and posts the webhook.
        let Some(row) = opened else { return Ok(()) };
        // Refused from the next request on; other replicas hear of it from the database.
        self.invalidate();
        self.metrics.breaker_tripped(&row.rule);
        tracing::warn!(user = %row.username, rule = %row.rule, words = %row.words, "the runaway-agent breaker tripped");
        if let Some(hold) = self.breaker.on_trip.get() {
            hold(
                user_id,
                format!("the runaway-agent breaker tripped because {}", row.words),
            );
        }
        if let Some(url) = settings.webhook_url.clone() {
            let client = self.client.clone();
            let body = serde_json::json!({
                "event": "breaker.tripped",
                "user": row.username,
                "user_id": row.user_id,
                "rule": row.rule,
                "words": row.words,
                "key_kind": row.key_kind,
                "tripped_at": row.tripped_at.unix_timestamp(),
                "resume_after": row.resume_after.unix_timestamp(),
            });
            tokio::spawn(async move {
                let sent = client
                    .post(&url)
                    .timeout(WEBHOOK_TIMEOUT)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {}
                    Ok(resp) => {
                        tracing::warn!(
                            status = resp.status().as_u16(),
                            "the breaker's webhook refused the trip"
                        );
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not post the breaker's webhook");
                    }
                }
            });
        }
        Ok(())
    }

    /// Reads the breaker's rules again (after a change note).
    pub(super) async fn reload_breaker(&self) {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the breaker's rules");
                return;
            }
        };
        match breaker::settings(&mut conn).await {
            Ok(settings) => self.breaker.set_settings(settings),
            Err(err) => tracing::warn!(error = %err, "could not read the breaker's rules"),
        }
    }

    /// Shares this replica's counts every second and judges users on every replica's counts.
    pub(super) async fn share_forever(self: Arc<Self>) {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(SHARE_EVERY).await;
            ticks += 1;
            if self
                .breaker
                .stale
                .swap(false, std::sync::atomic::Ordering::AcqRel)
            {
                self.reload_breaker().await;
            }
            if let Err(err) = self.share_once(ticks.is_multiple_of(60)).await {
                tracing::warn!(error = %err, "could not share the breaker's counts");
            }
        }
    }

    /// One round: this replica's new seconds go to PostgreSQL, and each user seen here is judged
    /// on every replica's seconds. Old seconds are forgotten when `tidy`.
    pub async fn share_once(self: &Arc<Self>, tidy: bool) -> sqlx::Result<usize> {
        let settings = self.breaker.settings();
        let rules = &settings.rules;
        let horizon = breaker::horizon_secs(rules);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let outbox: Vec<(Uuid, Bucket)> = std::mem::take(
            &mut *self
                .breaker
                .outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_iter()
        .map(|((user, _), bucket)| (user, bucket))
        .collect();
        if tidy {
            breaker::forget_before(&self.pool, &self.breaker.replica, now - horizon).await?;
            self.breaker
                .watches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, w| !w.recent.is_empty());
        }
        if !rules.enabled {
            return Ok(0);
        }
        breaker::share(&self.pool, &self.breaker.replica, &outbox).await?;
        // Everyone active here in the last few seconds is judged again: two replicas sharing
        // in the same moment may each miss the other's newest seconds once.
        let users: Vec<Uuid> = self
            .breaker
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, w)| w.recent.latest() >= now - RECENTLY_SECS)
            .map(|(user, _)| *user)
            .collect();
        if users.is_empty() {
            return Ok(outbox.len());
        }
        let others =
            breaker::shared_by_others(&self.pool, &self.breaker.replica, &users, now - horizon)
                .await?;
        if others.is_empty() {
            return Ok(outbox.len());
        }
        let mut trips = Vec::new();
        {
            let watches = self
                .breaker
                .watches
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for user in users {
                let Some(watch) = watches.get(&user) else {
                    continue;
                };
                let mut all = watch.recent.clone();
                for (_, bucket) in others.iter().filter(|(u, _)| *u == user) {
                    all.add(rules, bucket);
                }
                if let Some(trip) = all.judge(rules) {
                    trips.push((user, trip, watch.runtime_key));
                }
            }
        }
        for (user, trip, runtime_key) in trips {
            self.clone().trip(user, trip, runtime_key);
        }
        Ok(outbox.len())
    }
}
