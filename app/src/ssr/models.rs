//! The model layer's server side for the pages: registry and credential administration, personal
//! keys, limits and usage. The gateway itself lives in the server crate; both read the same
//! tables (and the `user_models` view).

use super::audit::{self, Subject};
use super::auth::gate::{self, Access};
use super::{app_state, internal, parse_id};
use crate::AppError;
use crate::api::models::*;
use clawloops_models::keys;
use secrecy::ExposeSecret;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use clawloops_models::seal::CREDENTIAL as CREDENTIAL_PURPOSE;
/// The most days a usage report covers.
const MAX_DAYS: i64 = 366;

/// Dollars as typed ("2.50", "0.15", "") to micro-dollars; empty is `None`.
pub fn parse_usd(field: &str, text: &str) -> Result<Option<i64>, AppError> {
    let text = text.trim().trim_start_matches('$');
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        AppError::field(
            field,
            "Enter an amount in dollars, like 2.50 (at most 6 decimals).",
        )
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 6
        || whole.len() > 9
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    Ok(Some(whole * 1_000_000 + frac))
}

/// Micro-dollars as the forms show them ("2.5", "0.15").
pub fn show_usd(micro: i64) -> String {
    let text = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn model_error(err: sqlx::Error) -> AppError {
    let constraint = err
        .as_database_error()
        .and_then(|e| e.constraint())
        .map(str::to_owned);
    match constraint.as_deref() {
        Some("models_alias_key") => {
            AppError::field("alias", "Another model already has this name.")
        }
        Some("models_alias_check") => AppError::field(
            "alias",
            "Use 1–80 letters, digits and . _ : / - (starting with a letter or digit).",
        ),
        Some("models_fallback_check") => {
            AppError::field("fallback_id", "A model cannot fall back to itself.")
        }
        Some("provider_credentials_name_key") => {
            AppError::field("name", "Another credential already has this name.")
        }
        _ => err.into(),
    }
}

/// A change to a registry, key or limit row, made in `tx` by `caller`: records it in the audit
/// log and commits (both or neither).
async fn commit_audited(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &gate::Caller,
    action: &str,
    (kind, id, name): (&str, Uuid, &str),
    details: Option<serde_json::Value>,
) -> Result<(), AppError> {
    let id = id.to_string();
    let subject = Subject {
        kind,
        id: &id,
        name: Some(name),
    };
    audit::by_caller(&mut *tx, caller, action, Some(subject), details).await?;
    tx.commit().await?;
    Ok(())
}

fn not_found(what: &str) -> AppError {
    AppError::NotFound { what: what.into() }
}

async fn load_models(conn: &mut sqlx::PgConnection) -> Result<Vec<ModelView>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.alias, m.upstream_kind, m.base_url, m.upstream_model, m.credential_id,
                  c.name AS "credential_name?", m.enabled, m.visibility, m.visible_roles,
                  m.is_default, m.price_input_micro, m.price_output_micro, m.context_window,
                  m.fallback_id, f.alias AS "fallback_alias?",
                  ARRAY(SELECT u.username FROM model_users mu JOIN users u ON u.id = mu.user_id
                        WHERE mu.model_id = m.id ORDER BY u.username) AS "visible_users!"
           FROM models m
           LEFT JOIN provider_credentials c ON c.id = m.credential_id
           LEFT JOIN models f ON f.id = m.fallback_id
           ORDER BY m.is_default DESC, m.alias"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
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

async fn load_credentials(conn: &mut sqlx::PgConnection) -> Result<Vec<CredentialView>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.name, c.hint, c.verify_url, c.verified_at, c.verify_ok, c.verify_message,
                  c.created_at,
                  ARRAY(SELECT m.alias FROM models m WHERE m.credential_id = c.id ORDER BY m.alias) AS "used_by!"
           FROM provider_credentials c ORDER BY c.name"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CredentialView {
            id: r.id.to_string(),
            name: r.name,
            hint: r.hint,
            verify_url: r.verify_url,
            verified_at: r.verified_at,
            verify_ok: r.verify_ok,
            verify_message: r.verify_message,
            used_by: r.used_by,
            created_at: r.created_at,
        })
        .collect())
}

