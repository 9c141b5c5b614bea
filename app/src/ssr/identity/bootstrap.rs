//! Accounts made outside the web app: the first admin on first start, and the
//! `clawloops admin …` commands. These run without a session, so the audit actor is named
//! after the tool (`system`, `cli`).

use crate::AppError;
use crate::model::{Role, check_password, normalize_username};
use crate::ssr::audit::action;
use crate::ssr::audit::repo as audit;
use crate::ssr::identity::auth::{password, tokens};
use crate::ssr::identity::repo::{sessions, users};
use sqlx::PgPool;

/// A password chosen for an account made here.
#[derive(Debug)]
pub enum InitialPassword {
    /// Given by the operator (it must pass the policy); no change is forced.
    Given(String),
    /// Generated here, shown once, and must be changed at first sign-in.
    OneTime,
}

/// The account made, and the one-time password to show (when one was generated).
#[derive(Debug)]
pub struct Created {
    pub username: String,
    pub one_time_password: Option<String>,
}

/// Creates an admin account. `actor` names who did it in the audit log.
pub async fn create_admin(
    pool: &PgPool,
    username: &str,
    initial: InitialPassword,
    actor: &str,
) -> Result<Created, AppError> {
    let name = normalize_username(username).map_err(|m| AppError::field("username", m))?;
    let (secret, one_time) = match initial {
        InitialPassword::Given(given) => {
            check_password(&given, &name).map_err(|m| AppError::field("password", m))?;
            (given, false)
        }
        InitialPassword::OneTime => (tokens::one_time_password(), true),
    };
    let hash = password::hash(secret.clone()).await?;
    let mut tx = pool.begin().await?;
    let row = users::insert(
        &mut *tx,
        users::NewUser {
            username: &name,
            email: None,
            role: Role::Admin,
            password_hash: &hash,
            must_change_password: one_time,
        },
    )
    .await
    .map_err(
        |err| match err.as_database_error().and_then(|e| e.constraint()) {
            Some(users::USERNAME_KEY) => {
                AppError::field("username", format!("{name} already exists."))
            }
            Some(users::WORKSPACE_NAME_KEY) => {
                AppError::field("username", users::workspace_name_taken(&name))
            }
            _ => AppError::from(err),
        },
    )?;
    audit::record(
        &mut *tx,
        audit::NewAuditEvent {
            action: action::USER_CREATED,
            actor_name: Some(actor),
            subject_type: Some("user"),
            subject_id: Some(row.id.to_string()),
            subject_name: Some(&row.username),
            details: Some(serde_json::json!({ "role": "admin", "via": actor })),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Created {
        username: row.username,
        one_time_password: one_time.then_some(secret),
    })
}

/// Creates the first admin (`admin`) when there is no admin at all. Returns what was made.
pub async fn ensure_first_admin(
    pool: &PgPool,
    initial: InitialPassword,
) -> Result<Option<Created>, AppError> {
    if users::any_admin(pool).await? {
        return Ok(None);
    }
    match create_admin(pool, "admin", initial, "system").await {
        Ok(created) => Ok(Some(created)),
        // Another instance made it first.
        Err(AppError::Validation { .. }) if users::any_admin(pool).await? => Ok(None),
        Err(other) => Err(other),
    }
}

/// Gives an account a new one-time password (it must be changed at next sign-in) and ends its
/// sessions. Returns the password to show.
pub async fn reset_password(
    pool: &PgPool,
    username: &str,
    actor: &str,
) -> Result<String, AppError> {
    let name = username.trim().to_lowercase();
    let user = users::find_by_username(pool, &name)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: format!("User {name}"),
        })?;
    let one_time = tokens::one_time_password();
    let hash = password::hash(one_time.clone()).await?;
    let mut tx = pool.begin().await?;
    users::set_password(&mut *tx, user.id, &hash, true, &tokens::new_stamp()).await?;
    sessions::delete_for_user(&mut *tx, user.id, None).await?;
    audit::record(
        &mut *tx,
        audit::NewAuditEvent {
            action: action::PASSWORD_RESET,
            actor_name: Some(actor),
            subject_type: Some("user"),
            subject_id: Some(user.id.to_string()),
            subject_name: Some(&user.username),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(one_time)
}
