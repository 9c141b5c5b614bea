//! The gate: forward-auth's decision, its session cache and what empties it, workspace activity.

use super::{
    ACCESS_CHANNEL, Decision, Deny, EntryRequest, LOOKUP_WAIT, MARK_EVERY, PASS_TTL, Pass, handoff,
    routes::routes, store,
};
use clawloops_orchestrator::{DesiredState, ObservedState, Orchestrator};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The entry gate. One per process; cheap to share.
pub struct EntryGate {
    pool: PgPool,
    /// Lookups of sessions not in the cache, on a pool of their own: a flood of made-up
    /// session ids waits here, never for the connections of sign-in and pages.
    lookups: crate::database::Lookups,
    orchestrator: Orchestrator,
    /// `clawloops.localhost`: workspaces are `<name>.clawloops.localhost`.
    workspace_domain: Option<String>,
    session_cookie: &'static str,
    absolute: time::Duration,
    passes: moka::sync::Cache<String, Option<Arc<Pass>>>,
    /// Bumped by every invalidation: an answer loaded across one is not cached.
    epoch: AtomicU64,
    activity: Mutex<HashMap<Uuid, i64>>,
    /// Workspaces are served over HTTPS (the public address is https): their routers are on
    /// Traefik's `websecure` entry point, with TLS.
    https: bool,
    /// Workspaces are a site of their own: the session cookie does not reach them, a handoff
    /// gives each its own cookie (see [`handoff`]).
    handoff: bool,
    /// Workspace cookie → the session it stands for (a `None` remembers an unknown one).
    ws_sessions: moka::sync::Cache<String, Option<String>>,
    /// The session cookie's signing key (the control plane signs it): a value without a valid
    /// signature is no session, and costs no lookup. Unset: plain session ids (unit tests).
    session_key: Option<tower_sessions::cookie::Key>,
}

impl EntryGate {
    pub fn new(
        pool: PgPool,
        orchestrator: Orchestrator,
        workspace_domain: Option<String>,
        session_cookie: &'static str,
        absolute: time::Duration,
        session_lookups: u32,
    ) -> Self {
        EntryGate {
            lookups: crate::database::Lookups::new(&pool, session_lookups, LOOKUP_WAIT),
            pool,
            orchestrator,
            workspace_domain,
            session_cookie,
            absolute,
            passes: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(PASS_TTL)
                .support_invalidation_closures()
                .build(),
            epoch: AtomicU64::new(0),
            activity: Mutex::new(HashMap::new()),
            https: false,
            handoff: false,
            session_key: None,
            ws_sessions: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(PASS_TTL)
                .build(),
        }
    }

    /// Workspaces get their own cookie by a handoff (their hosts are a site of their own).
    pub fn handing_off(mut self, handoff: bool) -> Self {
        self.handoff = handoff;
        self
    }

    /// Session cookies are signed with `key` (as the control plane's session layer signs them).
    pub fn signing_sessions(mut self, key: tower_sessions::cookie::Key) -> Self {
        self.session_key = Some(key);
        self
    }

    /// Whether workspaces are entered by a handoff.
    pub fn hands_off(&self) -> bool {
        self.handoff
    }

    /// A user's workspace address (`http://alice.ws.example/`), when workspaces are routed.
    pub fn workspace_url(&self, username: &str) -> Option<String> {
        self.orchestrator.workspace_url(username)
    }

    /// Routes workspaces over HTTPS (Traefik's `websecure` entry point) rather than plain HTTP.
    pub fn serving_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    pub fn workspace_domain(&self) -> Option<&str> {
        self.workspace_domain.as_deref()
    }