/// See [`crate::api::models::get_models_admin`].
pub async fn admin_page() -> Result<ModelsAdmin, AppError> {
    gate::require(Access::Admin).await?;
    let state = app_state()?;
    let mut conn = state.pool().acquire().await?;
    Ok(ModelsAdmin {
        models: load_models(&mut conn).await?,
        credentials: load_credentials(&mut conn).await?,
    })
}

fn check_url(field: &str, text: &str) -> Result<String, AppError> {
    let text = text.trim().trim_end_matches('/');
    let ok = (text.starts_with("http://") || text.starts_with("https://"))
        && text.len() <= 500
        && !text.contains(char::is_whitespace)
        && text.split('/').nth(2).is_some_and(|host| !host.is_empty());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(AppError::field(
            field,
            "Enter the upstream's OpenAI-compatible base URL, like http://litellm:4000/v1.",
        ))
    }
}

fn optional_id(text: &str, what: &str) -> Result<Option<Uuid>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id(text, what).map(Some)
    }
}

/// See [`crate::api::models::save_model`].
pub async fn save(form: ModelForm) -> Result<ModelView, AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
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
    let users: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE username = ANY($1)")
            .bind(&usernames)
            .fetch_all(&mut *tx)
            .await?;
    if let Some(missing) = usernames
        .iter()
        .find(|u| !users.iter().any(|(_, n)| n == *u))
    {
        return Err(AppError::field(
            "visible_users",
            format!("There is no user named {missing}."),
        ));
    }
    if let Some(c) = credential {
        let exists = sqlx::query_scalar!(
            "SELECT count(*) AS \"n!\" FROM provider_credentials WHERE id = $1",
            c
        )
        .fetch_one(&mut *tx)
        .await?;
        if exists == 0 {
            return Err(AppError::field(
                "credential_id",
                "That credential no longer exists.",
            ));
        }
    }
    if form.is_default {
        sqlx::query!(
            "UPDATE models SET is_default = false WHERE is_default AND id IS DISTINCT FROM $1",
            id
        )
        .execute(&mut *tx)
        .await?;
    }
    let saved: Uuid = match id {
        None => sqlx::query_scalar!(
            "INSERT INTO models (alias, upstream_kind, base_url, upstream_model, credential_id, enabled,
                 visibility, visible_roles, is_default, price_input_micro, price_output_micro,
                 context_window, fallback_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            alias, kind, base_url, upstream_model, credential, form.enabled, visibility, &roles,
            form.is_default, price_in, price_out, context, fallback
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(model_error)?,
        Some(id) => sqlx::query_scalar!(
            "UPDATE models SET alias = $2, upstream_kind = $3, base_url = $4, upstream_model = $5,
                 credential_id = $6, enabled = $7, visibility = $8, visible_roles = $9,
                 is_default = $10, price_input_micro = $11, price_output_micro = $12,
                 context_window = $13, fallback_id = $14, updated_at = now()
             WHERE id = $1 RETURNING id",
            id, alias, kind, base_url, upstream_model, credential, form.enabled, visibility, &roles,
            form.is_default, price_in, price_out, context, fallback
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(model_error)?
        .ok_or_else(|| not_found("Model"))?,
    };
    if let Some(f) = fallback {
        let exists = sqlx::query_scalar!("SELECT count(*) AS \"n!\" FROM models WHERE id = $1", f)
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(AppError::field(
                "fallback_id",
                "That fallback model no longer exists.",
            ));
        }
    }
    sqlx::query!("DELETE FROM model_users WHERE model_id = $1", saved)
        .execute(&mut *tx)
        .await?;
    if visibility == "users" {
        let ids: Vec<Uuid> = users.iter().map(|(id, _)| *id).collect();
        sqlx::query!(
            "INSERT INTO model_users (model_id, user_id) SELECT $1, unnest($2::uuid[])",
            saved,
            &ids
        )
        .execute(&mut *tx)
        .await?;
    }
    let action = if id.is_some() {
        "model.updated"
    } else {
        "model.created"
    };
    let details = serde_json::json!({ "upstream": kind, "base_url": base_url, "upstream_model": upstream_model,
                                      "enabled": form.enabled, "visibility": visibility, "default": form.is_default });
    commit_audited(tx, &caller, action, ("model", saved, alias), Some(details)).await?;
    state.models_changed();
    let mut conn = state.pool().acquire().await?;
    load_models(&mut conn)
        .await?
        .into_iter()
        .find(|m| m.id == saved.to_string())
        .ok_or_else(|| internal("a saved model vanished"))
}

