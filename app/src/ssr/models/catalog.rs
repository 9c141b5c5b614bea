//! Registry administration: models — who may use them, what they cost, where they go.

use super::{check_url, commit_audited, model_error, not_found, optional_id, parse_usd, show_usd};
use crate::AppError;
use crate::api::models::{ModelForm, ModelView, ModelsAdmin, UPSTREAM_KINDS};
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::identity::repo::users;
use crate::ssr::{AppState, internal, parse_id};
use clawloops_models::catalog::{self, ModelFields};
use uuid::Uuid;

async fn models(state: &AppState) -> Result<Vec<ModelView>, AppError> {
    let mut conn = state.pool().acquire().await?;
    Ok(catalog::models(&mut conn)
        .await?
        .into_iter()
        .map(|r| ModelView {
            id: r.id.to_string(),
            alias: r.alias,
            upstream_kind: r.upstream_kind,
            base_url: r.base_url,
            upstream_model: r.upstream_model,
            credential_id: r.credential_id.map(|i| i.to_string()),
            credential_name: r.credential_name,
            enabled: r.enabled,
            visibility: r.visibility,
            visible_roles: r.visible_roles,
            visible_users: r.visible_users,
            is_default: r.is_default,
            price_input: show_usd(r.price_input_micro),
            price_output: show_usd(r.price_output_micro),
            context_window: r.context_window,
            fallback_id: r.fallback_id.map(|i| i.to_string()),
            fallback_alias: r.fallback_alias,
        })
        .collect())
}

/// See [`crate::api::models::get_models_admin`].
pub async fn admin_page(state: &AppState) -> Result<ModelsAdmin, AppError> {
    Ok(ModelsAdmin {
        models: models(state).await?,
        credentials: super::credentials::all(state).await?,
    })
}

/// See [`crate::api::models::save_model`].
pub async fn save(
    state: &AppState,
    caller: &Caller,
    form: ModelForm,
) -> Result<ModelView, AppError> {
    let alias = form.alias.trim();
    if alias.is_empty() {
        return Err(AppError::field(
            "alias",
            "Give the model the name users will ask for.",
        ));
    }
    let kind = form.upstream_kind.trim();
    if !UPSTREAM_KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(AppError::field(
            "upstream_kind",
            "Choose the kind of upstream.",
        ));
    }
    let base_url = check_url("base_url", &form.base_url)?;
    let upstream_model = form.upstream_model.trim();
    if upstream_model.is_empty() || upstream_model.len() > 200 {
        return Err(AppError::field(
            "upstream_model",
            "Enter the model's name at the upstream.",
        ));
    }
    let visibility = form.visibility.trim();
    let roles: Vec<String> = form
        .visible_roles
        .split(',')
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    let usernames: Vec<String> = form
        .visible_users
        .split(',')
        .map(|u| u.trim().to_lowercase())
        .filter(|u| !u.is_empty())
        .collect();
    match visibility {
        "everyone" => {}
        "roles" if !roles.is_empty() && roles.iter().all(|r| r == "user" || r == "admin") => {}
        "roles" => {
            return Err(AppError::field(
                "visible_roles",
                "List the roles that may use it: user, admin.",
            ));
        }
        "users" if !usernames.is_empty() => {}
        "users" => {
            return Err(AppError::field(
                "visible_users",
                "List the usernames that may use it.",
            ));
        }
        _ => {
            return Err(AppError::field(
                "visibility",
                "Choose who may use the model.",
            ));
        }
    }
    let price_in = parse_usd("price_input", &form.price_input)?.unwrap_or(0);
    let price_out = parse_usd("price_output", &form.price_output)?.unwrap_or(0);
    let context = match form.context_window.trim() {
        "" => None,
        text => Some(
            text.parse::<i32>()
                .ok()
                .filter(|n| (256..=10_000_000).contains(n))
                .ok_or_else(|| {
                    AppError::field(
                        "context_window",
                        "Enter the context window in tokens (256 or more), or leave it empty.",
                    )
                })?,
        ),
    };
    let credential = optional_id(&form.credential_id, "Credential")?;
    let fallback = optional_id(&form.fallback_id, "Fallback model")?;
    let id = optional_id(&form.id, "Model")?;

    let mut tx = state.pool().begin().await?;
    let users = users::ids_by_username(&mut *tx, &usernames).await?;
    if let Some(missing) = usernames
        .iter()
        .find(|u| !users.iter().any(|(_, n)| n == *u))
    {
        return Err(AppError::field(
            "visible_users",
            format!("There is no user named {missing}."),
        ));
    }
    if let Some(c) = credential
        && !catalog::credential_exists(&mut tx, c).await?
    {
        return Err(AppError::field(
            "credential_id",
            "That credential no longer exists.",
        ));
    }
    if form.is_default {
        catalog::clear_other_defaults(&mut tx, id).await?;
    }
    let fields = ModelFields {
        alias,
        upstream_kind: kind,
        base_url: &base_url,
        upstream_model,
        credential,
        enabled: form.enabled,
        visibility,
        visible_roles: &roles,
        is_default: form.is_default,
        price_input_micro: price_in,
        price_output_micro: price_out,
        context_window: context,
        fallback,
    };
    let saved: Uuid = match id {
        None => catalog::insert_model(&mut tx, &fields)
            .await
            .map_err(model_error)?,
        Some(id) => catalog::update_model(&mut tx, id, &fields)
            .await
            .map_err(model_error)?
            .ok_or_else(|| not_found("Model"))?,
    };
    if let Some(f) = fallback
        && !catalog::model_exists(&mut tx, f).await?
    {
        return Err(AppError::field(
            "fallback_id",
            "That fallback model no longer exists.",
        ));
    }
    let named: Vec<Uuid> = if visibility == "users" {
        users.iter().map(|(id, _)| *id).collect()
    } else {
        Vec::new()
    };
    catalog::set_model_users(&mut tx, saved, &named).await?;
    let action = if id.is_some() {
        "model.updated"
    } else {
        "model.created"
    };
    let details = serde_json::json!({ "upstream": kind, "base_url": base_url, "upstream_model": upstream_model,
                                      "enabled": form.enabled, "visibility": visibility, "default": form.is_default });
    commit_audited(tx, caller, action, ("model", saved, alias), Some(details)).await?;
    state.models_changed();
    models(state)
        .await?
        .into_iter()
        .find(|m| m.id == saved.to_string())
        .ok_or_else(|| internal("a saved model vanished"))
}

/// See [`crate::api::models::delete_model`].
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), AppError> {
    let id = parse_id(id, "Model")?;
    let mut tx = state.pool().begin().await?;
    let alias = catalog::delete_model(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("Model"))?;
    commit_audited(tx, caller, "model.deleted", ("model", id, &alias), None).await?;
    state.models_changed();
    Ok(())
}
