//! Provider credentials: added sealed, checked against their upstream, removed when no model
//! uses them. Their secrets never leave the server.

use super::{check_url, commit_audited, model_error, not_found};
use crate::AppError;
use crate::api::models::CredentialView;
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::{AppState, internal, parse_id};
use clawloops_models::catalog::{self, NewCredential};
use clawloops_models::seal::CREDENTIAL as CREDENTIAL_PURPOSE;
use secrecy::ExposeSecret;
use uuid::Uuid;

/// Every credential (never its secret).
pub async fn all(state: &AppState) -> Result<Vec<CredentialView>, AppError> {
    let mut conn = state.pool().acquire().await?;
    Ok(catalog::credentials(&mut conn)
        .await?
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

async fn credential(state: &AppState, id: Uuid) -> Result<CredentialView, AppError> {
    all(state)
        .await?
        .into_iter()
        .find(|c| c.id == id.to_string())
        .ok_or_else(|| not_found("Credential"))
}

/// See [`crate::api::models::add_credential`].
pub async fn add_credential(
    state: &AppState,
    caller: &Caller,
    name: &str,
    secret: &str,
    verify_url: &str,
) -> Result<CredentialView, AppError> {
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
    let new = NewCredential {
        id,
        name,
        sealed: &sealed,
        hint: &hint,
        verify_url: verify_url.as_deref(),
        created_by: caller.user.id,
    };
    catalog::insert_credential(&mut tx, &new)
        .await
        .map_err(model_error)?;
    commit_audited(
        tx,
        caller,
        "credential.created",
        ("credential", id, name),
        None,
    )
    .await?;
    state.models_changed();
    credential(state, id).await
}

/// See [`crate::api::models::verify_credential`]: lists the upstream's models with the secret.
pub async fn verify_credential(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<CredentialView, AppError> {
    let id = parse_id(id, "Credential")?;
    let mut conn = state.pool().acquire().await?;
    let row = catalog::credential_probe(&mut conn, id)
        .await?
        .ok_or_else(|| not_found("Credential"))?;
    drop(conn);
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
    catalog::record_verification(&mut tx, id, ok, &message).await?;
    commit_audited(
        tx,
        caller,
        "credential.verified",
        ("credential", id, &row.name),
        Some(serde_json::json!({ "ok": ok })),
    )
    .await?;
    credential(state, id).await
}

/// See [`crate::api::models::delete_credential`]: refused while a model uses it.
pub async fn delete_credential(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), AppError> {
    let id = parse_id(id, "Credential")?;
    let mut tx = state.pool().begin().await?;
    let users = catalog::models_using(&mut tx, id).await?;
    if !users.is_empty() {
        return Err(AppError::Conflict {
            message: format!(
                "This credential is in use by {}. Change those models first.",
                users.join(", ")
            ),
        });
    }
    let name = catalog::delete_credential(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("Credential"))?;
    commit_audited(
        tx,
        caller,
        "credential.deleted",
        ("credential", id, &name),
        None,
    )
    .await?;
    state.models_changed();
    Ok(())
}