/// See [`crate::api::models::delete_model`].
pub async fn delete(id: &str) -> Result<(), AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
    let id = parse_id(id, "Model")?;
    let mut tx = state.pool().begin().await?;
    let alias = sqlx::query_scalar!("DELETE FROM models WHERE id = $1 RETURNING alias", id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found("Model"))?;
    commit_audited(tx, &caller, "model.deleted", ("model", id, &alias), None).await?;
    state.models_changed();
    Ok(())
}

/// See [`crate::api::models::add_credential`].
pub async fn add_credential(
    name: &str,
    secret: &str,
    verify_url: &str,
) -> Result<CredentialView, AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::field(
            "name",
            "Name the credential (at most 80 characters).",
        ));
    }
    let secret = secret.trim();
    if secret.is_empty() || secret.len() > 4096 || secret.contains(char::is_whitespace) {
        return Err(AppError::field(
            "secret",
            "Paste the provider's API key (no spaces).",
        ));
    }
    let verify_url = match verify_url.trim() {
        "" => None,
        text => Some(check_url("verify_url", text)?),
    };
    let id = Uuid::new_v4();
    let sealed = state
        .sealer()
        .seal(CREDENTIAL_PURPOSE, id, secret)
        .map_err(internal)?;
    let hint = clawloops_models::seal::hint(secret);
    let mut tx = state.pool().begin().await?;
    sqlx::query!(
        "INSERT INTO provider_credentials (id, name, sealed, hint, verify_url, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        name,
        sealed,
        hint,
        verify_url,
        caller.user.id
    )
    .execute(&mut *tx)
    .await
    .map_err(model_error)?;
    commit_audited(
        tx,
        &caller,
        "credential.created",
        ("credential", id, name),
        None,
    )
    .await?;
    state.models_changed();
    credential(id).await
}

async fn credential(id: Uuid) -> Result<CredentialView, AppError> {
    let state = app_state()?;
    let mut conn = state.pool().acquire().await?;
    load_credentials(&mut conn)
        .await?
        .into_iter()
        .find(|c| c.id == id.to_string())
        .ok_or_else(|| not_found("Credential"))
}

