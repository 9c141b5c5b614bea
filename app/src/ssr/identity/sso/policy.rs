//! Who may still sign in with a password: everyone, or — once single sign-on is in place —
//! only the break-glass admin, who then can't be deleted, disabled or demoted while named.

use crate::AppError;
use crate::api::sso::{PasswordFor, ProviderView, SignInSetup};
use crate::model::{Role, UserStatus};
use crate::ssr::audit::{self, Subject, action};
use crate::ssr::identity::repo::sign_in_policy as repo;
use crate::ssr::identity::repo::users;
use crate::ssr::{AppState, Caller, parse_id};
use sqlx::PgExecutor;
use uuid::Uuid;

fn password_for(text: &str) -> PasswordFor {
    match text {
        "break_glass" => PasswordFor::BreakGlass,
        _ => PasswordFor::Everyone,
    }
}

/// Whether `user` may sign in with a password now.
pub async fn password_allowed(db: impl PgExecutor<'_>, user: Uuid) -> Result<bool, AppError> {
    let policy = repo::get(db).await?;
    Ok(password_for(&policy.password_for) == PasswordFor::Everyone
        || policy.break_glass_user == Some(user))
}

/// Refuses to delete, disable or demote the named break-glass admin (inside the change's
/// transaction; the policy row is locked so a policy change can't slip past).
pub async fn guard_break_glass(
    conn: &mut sqlx::PgConnection,
    user: &users::UserRow,
) -> Result<(), AppError> {
    let policy = repo::lock(&mut *conn).await?;
    if password_for(&policy.password_for) == PasswordFor::BreakGlass
        && policy.break_glass_user == Some(user.id)
    {
        return Err(AppError::Conflict {
            message: format!(
                "{} is the break-glass admin, the only account that may sign in with a password. \
                 Name another one, or let everyone use passwords again, first (Admin → Sign-in).",
                user.username
            ),
        });
    }
    Ok(())
}

/// Whether `user` is the named break-glass admin (the role sync of single sign-on keeps it).
pub async fn is_break_glass(db: impl PgExecutor<'_>, user: Uuid) -> Result<bool, AppError> {
    let policy = repo::get(db).await?;
    Ok(
        password_for(&policy.password_for) == PasswordFor::BreakGlass
            && policy.break_glass_user == Some(user),
    )
}

/// See [`crate::api::sso::sign_in_settings`].
pub async fn settings(state: &AppState) -> Result<SignInSetup, AppError> {
    let policy = repo::get(state.pool()).await?;
    let admins = users::active_admins(state.pool()).await?;
    Ok(SignInSetup {
        providers: state
            .sso()
            .configs()
            // Never the secret: only whether there is one.
            .map(|p| ProviderView {
                callback_url: super::flow::callback_url(state, &p.id),
                id: p.id.clone(),
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                has_secret: p.client_secret.is_some(),
                admission: p.admission.as_str().to_owned(),
                allowed_domains: p.allowed_domains.clone(),
                allowed_groups: p.allowed_groups.clone(),
                admin_groups: p.admin_groups.clone(),
            })
            .collect(),
        password_for: password_for(&policy.password_for),
        break_glass: policy.break_glass_user.map(|id| id.to_string()),
        break_glass_name: policy.break_glass_name,
        admins: admins
            .into_iter()
            .map(|(id, name)| (id.to_string(), name))
            .collect(),
        updated_at: policy.updated_at,
        updated_by: policy.updated_by,
    })
}

/// See [`crate::api::sso::set_password_policy`].
pub async fn set(
    state: &AppState,
    caller: &Caller,
    wanted: PasswordFor,
    break_glass: &str,
) -> Result<SignInSetup, AppError> {
    // Users before the policy row, the order every user change locks them in.
    let mut tx = state.pool().begin().await?;
    let user = match wanted {
        PasswordFor::Everyone => None,
        PasswordFor::BreakGlass => {
            if state.sso().is_empty() {
                return Err(AppError::Conflict {
                    message: "No single sign-on provider is configured: with passwords off, \
                              nobody but the break-glass admin could sign in. Add a provider to \
                              the settings first."
                        .into(),
                });
            }
            let id = parse_id(break_glass, "Admin")
                .map_err(|_| AppError::field("break_glass", "Choose the break-glass admin."))?;
            let user = users::find_for_update(&mut *tx, id)
                .await?
                .filter(|u| u.role == Role::Admin && u.status == UserStatus::Active)
                .ok_or_else(|| {
                    AppError::field(
                        "break_glass",
                        "The break-glass account must be an active admin.",
                    )
                })?;
            Some(user)
        }
    };
    repo::lock(&mut *tx).await?;
    let (text, id) = match wanted {
        PasswordFor::Everyone => ("everyone", None),
        PasswordFor::BreakGlass => ("break_glass", user.as_ref().map(|u| u.id)),
    };
    repo::set(&mut *tx, text, id, &caller.user.username).await?;
    let subject_id = id.map(|id| id.to_string());
    let subject = user
        .as_ref()
        .zip(subject_id.as_deref())
        .map(|(u, id)| Subject::user(id, &u.username));
    audit::by_caller(
        &mut *tx,
        caller,
        action::SIGN_IN_POLICY,
        subject,
        Some(serde_json::json!({ "password_for": text })),
    )
    .await?;
    tx.commit().await?;
    settings(state).await
}
