//! The caller's own account: password change, sessions, signing out everywhere.

use crate::AppError;
use crate::api::auth::SessionInfo;
use crate::model::check_password;
use crate::ssr::audit::{self, Subject, action};
use crate::ssr::identity::auth::{SessionUser, gate, password, tokens};
use crate::ssr::identity::repo::{sessions, throttle, users};
use crate::ssr::{AppState, Caller};
use crate::ssr::{internal, lifecycle};

/// See [`crate::api::auth::change_password`].
pub async fn change_password(
    state: &AppState,
    caller: &mut Caller,
    current: String,
    new_password: String,
) -> Result<(), AppError> {
    let pool = state.pool();
    let user = &caller.user;

    // The current password is a secret too: guess it too often and the account locks.
    let key = format!("user:{}", user.username);
    if throttle::locked_until(pool, std::slice::from_ref(&key))
        .await?
        .is_some()
    {
        return Err(AppError::field(
            "current",
            "Too many wrong attempts. Wait a few minutes and try again.",
        ));
    }
    let row = users::find(pool, user.id)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if !password::verify(current.clone(), Some(row.password_hash)).await? {
        let failures = throttle::record_failure(pool, &key).await?;
        throttle::apply_lock(pool, &key, failures).await?;
        return Err(AppError::field(
            "current",
            "The current password is not correct.",
        ));
    }
    check_password(&new_password, &user.username)
        .map_err(|message| AppError::field("new_password", message))?;
    if new_password == current {
        return Err(AppError::field(
            "new_password",
            "Choose a password different from the current one.",
        ));
    }

    let hash = password::hash(new_password).await?;
    let stamp = tokens::new_stamp();
    let mut tx = pool.begin().await?;
    users::set_password(&mut *tx, user.id, &hash, false, &stamp).await?;
    let current_id = caller.auth.session.id().map(|id| id.to_string());
    sessions::delete_for_user(&mut *tx, user.id, current_id.as_deref()).await?;
    let ended = lifecycle::sessions_ended(
        state,
        &mut tx,
        user.id,
        &user.username,
        false,
        "password change",
    )
    .await?;
    let id = user.id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::PASSWORD_CHANGED,
        Some(Subject::user(&id, &user.username)),
        Some(serde_json::json!({ "workspace_restarted": ended.workspace_restarted })),
    )
    .await?;
    tx.commit().await?;
    state.access_changed(user.id);

    // This session carries on under a new id and the new stamp.
    let renewed = users::find(pool, caller.user.id)
        .await?
        .map(SessionUser::from)
        .ok_or(AppError::Unauthenticated)?;
    let client = caller.client.clone();
    gate::start_session(&mut caller.auth, &renewed, &client).await?;
    Ok(())
}

/// See [`crate::api::auth::my_sessions`].
pub async fn sessions(state: &AppState, caller: &Caller) -> Result<Vec<SessionInfo>, AppError> {
    let current = caller.auth.session.id().map(|id| id.to_string());
    let rows = sessions::list_for_user(state.pool(), caller.user.id).await?;
    Ok(rows
        .into_iter()
        .map(|row| SessionInfo {
            current: current.as_deref() == Some(row.id.as_str()),
            signed_in_at: row.created_at,
            last_used_at: row.updated_at,
            client_addr: row.client_addr,
            user_agent: row.user_agent,
        })
        .collect())
}

/// See [`crate::api::auth::sign_out_everywhere`].
pub async fn sign_out_everywhere(
    state: &AppState,
    caller: &mut Caller,
    revoke_keys: bool,
) -> Result<u64, AppError> {
    let mut tx = state.pool().begin().await?;
    users::set_stamp(&mut *tx, caller.user.id, &tokens::new_stamp()).await?;
    let ended = sessions::delete_for_user(&mut *tx, caller.user.id, None).await?;
    let also = lifecycle::sessions_ended(
        state,
        &mut tx,
        caller.user.id,
        &caller.user.username,
        revoke_keys,
        "signed out everywhere",
    )
    .await?;
    let id = caller.user.id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::SESSIONS_ENDED,
        Some(Subject::user(&id, &caller.user.username)),
        Some(serde_json::json!({
            "sessions": ended,
            "workspace_restarted": also.workspace_restarted,
            "keys_revoked": also.keys_revoked,
        })),
    )
    .await?;
    tx.commit().await?;
    caller.auth.logout().await.map_err(internal)?;
    state.access_changed(caller.user.id);
    Ok(ended)
}