/// See [`crate::api::models::verify_credential`]: lists the upstream's models with the secret.
pub async fn verify_credential(id: &str) -> Result<CredentialView, AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
    let id = parse_id(id, "Credential")?;
    let row = sqlx::query!(
        r#"SELECT c.sealed, c.name, COALESCE(c.verify_url,
               (SELECT m.base_url FROM models m WHERE m.credential_id = c.id ORDER BY m.alias LIMIT 1)) AS url
           FROM provider_credentials c WHERE c.id = $1"#,
        id
    )
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| not_found("Credential"))?;
    let Some(url) = row.url else {
        return Err(AppError::Validation {
            field: None,
            message: "There is nothing to verify against: give the credential a verify URL or use it in a model first.".into(),
        });
    };
    let secret = state
        .sealer()
        .open(CREDENTIAL_PURPOSE, id, &row.sealed)
        .map_err(internal)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(internal)?;
    let outcome = client
        .get(format!("{}/models", url.trim_end_matches('/')))
        .bearer_auth(secret.expose_secret())
        .send()
        .await;
    let (ok, message) = match outcome {
        Ok(resp) if resp.status().is_success() => {
            let count = resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["data"].as_array().map(Vec::len));
            match count {
                Some(n) => (
                    true,
                    format!("The upstream accepted the key and lists {n} model(s)."),
                ),
                None => (
                    false,
                    "The upstream answered, but not with a model list.".to_owned(),
                ),
            }
        }
        Ok(resp) if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 => (
            false,
            format!(
                "The upstream refused the key (HTTP {}).",
                resp.status().as_u16()
            ),
        ),
        Ok(resp) => (
            false,
            format!("The upstream answered HTTP {}.", resp.status().as_u16()),
        ),
        Err(err) if err.is_timeout() => (
            false,
            "The upstream did not answer within 10 seconds.".to_owned(),
        ),
        Err(err) if err.is_connect() => (false, format!("Cannot connect to {url}.")),
        Err(_) => (false, format!("The request to {url} failed.")),
    };
    let mut tx = state.pool().begin().await?;
    sqlx::query!(
        "UPDATE provider_credentials SET verified_at = now(), verify_ok = $2, verify_message = $3 WHERE id = $1",
        id, ok, message
    )
    .execute(&mut *tx)
    .await?;
    commit_audited(
        tx,
        &caller,
        "credential.verified",
        ("credential", id, &row.name),
        Some(serde_json::json!({ "ok": ok })),
    )
    .await?;
    credential(id).await
}

/// See [`crate::api::models::delete_credential`]: refused while a model uses it.
pub async fn delete_credential(id: &str) -> Result<(), AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
    let id = parse_id(id, "Credential")?;
    let mut tx = state.pool().begin().await?;
    let users = sqlx::query_scalar!(
        "SELECT alias FROM models WHERE credential_id = $1 ORDER BY alias FOR UPDATE",
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    if !users.is_empty() {
        return Err(AppError::Conflict {
            message: format!(
                "This credential is in use by {}. Change those models first.",
                users.join(", ")
            ),
        });
    }
    let name = sqlx::query_scalar!(
        "DELETE FROM provider_credentials WHERE id = $1 RETURNING name",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found("Credential"))?;
    commit_audited(
        tx,
        &caller,
        "credential.deleted",
        ("credential", id, &name),
        None,
    )
    .await?;
    state.models_changed();
    Ok(())
}

