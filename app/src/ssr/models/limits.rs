//! Per-user limits and budgets, as admins set them.

use super::{commit_audited, not_found, parse_usd, show_usd};
use crate::AppError;
use crate::api::models::{LimitsForm, LimitsView};
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::identity::repo::users;
use crate::ssr::{AppState, internal, parse_id};
use clawloops_models::budget;
use clawloops_models::limits::{self, LimitFields};
use std::collections::HashMap;
use time::OffsetDateTime;

/// See [`crate::api::models::list_limits`].
pub async fn list(state: &AppState) -> Result<Vec<LimitsView>, AppError> {
    let mut conn = state.pool().acquire().await?;
    let own = limits::all(&mut conn).await?;
    let standings: HashMap<_, _> = budget::standings(&mut conn, None, OffsetDateTime::now_utc())
        .await?
        .into_iter()
        .map(|s| (s.user_id, s))
        .collect();
    Ok(own
        .into_iter()
        .map(|r| {
            let s = standings.get(&r.user_id);
            LimitsView {
                user_id: r.user_id.to_string(),
                username: r.username,
                rpm: r.rpm,
                tpm: r.tpm,
                budget_tokens: r.budget_tokens,
                budget_usd: r.budget_usd_micro.map(show_usd),
                budget_period: r.period,
                keys_suspended: r.suspended,
                budget_exempt: r.exempt,
                effective_usd: s.and_then(|s| s.limit_nano).map(|n| n as f64 / 1e9),
                effective_period: s.map_or("month", |s| s.period.name()).to_owned(),
                from_default: s.is_some_and(|s| s.from_default),
                used_tokens: s.map_or(0, |s| s.used_tokens),
                used_usd: s.map_or(0.0, |s| s.spent_nano as f64 / 1e9),
                used_compute_usd: s.map_or(0.0, |s| s.compute_nano as f64 / 1e9),
            }
        })
        .collect())
}

pub(crate) fn optional_number<T: std::str::FromStr + PartialOrd + Copy>(
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
pub async fn set(
    state: &AppState,
    caller: &Caller,
    form: LimitsForm,
) -> Result<LimitsView, AppError> {
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
    let period = crate::ssr::budget::parse_period("budget_period", &form.budget_period)?.name();
    let mut tx = state.pool().begin().await?;
    let username = users::find(&mut *tx, id)
        .await?
        .ok_or_else(|| not_found("User"))?
        .username;
    let fields = LimitFields {
        rpm,
        tpm,
        budget_tokens: tokens,
        budget_usd_micro: usd,
        period,
        keys_suspended: form.keys_suspended,
        exempt: form.budget_exempt,
    };
    limits::set(&mut tx, id, &fields).await?;
    let details = serde_json::json!({ "rpm": rpm, "tpm": tpm, "budget_tokens": tokens, "budget_usd": usd.map(show_usd),
                                      "budget_period": period, "keys_suspended": form.keys_suspended,
                                      "budget_exempt": form.budget_exempt });
    commit_audited(
        tx,
        caller,
        "user.limits",
        ("user", id, &username),
        Some(details),
    )
    .await?;
    state.models_changed();
    list(state)
        .await?
        .into_iter()
        .find(|l| l.user_id == id.to_string())
        .ok_or_else(|| internal("limits of a user that vanished"))
}
