//! A user's models and personal gateway keys: what they may use, where, and the keys they made.

use super::{commit_audited, not_found, show_usd};
use crate::AppError;
use crate::api::models::{CreatedKey, KeyView, MyModel, MyModels};
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::{AppState, internal, parse_id};
use clawloops_models::{keys, limits, registry};
use time::OffsetDateTime;
use uuid::Uuid;

/// The most personal keys one user can hold at once.
const MAX_KEYS: i64 = 50;

async fn key_views(state: &AppState, user: Uuid) -> Result<Vec<KeyView>, AppError> {
    let now = OffsetDateTime::now_utc();
    let mut conn = state.pool().acquire().await?;
    Ok(keys::of_user(&mut conn, user)
        .await?
        .into_iter()
        .map(|r| KeyView {
            id: r.id.to_string(),
            name: r.name,
            prefix: r.prefix,
            kind: r.kind,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            state: if r.revoked_at.is_some() {
                "revoked"
            } else if r.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            }
            .into(),
        })
        .collect())
}

/// See [`crate::api::models::get_my_models`].
pub async fn mine(state: &AppState, caller: &Caller) -> Result<MyModels, AppError> {
    let user = caller.user.id;
    let mut conn = state.pool().acquire().await?;
    let models = registry::visible_models(&mut conn, user)
        .await?
        .into_iter()
        .map(|r| MyModel {
            alias: r.alias,
            is_default: r.is_default,
            context_window: r.context_window,
            price_input: show_usd(r.price_input_micro),
            price_output: show_usd(r.price_output_micro),
        })
        .collect();
    let suspended = limits::keys_suspended(&mut conn, user).await?;
    drop(conn);
    Ok(MyModels {
        models,
        keys: key_views(state, user).await?,
        gateway_url: format!("{}/v1", state.public_url()),
        suspended,
    })
}

/// See [`crate::api::models::create_key`].
pub async fn create_key(
    state: &AppState,
    caller: &Caller,
    name: &str,
    expires_days: Option<u32>,
) -> Result<CreatedKey, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::field(
            "name",
            "Name the key after where you use it (at most 80 characters).",
        ));
    }
    if expires_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(AppError::field(
            "expires_days",
            "A key can last from 1 to 3650 days.",
        ));
    }
    let key = keys::generate().map_err(internal)?;
    let expires_at =
        expires_days.map(|d| OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
    let user = caller.user.id;
    let mut tx = state.pool().begin().await?;
    if keys::lock_and_count_personal(&mut tx, user).await? >= MAX_KEYS {
        return Err(AppError::Conflict {
            message: format!(
                "You already have {MAX_KEYS} keys. Revoke one you no longer use first."
            ),
        });
    }
    keys::insert_personal(&mut tx, &key, user, name, expires_at).await?;
    commit_audited(
        tx,
        caller,
        "key.created",
        ("key", key.id, name),
        Some(serde_json::json!({ "prefix": key.prefix, "expires_days": expires_days })),
    )
    .await?;
    let view = key_views(state, user)
        .await?
        .into_iter()
        .find(|k| k.id == key.id.to_string())
        .ok_or_else(|| internal("a created key vanished"))?;
    Ok(CreatedKey {
        key: view,
        secret: key.secret,
    })
}

/// See [`crate::api::models::revoke_key`]: the caller's own personal keys only.
pub async fn revoke_key(state: &AppState, caller: &Caller, id: &str) -> Result<(), AppError> {
    let id = parse_id(id, "Key")?;
    let mut tx = state.pool().begin().await?;
    let name = keys::revoke_personal(&mut tx, id, caller.user.id)
        .await?
        .ok_or_else(|| not_found("Key"))?;
    commit_audited(tx, caller, "key.revoked", ("key", id, &name), None).await?;
    state.models_changed();
    Ok(())
}
