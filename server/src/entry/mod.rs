//! The entry layer: Traefik asks [`EntryGate::decide`] on every request to a workspace host
//! (forward-auth, [`http::auth`]) whether it may pass, and polls [`EntryGate::traefik_routes`]
//! for the workspace routers (its HTTP provider, [`routes`]). Workspaces on a site of their own
//! get their cookie through a [`handoff`].
//!
//! The decision is the hottest path of the system, so it is answered from memory: a short-lived
//! cache of sessions (who, whether active, whether their runtime runs), emptied for a user the
//! moment PostgreSQL reports a change that could turn "allow" into "deny" (logout, disable,
//! password change, runtime stop: see the `clawloops_access` triggers). Workspace activity for
//! idle stop is noted in memory and written in batches.

mod gate;
pub mod handoff;
pub mod http;
mod routes;
mod store;

pub use gate::EntryGate;
pub use routes::identity_headers;

use std::sync::atomic::AtomicI64;
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

/// The header with the user's id, next to the user's name in
/// [`clawloops_orchestrator::USER_HEADER`].
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

#[cfg(test)]
mod tests;
