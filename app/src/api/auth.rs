//! Signing in and out, the current user, their password and sessions.

use crate::AppError;
use crate::model::Role;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The signed-in user, as pages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    /// The user must choose a new password before anything else.
    pub must_change_password: bool,
}

/// One of the user's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// This is the session making the request.
    pub current: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub signed_in_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

#[cfg(feature = "ssr")]
impl From<crate::ssr::identity::auth::SessionUser> for Me {
    fn from(user: crate::ssr::identity::auth::SessionUser) -> Self {
        Me {
            id: user.id.to_string(),
            username: user.username,
            email: user.email,
            role: user.role,
            must_change_password: user.must_change_password,
        }
    }
}

/// Who is signed in: `None` for nobody, `USER_DISABLED` for a disabled account.
#[server(endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    use crate::ssr::{identity::auth::gate, respond};
    respond(async {
        match gate::require(gate::Access::SignedIn).await {
            Ok(caller) => Ok(Some(Me::from(caller.user))),
            Err(AppError::Unauthenticated) => Ok(None),
            Err(other) => Err(other),
        }
    })
    .await
}

/// Signs in. Answers `INVALID_CREDENTIALS` without saying which part was wrong,
/// `TOO_MANY_ATTEMPTS` after repeated failures, `USER_DISABLED` only after a right password.
#[server(endpoint = "auth/login")]
pub async fn login(username: String, password: String) -> Result<Me, AppError> {
    use crate::ssr::{app_state, identity::auth, respond};
    respond(async {
        let state = app_state()?;
        let mut session = auth::gate::auth_session().await?;
        let client = auth::gate::client_info().await;
        let user =
            auth::login::sign_in(state.pool(), &mut session, &client, &username, password).await?;
        Ok(Me::from(user))
    })
    .await
}

/// Signs out of this session.
#[server(endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    use crate::ssr::{app_state, audit, identity::auth::gate, internal, respond};
    respond(async {
        let mut caller = match gate::require(gate::Access::SignedIn).await {
            Ok(caller) => caller,
            // Signing out twice, or after the session ended, is fine.
            Err(AppError::Unauthenticated | AppError::UserDisabled) => return Ok(()),
            Err(other) => return Err(other),
        };
        audit::by_caller(
            app_state()?.pool(),
            &caller,
            audit::action::LOGOUT,
            None,
            None,
        )
        .await?;
        caller.auth.logout().await.map_err(internal)?;
        app_state()?.access_changed(caller.user.id);
        Ok(())
    })
    .await
}

/// Changes the caller's password; ends every other session and renews this one.
#[server(endpoint = "auth/password")]
pub async fn change_password(current: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::{Access, identity::account, serve};
    serve(Access::SignedIn, async |state, caller| {
        account::change_password(state, caller, current, new_password).await
    })
    .await
}

/// The caller's sessions, most recently used first.
#[server(endpoint = "auth/sessions")]
pub async fn my_sessions() -> Result<Vec<SessionInfo>, AppError> {
    use crate::ssr::{Access, identity::account, serve};
    serve(Access::User, async |state, caller| {
        account::sessions(state, caller).await
    })
    .await
}

/// Ends every session of the caller, this one included, and what was opened with them: a
/// running workspace restarts (its open connections end); with `revoke_keys`, the caller's
/// personal API keys are revoked too. Answers how many sessions ended.
#[server(endpoint = "auth/sign-out-everywhere")]
pub async fn sign_out_everywhere(revoke_keys: Option<bool>) -> Result<u64, AppError> {
    use crate::ssr::{Access, identity::account, serve};
    serve(Access::SignedIn, async |state, caller| {
        account::sign_out_everywhere(state, caller, revoke_keys.unwrap_or(false)).await
    })
    .await
}