async fn load_keys(conn: &mut sqlx::PgConnection, user: Uuid) -> Result<Vec<KeyView>, AppError> {
    let now = OffsetDateTime::now_utc();
    let rows = sqlx::query!(
        "SELECT id, name, prefix, kind, created_at, expires_at, last_used_at, revoked_at FROM api_keys
         WHERE user_id = $1 AND (revoked_at IS NULL OR revoked_at > now() - interval '30 days')
         ORDER BY revoked_at IS NOT NULL, created_at DESC",
        user
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
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
pub async fn mine() -> Result<MyModels, AppError> {
    let caller = gate::require(Access::User).await?;
    let state = app_state()?;
    let mut conn = state.pool().acquire().await?;
    let models = sqlx::query!(
        "SELECT m.alias, m.is_default, m.context_window, m.price_input_micro, m.price_output_micro
         FROM user_models um JOIN models m ON m.id = um.model_id
         WHERE um.user_id = $1 ORDER BY m.is_default DESC, m.alias",
        caller.user.id
    )
    .fetch_all(&mut *conn)
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
    let suspended = sqlx::query_scalar!(
        "SELECT keys_suspended_at IS NOT NULL AS \"s!\" FROM user_limits WHERE user_id = $1",
        caller.user.id
    )
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(false);
    Ok(MyModels {
        models,
        keys: load_keys(&mut conn, caller.user.id).await?,
        gateway_url: format!("{}/v1", state.public_url()),
        suspended,
    })
}

/// The most personal keys one user can hold at once.
const MAX_KEYS: i64 = 50;

/// See [`crate::api::models::create_key`].
pub async fn create_key(name: &str, expires_days: Option<u32>) -> Result<CreatedKey, AppError> {
    let caller = gate::require(Access::User).await?;
    let state = app_state()?;
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
    let mut tx = state.pool().begin().await?;
    // One at a time per user, so the count below holds.
    sqlx::query!(
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        caller.user.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let active = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM api_keys WHERE user_id = $1 AND kind = 'personal' AND revoked_at IS NULL",
        caller.user.id
    )
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_KEYS {
        return Err(AppError::Conflict {
            message: format!(
                "You already have {MAX_KEYS} keys. Revoke one you no longer use first."
            ),
        });
    }
    sqlx::query!(
        "INSERT INTO api_keys (id, user_id, kind, name, prefix, hash, expires_at)
         VALUES ($1, $2, 'personal', $3, $4, $5, $6)",
        key.id,
        caller.user.id,
        name,
        key.prefix,
        key.hash,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    commit_audited(
        tx,
        &caller,
        "key.created",
        ("key", key.id, name),
        Some(serde_json::json!({ "prefix": key.prefix, "expires_days": expires_days })),
    )
    .await?;
    let mut conn = state.pool().acquire().await?;
    let view = load_keys(&mut conn, caller.user.id)
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
pub async fn revoke_key(id: &str) -> Result<(), AppError> {
    let caller = gate::require(Access::User).await?;
    let state = app_state()?;
    let id = parse_id(id, "Key")?;
    let mut tx = state.pool().begin().await?;
    let name = sqlx::query_scalar!(
        "UPDATE api_keys SET revoked_at = now(), revoked_reason = 'revoked by its owner'
         WHERE id = $1 AND user_id = $2 AND kind = 'personal' AND revoked_at IS NULL RETURNING name",
        id, caller.user.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found("Key"))?;
    commit_audited(tx, &caller, "key.revoked", ("key", id, &name), None).await?;
    state.models_changed();
    Ok(())
}

/// When the budget period that contains `now` started and ends.
pub fn budget_period(monthly: bool, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let day = now.replace_time(time::Time::MIDNIGHT);
    if !monthly {
        return (day, day + time::Duration::days(1));
    }
    let start = day.replace_day(1).unwrap_or(day);
    let end = if start.month() == time::Month::December {
        start
            .replace_year(start.year() + 1)
            .and_then(|t| t.replace_month(time::Month::January))
    } else {
        start.replace_month(start.month().next())
    }
    .unwrap_or(start + time::Duration::days(31));
    (start, end)
}

/// See [`crate::api::models::list_limits`].
pub async fn list_limits() -> Result<Vec<LimitsView>, AppError> {
    gate::require(Access::Admin).await?;
    let state = app_state()?;
    let now = OffsetDateTime::now_utc();
    let (day, _) = budget_period(false, now);
    let (month, _) = budget_period(true, now);
    let rows = sqlx::query!(
        r#"SELECT u.id, u.username, l.rpm AS "rpm?", l.tpm AS "tpm?", l.budget_tokens AS "budget_tokens?",
                  l.budget_usd_micro AS "budget_usd_micro?", COALESCE(l.budget_period, 'month') AS "period!",
                  l.keys_suspended_at IS NOT NULL AS "suspended!",
                  COALESCE((SELECT sum(q.used) FROM quota_usage q WHERE q.user_id = u.id AND q.quota = 'tokens'
                      AND q.window_start = CASE WHEN l.budget_period = 'day' THEN $1::timestamptz ELSE $2::timestamptz END), 0)::bigint AS "tokens!",
                  COALESCE((SELECT sum(q.used) FROM quota_usage q WHERE q.user_id = u.id AND q.quota = 'cost'
                      AND q.window_start = CASE WHEN l.budget_period = 'day' THEN $1::timestamptz ELSE $2::timestamptz END), 0)::bigint AS "cost!"
           FROM users u LEFT JOIN user_limits l ON l.user_id = u.id ORDER BY u.username"#,
        day,
        month
    )
    .fetch_all(state.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LimitsView {
            user_id: r.id.to_string(),
            username: r.username,
            rpm: r.rpm,
            tpm: r.tpm,
            budget_tokens: r.budget_tokens,
            budget_usd: r.budget_usd_micro.map(show_usd),
            budget_period: r.period,
            keys_suspended: r.suspended,
            used_tokens: r.tokens,
            used_usd: r.cost as f64 / 1e9,
        })
        .collect())
}

fn optional_number<T: std::str::FromStr + PartialOrd + Copy>(
    field: &str,
    text: &str,
    min: T,
    max: T,
    words: &str,
) -> Result<Option<T>, AppError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse::<T>()
            .ok()
            .filter(|n| *n >= min && *n <= max)
            .map(Some)
            .ok_or_else(|| AppError::field(field, words)),
    }
}

/// See [`crate::api::models::set_limits`].
pub async fn set_limits(form: LimitsForm) -> Result<LimitsView, AppError> {
    let caller = gate::require(Access::Admin).await?;
    let state = app_state()?;
    let id = parse_id(&form.user_id, "User")?;
    let rpm = optional_number::<i32>(
        "rpm",
        &form.rpm,
        1,
        1_000_000,
        "Requests per minute: a whole number from 1, or empty for no limit.",
    )?;
    let tpm = optional_number::<i32>(
        "tpm",
        &form.tpm,
        1,
        2_000_000_000,
        "Tokens per minute: a whole number from 1, or empty for no limit.",
    )?;
    let tokens = optional_number::<i64>(
        "budget_tokens",
        &form.budget_tokens,
        1,
        1_000_000_000_000,
        "Token budget: a whole number from 1, or empty for no budget.",
    )?;
    let usd = parse_usd("budget_usd", &form.budget_usd)?;
    if usd == Some(0) {
        return Err(AppError::field(
            "budget_usd",
            "A spending budget must be more than $0 (empty for none).",
        ));
    }
    let period = match form.budget_period.trim() {
        "" | "month" => "month",
        "day" => "day",
        _ => return Err(AppError::field("budget_period", "Choose a day or a month.")),
    };
    let mut tx = state.pool().begin().await?;
    let username = sqlx::query_scalar!("SELECT username FROM users WHERE id = $1", id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found("User"))?;
    sqlx::query!(
        "INSERT INTO user_limits (user_id, rpm, tpm, budget_tokens, budget_usd_micro, budget_period, keys_suspended_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)
         ON CONFLICT (user_id) DO UPDATE SET rpm = $2, tpm = $3, budget_tokens = $4, budget_usd_micro = $5,
             budget_period = $6,
             keys_suspended_at = CASE WHEN $7 THEN COALESCE(user_limits.keys_suspended_at, now()) END,
             updated_at = now()",
        id, rpm, tpm, tokens, usd, period, form.keys_suspended
    )
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({ "rpm": rpm, "tpm": tpm, "budget_tokens": tokens, "budget_usd": usd.map(show_usd),
                                      "budget_period": period, "keys_suspended": form.keys_suspended });
    commit_audited(
        tx,
        &caller,
        "user.limits",
        ("user", id, &username),
        Some(details),
    )
    .await?;
    state.models_changed();
    list_limits()
        .await?
        .into_iter()
        .find(|l| l.user_id == id.to_string())
        .ok_or_else(|| internal("limits of a user that vanished"))
}

fn parse_day(field: &str, text: &str) -> Result<Date, AppError> {
    Date::parse(
        text.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| AppError::field(field, "Enter a date like 2026-11-25."))
}

async fn report(
    user: Option<Uuid>,
    from: Date,
    to: Date,
    per_user: bool,
) -> Result<UsageReport, AppError> {
    let state = app_state()?;
    let mut conn = state.pool().acquire().await?;
    let days = sqlx::query!(
        r#"SELECT day, model_alias, sum(requests)::bigint AS "requests!",
                  sum(prompt_tokens + completion_tokens)::bigint AS "tokens!", sum(cost_nano)::bigint AS "cost!"
           FROM usage_daily WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR user_id = $3)
           GROUP BY day, model_alias ORDER BY day, model_alias"#,
        from, to, user
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| UsageDay {
        day: r.day.to_string(),
        model: r.model_alias,
        requests: r.requests,
        tokens: r.tokens,
        cost_usd: r.cost as f64 / 1e9,
    })
    .collect();
    let totals = |rows: Vec<(String, i64, i64, i64, i64, i64)>| {
        rows.into_iter()
            .map(
                |(name, requests, errors, prompt, completion, cost)| UsageTotal {
                    name,
                    requests,
                    errors,
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    cost_usd: cost as f64 / 1e9,
                },
            )
            .collect::<Vec<_>>()
    };
    let by_model = totals(
        sqlx::query_as(
            "SELECT model_alias, sum(requests)::bigint, sum(errors)::bigint, sum(prompt_tokens)::bigint,
                    sum(completion_tokens)::bigint, sum(cost_nano)::bigint
             FROM usage_daily WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR user_id = $3)
             GROUP BY model_alias ORDER BY sum(prompt_tokens + completion_tokens) DESC, model_alias",
        )
        .bind(from).bind(to).bind(user)
        .fetch_all(&mut *conn)
        .await?,
    );
    let by_user = if per_user {
        totals(
            sqlx::query_as(
                "SELECT COALESCE(u.username, d.user_id::text), sum(d.requests)::bigint, sum(d.errors)::bigint,
                        sum(d.prompt_tokens)::bigint, sum(d.completion_tokens)::bigint, sum(d.cost_nano)::bigint
                 FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id
                 WHERE d.day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR d.user_id = $3)
                 GROUP BY 1 ORDER BY sum(d.prompt_tokens + d.completion_tokens) DESC, 1",
            )
            .bind(from).bind(to).bind(user)
            .fetch_all(&mut *conn)
            .await?,
        )
    } else {
        Vec::new()
    };
    Ok(UsageReport {
        from: from.to_string(),
        to: to.to_string(),
        days,
        by_model,
        by_user,
        budgets: Vec::new(),
    })
}

