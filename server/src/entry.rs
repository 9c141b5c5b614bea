//! The control plane's side of the entry layer. Traefik asks [`EntryGate::decide`] on every
//! request to a workspace host (forward-auth) whether it may pass, and polls
//! [`EntryGate::traefik_routes`] for the workspace routers (its HTTP provider).
//!
//! The decision is the hottest path of the system, so it is answered from memory: a short-lived
//! cache of sessions (who, whether active, whether their runtime runs), emptied for a user the
//! moment PostgreSQL reports a change that could turn "allow" into "deny" (logout, disable,
//! password change, runtime stop: see the `clawloops_access` triggers). Workspace activity for
//! idle stop is noted in memory and written in batches.

use clawloops_orchestrator::{DesiredState, ObservedState, Orchestrator, RuntimeRow, USER_HEADER};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The PostgreSQL channel the access triggers notify (payload: a user id).
pub const ACCESS_CHANNEL: &str = "clawloops_access";

/// How long a cached answer is used without asking the database again. Changes that matter
/// arrive sooner by notification; this bounds what a lost notification could cost.
const PASS_TTL: Duration = Duration::from_secs(10);

/// How long a decision waits for one of the session lookup connections.
const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// Workspace activity is noted at most this often per user (seconds).
const MARK_EVERY: i64 = 5;

/// The header with the user's id, next to the user's name in [`USER_HEADER`].
pub const USER_ID_HEADER: &str = "x-clawloops-user-id";

/// What forward-auth decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass, as this user; `cookie` is the request's `Cookie` header without the ClawLoops
    /// session (the runtime never sees the session), `None` when nothing is left.
    Allow {
        user_id: Uuid,
        username: String,
        cookie: Option<String>,
    },
    /// No valid session: sign in first.
    SignIn,
    /// The owner's runtime is not running (only its owner is told).
    NotRunning,
    /// Refused, with the reason.
    Deny(Deny),
    /// A handoff code was exchanged (workspaces on a site of their own): set this cookie on the
    /// workspace host and go on to `location` (a path).
    Handoff { cookie: String, location: String },
    /// The decision could not be made (database unreachable): refuse, and say so.
    Unavailable,
    /// Every session lookup is taken (a flood of unknown session ids): come back in a moment.
    Busy,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// Not a workspace host of this installation.
    UnknownHost,
    /// Another user's workspace.
    NotYours,
    Disabled,
    PasswordChangeRequired,
}

impl Deny {
    pub fn code(self) -> &'static str {
        match self {
            Deny::UnknownHost => "UNKNOWN_WORKSPACE",
            Deny::NotYours => "WORKSPACE_FORBIDDEN",
            Deny::Disabled => "USER_DISABLED",
            Deny::PasswordChangeRequired => "PASSWORD_CHANGE_REQUIRED",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Deny::UnknownHost => "There is no workspace at this address.",
            Deny::NotYours => "This workspace belongs to someone else.",
            Deny::Disabled => "This account is disabled.",
            Deny::PasswordChangeRequired => {
                "Choose a new password in ClawLoops before opening your workspace."
            }
        }
    }
}

/// One session's facts, as cached.
#[derive(Debug)]
struct Pass {
    user_id: Uuid,
    username: String,
    workspace: String,
    active: bool,
    must_change_password: bool,
    running: bool,
    /// The session's end (idle expiry or absolute lifetime, whichever is first).
    valid_until: OffsetDateTime,
    /// When activity was last noted (unix seconds).
    marked: AtomicI64,
}

/// The parts of a forwarded request the decision looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryRequest<'a> {
    /// `X-Forwarded-Host`: the workspace host the browser asked for.
    pub host: Option<&'a str>,
    /// The request's `Cookie` header.
    pub cookie: Option<&'a str>,
    /// `X-Forwarded-Uri`: the path and query asked for.
    pub uri: Option<&'a str>,
}

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
    /// gives each its own cookie (see [`crate::handoff`]).
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
    fn workspace_of<'h>(&self, host: &'h str) -> Option<&'h str> {
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
                .is_some_and(|uri| uri.split(['?', '#']).next() == Some(crate::handoff::PATH))
            {
                return self.exchange(workspace, req.uri.unwrap_or_default()).await;
            }
            let Some((token, rest)) = req.cookie.and_then(|c| {
                clawloops_wire::edge::split_cookie(
                    c,
                    crate::handoff::COOKIE,
                    crate::handoff::well_formed,
                )
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
        let (code, path) = crate::handoff::handoff_query(uri);
        let Some(code) = code.filter(|c| crate::handoff::well_formed(c)) else {
            return Decision::SignIn;
        };
        let redeemed = self
            .lookups
            .run(|pool| async move { crate::handoff::redeem(&pool, &code, workspace).await })
            .await;
        match redeemed {
            Ok(Some(cookie)) => Decision::Handoff {
                cookie,
                location: crate::handoff::safe_path(path.as_deref()),
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
            .run(|pool| async move { crate::handoff::session_of(&pool, token, workspace).await })
            .await?;
        self.ws_sessions.insert(key, found.clone());
        Ok(found)
    }

    /// The session id from a `Cookie` header, and the header without it. A malformed id counts
    /// as none (no database round trip for garbage).
    fn split_cookie(&self, header: &str) -> Option<(String, Option<String>)> {
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
        let row = sqlx::query!(
            r#"SELECT u.id, u.username, u.status, u.must_change_password, s.expires_at,
                      (s.data->>'clawloops.login_at')::bigint AS login_at,
                      r.desired_state AS "desired_state?: DesiredState",
                      r.observed_state AS "observed_state?: ObservedState"
                 FROM sessions s
                 JOIN users u ON u.id = s.user_id
                 LEFT JOIN runtimes r ON r.user_id = u.id
                WHERE s.id = $1"#,
            session
        )
        .fetch_optional(&pool)
        .await?;
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

/// The routers and services for running runtimes.
fn routes(domain: &str, bindings: &[RuntimeRow], https: bool) -> Value {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for b in bindings {
        let Some(endpoint) = b.internal_endpoint.as_deref().filter(|e| !e.is_empty()) else {
            continue;
        };
        let name = Orchestrator::workspace_name(&b.username);
        let key = format!("ws-{name}");
        let mut router = json!({
            "rule": format!("Host(`{name}.{domain}`)"),
            "entryPoints": ["web"],
            "middlewares": [
                "public-limits@file",
                "workspace-auth@file",
                "workspace-cookies@file",
                "workspace-headers@file",
            ],
            "service": key,
        });
        if https {
            // Served with the certificate of the file provider's TLS store (docs/tls.md).
            router["entryPoints"] = json!(["websecure"]);
            router["tls"] = json!({});
        }
        routers.insert(key.clone(), router);
        services.insert(
            key,
            json!({ "loadBalancer": { "servers": [ { "url": endpoint } ] } }),
        );
    }
    if routers.is_empty() {
        return json!({});
    }
    json!({ "http": { "routers": routers, "services": services } })
}

/// Response header names Traefik copies into the forwarded request.
pub fn identity_headers() -> [&'static str; 2] {
    [USER_HEADER, USER_ID_HEADER]
}

#[cfg(test)]
mod tests;
