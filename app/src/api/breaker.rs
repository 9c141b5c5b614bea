//! The runaway-agent breaker: the signed-in user's trip (and resuming after the cooldown), and
//! for admins the rules, the recent trips and resuming at once.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One trip of the breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripView {
    pub user_id: String,
    pub username: String,
    /// `spend_rate`, `request_rate`, `repeats` or `errors`.
    pub rule: String,
    /// What was seen, in words ("it sent 121 model requests within a minute").
    pub words: String,
    /// `runtime` or `personal`: whose requests tripped it.
    pub key_kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub tripped_at: OffsetDateTime,
    /// From when its owner may resume.
    #[serde(with = "time::serde::rfc3339")]
    pub resume_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resumed_at: Option<OffsetDateTime>,
    pub resumed_by: Option<String>,
    /// Seconds until its owner may resume (0: now), when it was read.
    pub resume_in_secs: i64,
}

impl TripView {
    pub fn open(&self) -> bool {
        self.resumed_at.is_none()
    }
}

/// The signed-in user's open trip, if any.
#[server(endpoint = "breaker/mine")]
pub async fn get_my_trip() -> Result<Option<TripView>, AppError> {
    use crate::ssr::{Access, breaker, serve};
    serve(Access::User, async |state, caller| {
        breaker::mine(state, caller).await
    })
    .await
}

/// Resumes the signed-in user's agent once the cooldown is over: the key works again and the
/// runtime runs again. Returns what happened, in words.
#[server(endpoint = "breaker/resume")]
pub async fn resume_my_agent() -> Result<String, AppError> {
    use crate::ssr::{Access, breaker, serve};
    serve(Access::User, async |state, caller| {
        breaker::resume(state, caller, None).await
    })
    .await
}

/// The rules as the form shows and sends them (numbers as typed; empty: the rule is off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerRulesForm {
    pub enabled: bool,
    /// Dollars per minute.
    pub spend_per_minute: String,
    pub sustained_minutes: String,
    pub requests_per_minute: String,
    pub repeats: String,
    pub repeat_window_secs: String,
    pub errors: String,
    pub error_window_secs: String,
    pub cooldown_minutes: String,
    pub include_personal_keys: bool,
    pub webhook_url: String,
}

/// The rules, who changed them last, and the recent trips (open ones first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerOverview {
    pub rules: BreakerRulesForm,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: Option<String>,
    pub trips: Vec<TripView>,
}

#[server(endpoint = "admin/breaker")]
pub async fn get_breaker() -> Result<BreakerOverview, AppError> {
    use crate::ssr::{Access, breaker, serve};
    serve(Access::Admin, async |state, _| {
        breaker::overview(state).await
    })
    .await
}

#[server(endpoint = "admin/breaker/save")]
pub async fn save_breaker_rules(form: BreakerRulesForm) -> Result<BreakerOverview, AppError> {
    use crate::ssr::{Access, breaker, serve};
    serve(Access::Admin, async |state, caller| {
        breaker::save_rules(state, caller, form).await
    })
    .await
}

/// Resumes a user's agent at once (no cooldown for admins).
#[server(endpoint = "admin/breaker/resume")]
pub async fn resume_agent(user_id: String) -> Result<String, AppError> {
    use crate::ssr::{Access, breaker, serve};
    serve(Access::Admin, async |state, caller| {
        breaker::resume(state, caller, Some(&user_id)).await
    })
    .await
}