/// The budgets a user has and how much of each is used.
async fn budgets(user: Uuid) -> Result<Vec<BudgetView>, AppError> {
    let state = app_state()?;
    let Some(l) = sqlx::query!(
        "SELECT budget_tokens, budget_usd_micro, budget_period FROM user_limits WHERE user_id = $1",
        user
    )
    .fetch_optional(state.pool())
    .await?
    else {
        return Ok(Vec::new());
    };
    let monthly = l.budget_period != "day";
    let (start, end) = budget_period(monthly, OffsetDateTime::now_utc());
    let used = |quota: &'static str| {
        let pool = state.pool().clone();
        async move {
            sqlx::query_scalar!(
                r#"SELECT COALESCE(sum(used), 0)::bigint AS "n!" FROM quota_usage WHERE user_id = $1 AND quota = $2 AND window_start = $3"#,
                user, quota, start
            )
            .fetch_one(&pool)
            .await
        }
    };
    let mut out = Vec::new();
    if let Some(limit) = l.budget_tokens {
        out.push(BudgetView {
            kind: "tokens".into(),
            used: used("tokens").await? as f64,
            limit: limit as f64,
            period: l.budget_period.clone(),
            resets_at: end,
        });
    }
    if let Some(limit) = l.budget_usd_micro {
        out.push(BudgetView {
            kind: "cost".into(),
            used: used("cost").await? as f64 / 1e9,
            limit: limit as f64 / 1e6,
            period: l.budget_period.clone(),
            resets_at: end,
        });
    }
    Ok(out)
}

