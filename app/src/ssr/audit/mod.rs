//! Recording audit events: the action names, and a helper that fills in actor and client.

pub mod repo;

use crate::AppError;
use crate::ssr::identity::auth::gate::Caller;
use repo::NewAuditEvent;
use sqlx::PgExecutor;

/// Every action the audit log knows, as stored.
pub mod action {
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const LOGIN_THROTTLED: &str = "login.throttled";
    pub const LOGIN_LOCKED: &str = "login.locked";
    pub const LOGIN_DENIED: &str = "login.denied";
    pub const LOGOUT: &str = "logout";
    pub const SESSIONS_ENDED: &str = "sessions.ended";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const PASSWORD_RESET: &str = "password.reset";
    pub const INVITATION_CREATED: &str = "invitation.created";
    pub const INVITATION_REISSUED: &str = "invitation.reissued";
    pub const INVITATION_REVOKED: &str = "invitation.revoked";
    pub const INVITATION_ACCEPTED: &str = "invitation.accepted";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ROLE_CHANGED: &str = "user.role_changed";
    pub const USER_DELETED: &str = "user.deleted";
    pub const SSO_LOGIN: &str = "sso.login";
    pub const SSO_REFUSED: &str = "sso.refused";
    pub const SSO_LINKED: &str = "sso.linked";
    pub const SSO_UNLINKED: &str = "sso.unlinked";
    pub const SIGN_IN_POLICY: &str = "sign_in.policy_changed";
}

/// What an event is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `user` or `invitation`.
    pub kind: &'a str,
    /// Its id.
    pub id: &'a str,
    /// Its name, when it has one.
    pub name: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// A user subject.
    pub fn user(id: &'a str, name: &'a str) -> Self {
        Subject {
            kind: "user",
            id,
            name: Some(name),
        }
    }

    /// An invitation subject.
    pub fn invitation(id: &'a str) -> Self {
        Subject {
            kind: "invitation",
            id,
            name: None,
        }
    }
}

/// Records an event done by `caller` (inside the caller's transaction when given one).
pub async fn by_caller(
    db: impl PgExecutor<'_>,
    caller: &Caller,
    action: &str,
    subject: Option<Subject<'_>>,
    details: Option<serde_json::Value>,
) -> Result<(), AppError> {
    let actor_id = caller.user.id;
    repo::record(
        db,
        NewAuditEvent {
            action,
            actor_id: Some(actor_id),
            actor_name: Some(&caller.user.username),
            subject_type: subject.map(|s| s.kind),
            subject_id: subject.map(|s| s.id.to_owned()),
            subject_name: subject.and_then(|s| s.name),
            client_addr: caller.client.addr.as_deref(),
            details,
        },
    )
    .await?;
    Ok(())
}