    /// The workspace name in a host (`alice.clawloops.localhost:8080` → `alice`), when the host
    /// is one of this installation's workspace hosts.
    pub(super) fn workspace_of<'h>(&self, host: &'h str) -> Option<&'h str> {
        clawloops_wire::edge::workspace_of(host, self.workspace_domain.as_deref()?)
    }

    /// Decides one forwarded request.
    pub async fn decide(&self, req: EntryRequest<'_>) -> Decision {
        let Some(workspace) = req.host.and_then(|h| self.workspace_of(h)) else {
            return Decision::Deny(Deny::UnknownHost);
        };
        let (session, rest) = if self.handoff {
            if req
                .uri
                .is_some_and(|uri| uri.split(['?', '#']).next() == Some(handoff::PATH))
            {
                return self.exchange(workspace, req.uri.unwrap_or_default()).await;
            }
            let Some((token, rest)) = req.cookie.and_then(|c| {
                clawloops_wire::edge::split_cookie(c, handoff::COOKIE, handoff::well_formed)
            }) else {
                return Decision::SignIn;
            };
            match self.ws_session(&token, workspace).await {
                Ok(Some(session)) => (session, rest),
                Ok(None) => return Decision::SignIn,
                Err(crate::database::LookupError::Busy) => return Decision::Busy,
                Err(err) => {
                    tracing::error!(error = %err, "forward-auth could not read the workspace cookie");
                    return Decision::Unavailable;
                }
            }
        } else {
            let Some(found) = req.cookie.and_then(|c| self.split_cookie(c)) else {
                return Decision::SignIn;
            };
            found
        };
        let pass = match self.pass(&session).await {
            Ok(Some(pass)) => pass,
            Ok(None) => return Decision::SignIn,
            Err(crate::database::LookupError::Busy) => return Decision::Busy,
            Err(err) => {
                tracing::error!(error = %err, "forward-auth could not read the session");
                return Decision::Unavailable;
            }
        };
        let now = OffsetDateTime::now_utc();
        if pass.valid_until <= now {
            return Decision::SignIn;
        }
        if !pass.active {
            return Decision::Deny(Deny::Disabled);
        }
        if pass.must_change_password {
            return Decision::Deny(Deny::PasswordChangeRequired);
        }
        if pass.workspace != workspace {
            return Decision::Deny(Deny::NotYours);
        }
        if !pass.running {
            return Decision::NotRunning;
        }
        self.mark_active(&pass, now.unix_timestamp());
        Decision::Allow {
            user_id: pass.user_id,
            username: pass.username.clone(),
            cookie: rest,
        }
    }

    /// Exchanges a handoff code from the request's query for a workspace cookie.
    async fn exchange(&self, workspace: &str, uri: &str) -> Decision {
        let (code, path) = handoff::handoff_query(uri);
        let Some(code) = code.filter(|c| handoff::well_formed(c)) else {
            return Decision::SignIn;
        };
        let redeemed = self
            .lookups
            .run(|pool| async move { handoff::redeem(&pool, &code, workspace).await })
            .await;
        match redeemed {
            Ok(Some(cookie)) => Decision::Handoff {
                cookie,
                location: handoff::safe_path(path.as_deref()),
            },
            Ok(None) => Decision::SignIn,
            Err(crate::database::LookupError::Busy) => Decision::Busy,
            Err(err) => {
                tracing::error!(error = %err, "forward-auth could not exchange a handoff code");
                Decision::Unavailable
            }
        }
    }

    /// The session a workspace cookie stands for (cached like sessions).
    async fn ws_session(
        &self,
        token: &str,
        workspace: &str,
    ) -> Result<Option<String>, crate::database::LookupError> {
        let key = format!("{workspace}/{token}");
        if let Some(cached) = self.ws_sessions.get(&key) {
            return Ok(cached);
        }
        let found = self
            .lookups
            .run(|pool| async move { handoff::session_of(&pool, token, workspace).await })
            .await?;
        self.ws_sessions.insert(key, found.clone());
        Ok(found)
    }

    /// The session id from a `Cookie` header, and the header without it. A malformed id counts
    /// as none (no database round trip for garbage).
    pub(super) fn split_cookie(&self, header: &str) -> Option<(String, Option<String>)> {
        let (value, rest) =
            clawloops_wire::edge::split_cookie(header, self.session_cookie, |value| {
                self.session_id(value).is_some()
            })?;
        Some((self.session_id(&value)?, rest))
    }

    /// The session id a cookie value carries: its signature checked when sessions are signed,
    /// and the id well-formed.
    fn session_id(&self, value: &str) -> Option<String> {
        use tower_sessions::cookie::{Cookie, CookieJar};
        let id = match &self.session_key {
            Some(key) => {
                let mut jar = CookieJar::new();
                jar.add_original(Cookie::new(self.session_cookie, value.to_owned()));
                jar.signed(key).get(self.session_cookie)?.value().to_owned()
            }
            None => value.to_owned(),
        };
        id.parse::<tower_sessions::session::Id>()
            .is_ok()
            .then_some(id)
    }

    async fn pass(&self, session: &str) -> Result<Option<Arc<Pass>>, crate::database::LookupError> {
        if let Some(cached) = self.passes.get(session) {
            return Ok(cached);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let loaded = self.lookups.run(|pool| self.load(pool, session)).await?;
        // A change reported while this was read may not be in it: use it, don't keep it.
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.passes.insert(session.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    async fn load(&self, pool: PgPool, session: &str) -> Result<Option<Arc<Pass>>, sqlx::Error> {
        let row = store::session_facts(&pool, session).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let login_end = row
            .login_at
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
            .map_or(OffsetDateTime::UNIX_EPOCH, |at| at + self.absolute);
        Ok(Some(Arc::new(Pass {
            user_id: row.id,
            workspace: Orchestrator::workspace_name(&row.username),
            username: row.username,
            active: row.status == "active",
            must_change_password: row.must_change_password,
            running: row.desired_state == Some(DesiredState::Running)
                && row.observed_state == Some(ObservedState::Running),
            valid_until: row.expires_at.min(login_end),
            marked: AtomicI64::new(0),
        })))
    }

    /// Forgets every cached answer about `user` (a change arrived).
    pub fn forget_user(&self, user: Uuid) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self
            .passes
            .invalidate_entries_if(move |_, pass| pass.as_ref().is_some_and(|p| p.user_id == user))
        {
            tracing::warn!(error = %err, "could not drop cached sessions; dropping all");
            self.passes.invalidate_all();
        }
    }

    /// Forgets everything (notifications may have been missed).
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.passes.invalidate_all();
    }

    fn mark_active(&self, pass: &Pass, now: i64) {
        let last = pass.marked.load(Ordering::Relaxed);
        if now - last < MARK_EVERY {
            return;
        }
        if pass
            .marked
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && let Ok(mut seen) = self.activity.lock()
        {
            seen.insert(pass.user_id, now);
        }
    }

    /// Writes the activity noted since the last flush (one statement).
    pub async fn flush_activity(&self) -> Result<u64, clawloops_orchestrator::OrchestratorError> {
        let seen: Vec<(Uuid, OffsetDateTime)> = match self.activity.lock() {
            Ok(mut seen) => seen
                .drain()
                .filter_map(|(user, at)| {
                    Some((user, OffsetDateTime::from_unix_timestamp(at).ok()?))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        if seen.is_empty() {
            return Ok(0);
        }
        self.orchestrator.touch_activity(&seen).await
    }

    /// Traefik's dynamic configuration for the workspace routes: one router and one service
    /// per running runtime, behind the forward-auth middleware defined in the repository's
    /// file provider configuration.
    pub async fn traefik_routes(&self) -> Result<Value, clawloops_orchestrator::OrchestratorError> {
        let Some(domain) = &self.workspace_domain else {
            return Ok(json!({}));
        };
        let bindings = self.orchestrator.routable().await?;
        let doc = routes(domain, &bindings, self.https);
        let routed: Vec<Uuid> = bindings.iter().map(|b| b.user_id).collect();
        self.orchestrator.mark_routed(&routed).await?;
        Ok(doc)
    }

    /// Listens for access changes until the process ends, reconnecting when needed.
    pub async fn listen(self: Arc<Self>) {
        loop {
            match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => {
                    if let Err(err) = listener.listen(ACCESS_CHANNEL).await {
                        tracing::warn!(error = %err, "could not listen for access changes");
                    } else {
                        // Anything cached before listening may be stale.
                        self.forget_all();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(note)) => match Uuid::parse_str(note.payload()) {
                                    Ok(user) => self.forget_user(user),
                                    Err(_) => self.forget_all(),
                                },
                                // The connection dropped and came back: notes may be lost.
                                Ok(None) => self.forget_all(),
                                Err(err) => {
                                    tracing::warn!(error = %err, "access change listener failed");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not listen for access changes"),
            }
            self.forget_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Writes noted activity every `every` until the process ends.
    pub async fn flush_forever(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.flush_activity().await {
                tracing::warn!(error = %err, "could not record workspace activity");
            }
        }
    }
}