/// See [`crate::api::models::get_my_usage`].
pub async fn my_usage(days: u32) -> Result<UsageReport, AppError> {
    let caller = gate::require(Access::User).await?;
    let days = i64::from(days.clamp(1, 366));
    let to = OffsetDateTime::now_utc().date();
    let from = to - time::Duration::days(days - 1);
    let mut out = report(Some(caller.user.id), from, to, false).await?;
    out.budgets = budgets(caller.user.id).await?;
    Ok(out)
}

/// See [`crate::api::models::get_usage`].
pub async fn usage(from: &str, to: &str, user: &str) -> Result<UsageReport, AppError> {
    gate::require(Access::Admin).await?;
    let (from, to, user) = usage_query(from, to, user).await?;
    report(user, from, to, true).await
}

/// Checks an admin usage query: the dates and the user (by name; empty for everyone).
pub async fn usage_query(
    from: &str,
    to: &str,
    user: &str,
) -> Result<(Date, Date, Option<Uuid>), AppError> {
    // Empty dates: the last 30 days (UTC).
    let to = match to.trim() {
        "" => OffsetDateTime::now_utc().date(),
        text => parse_day("to", text)?,
    };
    let from = match from.trim() {
        "" => to - time::Duration::days(29),
        text => parse_day("from", text)?,
    };
    if to < from {
        return Err(AppError::field(
            "to",
            "The end date is before the start date.",
        ));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(AppError::field("from", "Choose at most 366 days."));
    }
    let user = match user.trim() {
        "" => None,
        name => Some(
            sqlx::query_scalar!(
                "SELECT id FROM users WHERE username = $1",
                name.to_lowercase()
            )
            .fetch_optional(app_state()?.pool())
            .await?
            .ok_or_else(|| AppError::field("user", format!("There is no user named {name}.")))?,
        ),
    };
    Ok((from, to, user))
}

