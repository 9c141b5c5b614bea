//! Who is asking: passwords, tokens, the axum-login backend, the session store, the access
//! gate every server function passes, and the sign-in procedure.

pub mod backend;
pub mod gate;
pub mod login;
pub mod password;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use backend::{AuthSession, Backend, SessionUser};

/// Session keys ClawLoops writes next to axum-login's own.
pub mod keys {
    /// The signed-in user's id (copied into the `sessions.user_id` column by the store).
    pub const USER_ID: &str = "clawloops.user_id";
    /// When the user signed in (unix seconds): the absolute expiry counts from here.
    pub const LOGIN_AT: &str = "clawloops.login_at";
    /// When the session was last used (unix seconds), updated at most every few minutes.
    pub const SEEN_AT: &str = "clawloops.seen_at";
    /// The client address at sign-in.
    pub const CLIENT_ADDR: &str = "clawloops.client_addr";
    /// The browser's user agent at sign-in.
    pub const USER_AGENT: &str = "clawloops.user_agent";
}

/// Facts about the request's origin, put into request extensions by the server.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address (the peer, or the forwarded address from a trusted proxy).
    pub addr: Option<String>,
    /// The `User-Agent` header, shortened.
    pub user_agent: Option<String>,
}

/// Session lifetimes, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: time::Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: time::Duration,
}
