//! The access gate every server function passes: who is asking, and may they?

use super::{AuthSession, ClientInfo, SessionPolicy, SessionUser, keys};
use crate::AppError;
use crate::model::{Role, UserStatus};
use crate::ssr::{app_state, internal};
use time::OffsetDateTime;

/// How much access a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Signed in, even if the password must be changed first (who-am-I, sign-out, password
    /// change).
    SignedIn,
    /// Signed in, active, password not due for change: every ordinary call.
    User,
    /// As [`Access::User`], and an admin.
    Admin,
}

/// The caller of a server function that passed the gate.
pub struct Caller {
    /// Who they are.
    pub user: SessionUser,
    /// Their session (for sign-out and password change).
    pub auth: AuthSession,
    /// Where they called from.
    pub client: ClientInfo,
}

/// A session is marked as used again at most this often (each mark is a database write).
const SEEN_EVERY: time::Duration = time::Duration::minutes(5);

/// The request's session.
pub async fn auth_session() -> Result<AuthSession, AppError> {
    leptos_axum::extract::<AuthSession>()
        .await
        .map_err(|e| internal(format!("no auth session in the request: {e}")))
}

/// The request's client facts (address, user agent).
pub async fn client_info() -> ClientInfo {
    leptos_axum::extract::<axum::Extension<ClientInfo>>()
        .await
        .map(|axum::Extension(info)| info)
        .unwrap_or_default()
}

/// Lets the call through when the caller has `access`, else answers with the right code:
/// `UNAUTHENTICATED`, `USER_DISABLED`, `PASSWORD_CHANGE_REQUIRED` or `ACCESS_DENIED`.
pub async fn require(access: Access) -> Result<Caller, AppError> {
    let mut auth = auth_session().await?;
    let user = check(&mut auth, access, app_state()?.session_policy()).await?;
    Ok(Caller {
        user,
        auth,
        client: client_info().await,
    })
}

/// The gate's rules on an already extracted session, under `policy` (plain axum routes call it
/// with their own state; no Leptos context is needed).
pub async fn check(
    auth: &mut AuthSession,
    access: Access,
    policy: SessionPolicy,
) -> Result<SessionUser, AppError> {
    let Some(user) = auth.user.clone() else {
        return Err(AppError::Unauthenticated);
    };
    if user.status == UserStatus::Disabled {
        // The session ends here; this answer is the last thing it sees.
        auth.logout().await.map_err(internal)?;
        return Err(AppError::UserDisabled);
    }
    let now = OffsetDateTime::now_utc();
    let login_at = session_time(auth, keys::LOGIN_AT).await?;
    if login_at.is_none_or(|at| now - at > policy.absolute) {
        auth.logout().await.map_err(internal)?;
        return Err(AppError::Unauthenticated);
    }
    mark_seen(auth, now).await?;
    if user.must_change_password && access != Access::SignedIn {
        return Err(AppError::PasswordChangeRequired);
    }
    if access == Access::Admin && user.role != Role::Admin {
        return Err(AppError::AccessDenied);
    }
    Ok(user)
}

async fn session_time(auth: &AuthSession, key: &str) -> Result<Option<OffsetDateTime>, AppError> {
    let secs: Option<i64> = auth.session.get(key).await.map_err(internal)?;
    Ok(secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()))
}

/// Refreshes the idle expiry now and then (saving the session pushes its expiry forward).
async fn mark_seen(auth: &AuthSession, now: OffsetDateTime) -> Result<(), AppError> {
    let seen = session_time(auth, keys::SEEN_AT).await?;
    if seen.is_none_or(|at| now - at > SEEN_EVERY) {
        auth.session
            .insert(keys::SEEN_AT, now.unix_timestamp())
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// Makes `user` the session's user: a fresh session id (no fixation), the login time for the
/// absolute expiry, and the facts the account page lists.
pub async fn start_session(
    auth: &mut AuthSession,
    user: &SessionUser,
    client: &ClientInfo,
) -> Result<(), AppError> {
    auth.session.cycle_id().await.map_err(internal)?;
    auth.login(user).await.map_err(internal)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let session = &auth.session;
    let writes = [
        (keys::USER_ID, serde_json::json!(user.id.to_string())),
        (keys::LOGIN_AT, serde_json::json!(now)),
        (keys::SEEN_AT, serde_json::json!(now)),
        (keys::CLIENT_ADDR, serde_json::json!(client.addr)),
        (keys::USER_AGENT, serde_json::json!(client.user_agent)),
    ];
    for (key, value) in writes {
        session.insert_value(key, value).await.map_err(internal)?;
    }
    Ok(())
}

/// The policy in force (for tests and the account page).
pub fn policy() -> Result<SessionPolicy, AppError> {
    Ok(app_state()?.session_policy())
}
