//! The single place where a change to an account reaches the rest of the platform.
//!
//! Sessions, the user's runtime and its gateway key, inside the caller's transaction.

use super::auth::tokens;
use super::db::{sessions, users};
use crate::AppError;
use sqlx::PgConnection;
use uuid::Uuid;

/// The account was disabled: its runtime stops. Its sessions stay in the table only so that
/// their next request can be answered with `USER_DISABLED` (and then end); none of them passes
/// the gate again.
pub async fn user_disabled(
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    super::runtimes::stop_for_disabled(tx, user, username).await?;
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

/// The account's password was reset by an admin: every session ends.
pub async fn password_reset(tx: &mut PgConnection, user: Uuid) -> Result<(), AppError> {
    sessions::delete_for_user(&mut *tx, user, None).await?;
    Ok(())
}

/// The account is about to be deleted (its sessions go with it by foreign key): its runtime and
/// workspace are removed.
pub async fn user_deleting(
    tx: &mut PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    super::runtimes::delete_for_deleted(tx, user, username).await
}
