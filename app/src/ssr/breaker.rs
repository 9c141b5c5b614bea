//! The runaway-agent breaker's pages: the user's trip and resume, the admin's rules and trips.
//! The rules and trips live in `clawloops_models::breaker`; the gateway trips, and the
//! orchestrator holds and releases runtimes.

use super::audit::{self, Subject};
use super::identity::auth::gate::Caller;
use super::identity::repo::users;
use super::models::limits::optional_number;
use super::models::{parse_usd, show_usd};
use super::{AppState, parse_id};
use crate::AppError;
use crate::api::breaker::{BreakerOverview, BreakerRulesForm, TripView};
use clawloops_models::breaker::{self, ResumeError, Rules, TripRow};
use clawloops_orchestrator::Resume;

fn view(t: TripRow) -> TripView {
    TripView {
        resume_in_secs: (t.resume_after - time::OffsetDateTime::now_utc())
            .whole_seconds()
            .max(0),
        user_id: t.user_id.to_string(),
        username: t.username,
        rule: t.rule,
        words: t.words,
        key_kind: t.key_kind,
        tripped_at: t.tripped_at,
        resume_after: t.resume_after,
        resumed_at: t.resumed_at,
        resumed_by: t.resumed_by,
    }
}

/// See [`crate::api::breaker::get_my_trip`].
pub async fn mine(state: &AppState, caller: &Caller) -> Result<Option<TripView>, AppError> {
    let mut conn = state.pool().acquire().await?;
    Ok(breaker::open_for(&mut conn, caller.user.id)
        .await?
        .map(view))
}

/// See [`crate::api::breaker::resume_my_agent`] and [`crate::api::breaker::resume_agent`]:
/// the caller's own trip after its cooldown, or (an admin) `user`'s at once.
pub async fn resume(
    state: &AppState,
    caller: &Caller,
    user: Option<&str>,
) -> Result<String, AppError> {
    let (id, at_once) = match user {
        Some(text) => (parse_id(text, "User")?, true),
        None => (caller.user.id, false),
    };
    let mut tx = state.pool().begin().await?;
    if users::find(&mut *tx, id).await?.is_none() {
        return Err(AppError::NotFound {
            what: "User".into(),
        });
    }
    let trip = match breaker::resume(&mut tx, id, &caller.user.username, at_once).await {
        Ok(trip) => trip,
        Err(ResumeError::NotTripped) => {
            return Err(AppError::Conflict {
                message: "Nothing is paused: the breaker has not tripped for this account.".into(),
            });
        }
        Err(ResumeError::TooSoon(at)) => {
            let wait = at - time::OffsetDateTime::now_utc();
            return Err(AppError::Conflict {
                message: format!(
                    "You can resume in {}: the cooldown after a trip is not over yet. An administrator can resume it now.",
                    crate::components::format::duration(wait.max(time::Duration::SECOND))
                ),
            });
        }
        Err(ResumeError::Database(err)) => return Err(err.into()),
    };
    let user_id = id.to_string();
    let subject = Subject {
        kind: "user",
        id: &user_id,
        name: Some(&trip.username),
    };
    let details = serde_json::json!({ "rule": trip.rule, "words": trip.words, "at_once": at_once });
    audit::by_caller(
        &mut *tx,
        caller,
        "breaker.resumed",
        Some(subject),
        Some(details),
    )
    .await?;
    tx.commit().await?;
    state.access_changed(id);
    let runtime = match state
        .orchestrator()
        .release(id, &caller.user.username)
        .await
    {
        Ok(Resume::Thawed) => "The runtime runs again where it stopped.".to_owned(),
        Ok(Resume::Started) => "The runtime is starting again.".to_owned(),
        Ok(Resume::Released) => "Start the runtime when you need it.".to_owned(),
        Ok(Resume::NotStarted(words)) => format!("The runtime was not started: {words}"),
        Err(err) => {
            tracing::warn!(user = %id, error = %err, "could not release a held runtime now; the reconciler will");
            "The runtime resumes within a few seconds.".to_owned()
        }
    };
    Ok(format!("Resumed: model requests work again. {runtime}"))
}

