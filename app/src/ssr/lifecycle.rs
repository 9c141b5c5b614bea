//! The single place where a change to an account reaches the rest of the platform.
//!
//! Sessions, the user's runtime and its gateway key, inside the caller's transaction.

use crate::AppError;
use crate::ssr::AppState;
use crate::ssr::identity::auth::tokens;
use crate::ssr::identity::repo::{sessions, users};
use sqlx::PgConnection;
use uuid::Uuid;

/// The account was disabled: its runtime stops. Its sessions stay in the table only so that
/// their next request can be answered with `USER_DISABLED` (and then end); none of them passes
/// the gate again.
pub async fn user_disabled(
    state: &AppState,
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    crate::ssr::runtimes::stop_for_disabled(state, tx, user, username).await?;
    // Personal keys stop working while the account is disabled (the gateway checks the
    // account); the runtime's key is revoked outright and a new one issued at its next start.
    clawloops_models::keys::revoke_runtime_key(tx, user, "account disabled").await?;
    Ok(())
}

/// The account was enabled again: sessions from before the disable must not come back.
pub async fn user_enabled(tx: &mut PgConnection, user: Uuid) -> Result<(), AppError> {
    users::set_stamp(&mut *tx, user, &tokens::new_stamp()).await?;
    sessions::delete_for_user(&mut *tx, user, None).await?;
    Ok(())
}

/// The account's password was reset by an admin: every session ends, and what was opened with
/// them too (see [`sessions_ended`]).
pub async fn password_reset(
    state: &AppState,
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
    revoke_personal_keys: bool,
) -> Result<Ended, AppError> {
    sessions::delete_for_user(&mut *tx, user, None).await?;
    sessions_ended(
        state,
        tx,
        user,
        username,
        revoke_personal_keys,
        "password reset",
    )
    .await
}

/// What ending someone's sessions ended besides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ended {
    /// The running workspace is being made anew.
    pub workspace_restarted: bool,
    /// Personal API keys revoked.
    pub keys_revoked: u64,
}

/// Sessions of the user were ended (sign out everywhere, a password change or reset): what was
/// opened with them ends too. A workspace's WebSocket is checked only when it opens, so a
/// running runtime is made anew (its container replaced and its gateway key rotated, as a
/// recovery does): every connection to it ends, and its owner opens it again with a valid
/// session. Personal API keys are revoked when asked for (a stolen session may have made one).
pub async fn sessions_ended(
    state: &AppState,
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
    revoke_personal_keys: bool,
    why: &str,
) -> Result<Ended, AppError> {
    let running = clawloops_orchestrator::repo::get(&mut *tx, user)
        .await?
        .is_some_and(|b| b.desired() == clawloops_orchestrator::DesiredState::Running);
    if running {
        crate::ssr::runtimes::restart_for_recovery(state, tx, user, username, why).await?;
    }
    let keys_revoked = if revoke_personal_keys {
        clawloops_models::keys::revoke_personal_keys(&mut *tx, user, why).await?
    } else {
        0
    };
    Ok(Ended {
        workspace_restarted: running,
        keys_revoked,
    })
}

/// The account is about to be deleted (its sessions go with it by foreign key): its runtime and
/// workspace are removed.
pub async fn user_deleting(
    state: &AppState,
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    crate::ssr::runtimes::delete_for_deleted(state, tx, user, username).await
}