/// The usage events between two days as CSV (admins), newest last.
pub async fn usage_csv(from: &str, to: &str, user: &str) -> Result<String, AppError> {
    gate::require(Access::Admin).await?;
    let (from, to, user) = usage_query(from, to, user).await?;
    let start = from.midnight().assume_utc();
    let end = (to + time::Duration::days(1)).midnight().assume_utc();
    let rows = sqlx::query!(
        "SELECT at, username, model_alias, endpoint, stream, status, error_code, prompt_tokens,
                completion_tokens, estimated, cost_nano, latency_ms, key_kind
         FROM usage_events WHERE at >= $1 AND at < $2 AND ($3::uuid IS NULL OR user_id = $3)
         ORDER BY at, id LIMIT 1000000",
        start,
        end,
        user
    )
    .fetch_all(app_state()?.pool())
    .await?;
    let mut out = String::from(
        "time,user,model,endpoint,stream,status,error,prompt_tokens,completion_tokens,estimated,cost_usd,latency_ms,key\n",
    );
    for r in rows {
        let at =
            r.at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
        out.push_str(&format!(
            "{at},{},{},{},{},{},{},{},{},{},{:.9},{},{}\n",
            csv(&r.username),
            csv(&r.model_alias),
            r.endpoint,
            r.stream,
            r.status,
            csv(r.error_code.as_deref().unwrap_or("")),
            r.prompt_tokens,
            r.completion_tokens,
            r.estimated,
            r.cost_nano as f64 / 1e9,
            r.latency_ms,
            r.key_kind.as_deref().unwrap_or("")
        ));
    }
    Ok(out)
}

/// A CSV field: quoted when needed, and never read as a formula by a spreadsheet.
fn csv(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_parse_to_micro_dollars_and_back() {
        assert_eq!(parse_usd("p", "2.50").ok(), Some(Some(2_500_000)));
        assert_eq!(parse_usd("p", "$0.15").ok(), Some(Some(150_000)));
        assert_eq!(parse_usd("p", "3").ok(), Some(Some(3_000_000)));
        assert_eq!(parse_usd("p", ".000001").ok(), Some(Some(1)));
        assert_eq!(parse_usd("p", " ").ok(), Some(None));
        for bad in ["-1", "1.2345678", "abc", "1,5", ".", "1e3"] {
            assert!(parse_usd("p", bad).is_err(), "{bad}");
        }
        assert_eq!(show_usd(2_500_000), "2.5");
        assert_eq!(show_usd(150_000), "0.15");
        assert_eq!(show_usd(0), "0");
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("=cmd()"), "'=cmd()");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