fn form_of(rules: &Rules, webhook_url: Option<&str>) -> BreakerRulesForm {
    let count = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    BreakerRulesForm {
        enabled: rules.enabled,
        spend_per_minute: rules
            .spend_per_minute_nano
            .map(|n| show_usd(n / 1000))
            .unwrap_or_default(),
        sustained_minutes: rules.sustained_minutes.to_string(),
        requests_per_minute: count(rules.requests_per_minute),
        repeats: count(rules.repeats),
        repeat_window_secs: rules.repeat_window_secs.to_string(),
        errors: count(rules.errors),
        error_window_secs: rules.error_window_secs.to_string(),
        cooldown_minutes: rules.cooldown_minutes.to_string(),
        include_personal_keys: rules.include_personal_keys,
        webhook_url: webhook_url.unwrap_or_default().to_owned(),
    }
}

/// See [`crate::api::breaker::get_breaker`].
pub async fn overview(state: &AppState) -> Result<BreakerOverview, AppError> {
    let mut conn = state.pool().acquire().await?;
    let settings = breaker::settings(&mut conn).await?;
    let trips = breaker::recent(&mut conn, 50).await?;
    Ok(BreakerOverview {
        rules: form_of(&settings.rules, settings.webhook_url.as_deref()),
        updated_at: settings.updated_at,
        updated_by: settings.updated_by,
        trips: trips.into_iter().map(view).collect(),
    })
}

/// A required whole number within bounds.
fn required(field: &str, text: &str, min: u32, max: u32, words: &str) -> Result<u32, AppError> {
    optional_number(field, text, min, max, words)?.ok_or_else(|| AppError::field(field, words))
}

/// An http(s) address with a host, without spaces or control characters.
fn web_address(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty()
            && !host.starts_with(':')
            && text.len() <= 2000
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Checks the form field by field.
fn parse_rules(form: &BreakerRulesForm) -> Result<(Rules, Option<String>), AppError> {
    let spend = parse_usd("spend_per_minute", &form.spend_per_minute)?;
    if spend == Some(0) {
        return Err(AppError::field(
            "spend_per_minute",
            "A spending rate must be more than $0 (empty turns the rule off).",
        ));
    }
    let webhook = form.webhook_url.trim();
    let webhook = match webhook {
        "" => None,
        url if web_address(url) => Some(url.to_owned()),
        _ => {
            return Err(AppError::field(
                "webhook_url",
                "Enter an http:// or https:// address, or leave it empty for no webhook.",
            ));
        }
    };
    let rules = Rules {
        enabled: form.enabled,
        spend_per_minute_nano: spend.map(|m| m.saturating_mul(1000)),
        sustained_minutes: required(
            "sustained_minutes",
            &form.sustained_minutes,
            1,
            60,
            "Enter whole minutes from 1 to 60.",
        )?,
        requests_per_minute: optional_number(
            "requests_per_minute",
            &form.requests_per_minute,
            1,
            1_000_000,
            "Enter a whole number of requests from 1 up (empty turns the rule off).",
        )?,
        repeats: optional_number(
            "repeats",
            &form.repeats,
            2,
            1_000_000,
            "Enter a whole number from 2 up (empty turns the rule off).",
        )?,
        repeat_window_secs: required(
            "repeat_window_secs",
            &form.repeat_window_secs,
            10,
            3600,
            "Enter whole seconds from 10 to 3600.",
        )?,
        errors: optional_number(
            "errors",
            &form.errors,
            1,
            1_000_000,
            "Enter a whole number of errors from 1 up (empty turns the rule off).",
        )?,
        error_window_secs: required(
            "error_window_secs",
            &form.error_window_secs,
            10,
            3600,
            "Enter whole seconds from 10 to 3600.",
        )?,
        cooldown_minutes: required(
            "cooldown_minutes",
            &form.cooldown_minutes,
            0,
            1440,
            "Enter whole minutes from 0 to 1440 (a day).",
        )?,
        include_personal_keys: form.include_personal_keys,
    };
    Ok((rules, webhook))
}

/// See [`crate::api::breaker::save_breaker_rules`].
pub async fn save_rules(
    state: &AppState,
    caller: &Caller,
    form: BreakerRulesForm,
) -> Result<BreakerOverview, AppError> {
    let (rules, webhook) = parse_rules(&form)?;
    let mut tx = state.pool().begin().await?;
    breaker::save_settings(&mut tx, &rules, webhook.as_deref(), &caller.user.username).await?;
    let details =
        serde_json::to_value(form_of(&rules, webhook.as_deref())).map_err(super::internal)?;
    audit::by_caller(&mut *tx, caller, "breaker.rules", None, Some(details)).await?;
    tx.commit().await?;
    state.models_changed();
    overview(state).await
}
