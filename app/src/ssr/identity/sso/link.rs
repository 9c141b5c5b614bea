//! Linking a provider identity to the existing account that uses its (verified) e-mail
//! address: only with that account's own password, throttled like any sign-in, once.

use super::flow::signed_in;
use crate::AppError;
use crate::api::auth::Me;
use crate::api::sso::LinkPreview;
use crate::ssr::AppState;
use crate::ssr::audit::action;
use crate::ssr::identity::auth::{gate, login, tokens};
use crate::ssr::identity::repo::sso::{self as repo, NewIdentity};
use crate::ssr::identity::repo::users;

fn gone() -> AppError {
    AppError::NotFound {
        what: "This link request (it lasts 10 minutes and works once)".into(),
    }
}

pub(super) fn provider_name(state: &AppState, id: &str) -> String {
    state
        .sso()
        .get(id)
        .map_or_else(|| id.to_owned(), |p| p.config.name.clone())
}

/// See [`crate::api::sso::preview_sso_link`].
pub async fn preview(state: &AppState, token: &str) -> Result<LinkPreview, AppError> {
    let pool = state.pool();
    let link = repo::find_pending_link(pool, &tokens::hash_token(token.trim()))
        .await?
        .ok_or_else(gone)?;
    let user = users::find(pool, link.user_id).await?.ok_or_else(gone)?;
    Ok(LinkPreview {
        provider: provider_name(state, &link.provider),
        username: user.username,
        email: link.email,
    })
}

/// See [`crate::api::sso::confirm_sso_link`].
pub async fn confirm(state: &AppState, token: &str, password: String) -> Result<Me, AppError> {
    let pool = state.pool();
    let hash = tokens::hash_token(token.trim());
    let link = repo::find_pending_link(pool, &hash)
        .await?
        .ok_or_else(gone)?;
    let account = users::find(pool, link.user_id).await?.ok_or_else(gone)?;
    if password.is_empty() {
        return Err(AppError::field("password", "Enter the account's password."));
    }
    let client = gate::client_info().await;
    let user = login::verify_password(pool, &client, &account.username, password).await?;

    let mut tx = pool.begin().await?;
    let link = repo::take_pending_link(&mut *tx, &hash)
        .await?
        .ok_or_else(gone)?;
    repo::insert_identity(
        &mut *tx,
        NewIdentity {
            provider: &link.provider,
            subject: &link.subject,
            user_id: user.id,
            email: Some(&link.email),
            linked_by: "password",
        },
    )
    .await
    .map_err(|err| taken(state, err, &link.provider))?;
    super::record(
        &mut *tx,
        action::SSO_LINKED,
        Some(&user),
        &user.username,
        &client,
        serde_json::json!({ "provider": link.provider, "by": "password", "email": link.email }),
    )
    .await?;
    tx.commit().await?;

    let mut auth = gate::auth_session().await?;
    signed_in(state, &mut auth, &client, &user, &link.provider).await?;
    Ok(Me::from(user))
}

/// A link that can't be made because one of its sides is already linked, in words.
pub(super) fn taken(state: &AppState, err: sqlx::Error, provider: &str) -> AppError {
    match err.as_database_error().and_then(|e| e.constraint()) {
        Some(repo::IDENTITY_KEY | repo::USER_PROVIDER_KEY) => AppError::Conflict {
            message: format!(
                "This account is already linked to a {} identity, or this identity to an account.",
                provider_name(state, provider)
            ),
        },
        _ => AppError::from(err),
    }
}
