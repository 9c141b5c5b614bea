//! An admin's hand in single sign-on: which provider identities sign in an account, linking one
//! that asked (its address matched the account's, verified by the provider) and unlinking.

use super::link::provider_name;
use crate::AppError;
use crate::api::sso::{IdentityView, LinkRequestView, SsoLinks};
use crate::ssr::audit::{self, Subject, action};
use crate::ssr::identity::repo::sso::{self as repo, NewIdentity};
use crate::ssr::identity::repo::users;
use crate::ssr::{AppState, Caller, parse_id};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

fn not_found(what: &str) -> AppError {
    AppError::NotFound { what: what.into() }
}

/// See [`crate::api::sso::user_identities`].
pub async fn identities(state: &AppState, user: &str) -> Result<SsoLinks, AppError> {
    let id = parse_id(user, "User")?;
    users::find(state.pool(), id)
        .await?
        .ok_or_else(|| not_found("User"))?;
    listing(state, id).await
}

async fn listing(state: &AppState, id: Uuid) -> Result<SsoLinks, AppError> {
    let pool = state.pool();
    let identities = repo::identities_of(pool, id)
        .await?
        .into_iter()
        .map(|row| IdentityView {
            provider_name: provider_name(state, &row.provider),
            provider: row.provider,
            email: row.email,
            linked_by: row.linked_by,
            linked_at: row.linked_at,
            last_login_at: row.last_login_at,
        })
        .collect();
    let requests = repo::link_requests_for(pool, id)
        .await?
        .into_iter()
        .map(|row| LinkRequestView {
            id: request_id(&row.token_hash),
            provider_name: provider_name(state, &row.provider),
            email: row.email,
            requested_at: row.created_at,
        })
        .collect();
    Ok(SsoLinks {
        identities,
        requests,
    })
}

/// A link request's id: its stored hash, base64url (the token itself stays with the person).
fn request_id(hash: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(hash)
}

/// See [`crate::api::sso::link_identity`].
pub async fn link(
    state: &AppState,
    caller: &Caller,
    user: &str,
    request: &str,
) -> Result<SsoLinks, AppError> {
    let id = parse_id(user, "User")?;
    let gone = || not_found("This link request");
    let hash = URL_SAFE_NO_PAD.decode(request.trim()).map_err(|_| gone())?;
    let mut tx = state.pool().begin().await?;
    let account = users::find_for_update(&mut *tx, id)
        .await?
        .ok_or_else(|| not_found("User"))?;
    let pending = repo::take_link_request(&mut *tx, &hash, id)
        .await?
        .ok_or_else(gone)?;
    repo::insert_identity(
        &mut *tx,
        NewIdentity {
            provider: &pending.provider,
            subject: &pending.subject,
            user_id: id,
            email: Some(&pending.email),
            linked_by: "admin",
        },
    )
    .await
    .map_err(|err| super::link::taken(state, err, &pending.provider))?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::SSO_LINKED,
        Some(Subject::user(&id_text, &account.username)),
        Some(serde_json::json!({
            "provider": pending.provider, "by": "admin", "email": pending.email,
        })),
    )
    .await?;
    tx.commit().await?;
    listing(state, id).await
}

/// See [`crate::api::sso::unlink_identity`].
pub async fn unlink(
    state: &AppState,
    caller: &Caller,
    user: &str,
    provider: &str,
) -> Result<SsoLinks, AppError> {
    let id = parse_id(user, "User")?;
    let mut tx = state.pool().begin().await?;
    let account = users::find_for_update(&mut *tx, id)
        .await?
        .ok_or_else(|| not_found("User"))?;
    let removed = repo::delete_identity(&mut *tx, id, provider)
        .await?
        .ok_or_else(|| not_found("This sign-in link"))?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::SSO_UNLINKED,
        Some(Subject::user(&id_text, &account.username)),
        Some(serde_json::json!({ "provider": provider, "email": removed.email })),
    )
    .await?;
    tx.commit().await?;
    listing(state, id).await
}
