//! The model domain's services for the pages: registry administration
//! ([`catalog`], [`credentials`]), personal keys ([`keys`]), limits ([`limits`]) and usage ([`usage`]). Each
//! takes the state and the caller the server function resolved; the data is in
//! `clawloops_models`' repositories, which the gateway reads too.

pub mod catalog;
pub mod credentials;
pub mod keys;
pub mod limits;
pub mod usage;

use super::audit::{self, Subject};
use super::identity::auth::gate::Caller;
use super::parse_id;
use crate::AppError;
use uuid::Uuid;

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

/// A change to a registry, key or limit row, made in `tx` by `caller`: records it in the audit
/// log and commits (both or neither).
async fn commit_audited(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &Caller,
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

/// An id a form may leave empty.
fn optional_id(text: &str, what: &str) -> Result<Option<Uuid>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id(text, what).map(Some)
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
}
