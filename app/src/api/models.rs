//! The model layer's pages: the registry and provider credentials (admins), each user's models,
//! keys and usage, per-user limits and usage across users (admins).

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The kinds of upstream a model can have, with the words the pages show. Each speaks the
/// OpenAI API at its base URL.
pub const UPSTREAM_KINDS: &[(&str, &str)] = &[
    ("openai-compatible", "OpenAI-compatible"),
    ("litellm", "LiteLLM proxy"),
    ("vllm", "vLLM"),
    ("ollama", "Ollama"),
];

/// A registered model, as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub id: String,
    pub alias: String,
    pub upstream_kind: String,
    pub base_url: String,
    pub upstream_model: String,
    pub credential_id: Option<String>,
    pub credential_name: Option<String>,
    pub enabled: bool,
    /// `everyone`, `roles` or `users`.
    pub visibility: String,
    pub visible_roles: Vec<String>,
    pub visible_users: Vec<String>,
    pub is_default: bool,
    /// Dollars per million tokens, as typed ("2.50").
    pub price_input: String,
    pub price_output: String,
    pub context_window: Option<i32>,
    pub fallback_id: Option<String>,
    pub fallback_alias: Option<String>,
}

/// The model form (create when `id` is empty, else edit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelForm {
    pub id: String,
    pub alias: String,
    pub upstream_kind: String,
    pub base_url: String,
    pub upstream_model: String,
    /// Empty: no credential (a local Ollama or vLLM).
    pub credential_id: String,
    pub enabled: bool,
    pub visibility: String,
    /// Comma-separated roles (`user`, `admin`) when visibility is `roles`.
    pub visible_roles: String,
    /// Comma-separated usernames when visibility is `users`.
    pub visible_users: String,
    pub is_default: bool,
    pub price_input: String,
    pub price_output: String,
    pub context_window: String,
    pub fallback_id: String,
}

/// A provider credential: never its secret, only its last characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialView {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub verify_url: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    pub verify_ok: Option<bool>,
    pub verify_message: Option<String>,
    /// Aliases of the models that use it.
    pub used_by: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The admin models page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsAdmin {
    pub models: Vec<ModelView>,
    pub credentials: Vec<CredentialView>,
}

/// A model a user may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyModel {
    pub alias: String,
    pub is_default: bool,
    pub context_window: Option<i32>,
    pub price_input: String,
    pub price_output: String,
}

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// `personal` or `runtime`.
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// A key just created: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub key: KeyView,
    pub secret: String,
}

/// The user's models page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyModels {
    pub models: Vec<MyModel>,
    pub keys: Vec<KeyView>,
    /// The OpenAI-compatible base URL to give tools.
    pub gateway_url: String,
    /// An admin suspended this user's keys.
    pub suspended: bool,
}

/// A user's limits, as admins edit them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsView {
    pub user_id: String,
    pub username: String,
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub budget_tokens: Option<i64>,
    /// Dollars per period, as typed.
    pub budget_usd: Option<String>,
    /// `day`, `week` or `month`.
    pub budget_period: String,
    pub keys_suspended: bool,
    /// Exempt from budgets (their own and the default).
    pub budget_exempt: bool,
    /// The spending budget that applies (their own, else the default), dollars per
    /// `effective_period`.
    pub effective_usd: Option<f64>,
    pub effective_period: String,
    /// The budget that applies is the default.
    pub from_default: bool,
    /// Used in the current budget period: tokens, and dollars for model requests and runtime
    /// time together, of which `used_compute_usd` runtime time.
    pub used_tokens: i64,
    pub used_usd: f64,
    pub used_compute_usd: f64,
}

/// One day's use of one model (or one user's, in the admin's per-user view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

/// Totals for one model or user over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageTotal {
    pub name: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

/// Where a user stands against their budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// `tokens` or `cost` (model requests and runtime time together).
    pub kind: String,
    pub used: f64,
    pub limit: f64,
    /// Of `used`, runtime time (`cost` only).
    pub compute: f64,
    /// `day`, `week` or `month`.
    pub period: String,
    #[serde(with = "time::serde::rfc3339")]
    pub resets_at: OffsetDateTime,
}

/// Usage over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub days: Vec<UsageDay>,
    pub by_model: Vec<UsageTotal>,
    /// Admins only: totals per user.
    pub by_user: Vec<UsageTotal>,
    pub budgets: Vec<BudgetView>,
    /// Runtime time per day (as `model` "runtime time"; cost only), to chart beside models.
    pub compute_days: Vec<UsageDay>,
    /// Runtime time per user (admins) or per size class (a user's own).
    pub compute_totals: Vec<ComputeTotal>,
}

/// Runtime time of one user or size class over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeTotal {
    pub name: String,
    pub hours: f64,
    pub cost_usd: f64,
}

/// What the usage chart's runtime-time series is called.
pub const RUNTIME_TIME: &str = "runtime time";

#[server(endpoint = "admin/models")]
pub async fn get_models_admin() -> Result<ModelsAdmin, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, _| {
        models::catalog::admin_page(state).await
    })
    .await
}

#[server(endpoint = "admin/models/save")]
pub async fn save_model(form: ModelForm) -> Result<ModelView, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::catalog::save(state, caller, form).await
    })
    .await
}

#[server(endpoint = "admin/models/delete")]
pub async fn delete_model(id: String) -> Result<(), AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::catalog::delete(state, caller, &id).await
    })
    .await
}

#[server(endpoint = "admin/credentials/add")]
pub async fn add_credential(
    name: String,
    secret: String,
    verify_url: String,
) -> Result<CredentialView, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::credentials::add_credential(state, caller, &name, &secret, &verify_url).await
    })
    .await
}

#[server(endpoint = "admin/credentials/verify")]
pub async fn verify_credential(id: String) -> Result<CredentialView, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::credentials::verify_credential(state, caller, &id).await
    })
    .await
}

#[server(endpoint = "admin/credentials/delete")]
pub async fn delete_credential(id: String) -> Result<(), AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::credentials::delete_credential(state, caller, &id).await
    })
    .await
}

#[server(endpoint = "models/mine")]
pub async fn get_my_models() -> Result<MyModels, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::User, async |state, caller| {
        models::keys::mine(state, caller).await
    })
    .await
}

/// Creates a personal API key; `expires_days` empty for a key that does not expire.
#[server(endpoint = "keys/create")]
pub async fn create_key(name: String, expires_days: Option<u32>) -> Result<CreatedKey, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::User, async |state, caller| {
        models::keys::create_key(state, caller, &name, expires_days).await
    })
    .await
}

#[server(endpoint = "keys/revoke")]
pub async fn revoke_key(id: String) -> Result<(), AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::User, async |state, caller| {
        models::keys::revoke_key(state, caller, &id).await
    })
    .await
}

#[server(endpoint = "admin/limits")]
pub async fn list_limits() -> Result<Vec<LimitsView>, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, _| {
        models::limits::list(state).await
    })
    .await
}

/// The limits form; an empty number means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsForm {
    pub user_id: String,
    pub rpm: String,
    pub tpm: String,
    pub budget_tokens: String,
    /// Dollars per period.
    pub budget_usd: String,
    /// `day`, `week` or `month`.
    pub budget_period: String,
    pub keys_suspended: bool,
    pub budget_exempt: bool,
}

#[server(endpoint = "admin/limits/set")]
pub async fn set_limits(form: LimitsForm) -> Result<LimitsView, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, caller| {
        models::limits::set(state, caller, form).await
    })
    .await
}

/// The caller's usage over the last `days` days.
#[server(endpoint = "usage/mine")]
pub async fn get_my_usage(days: u32) -> Result<UsageReport, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::User, async |state, caller| {
        models::usage::mine(state, caller, days).await
    })
    .await
}

/// Usage across users between `from` and `to` (`YYYY-MM-DD`, inclusive), optionally one user's.
#[server(endpoint = "admin/usage")]
pub async fn get_usage(from: String, to: String, user: String) -> Result<UsageReport, AppError> {
    use crate::ssr::{Access, models, serve};
    serve(Access::Admin, async |state, _| {
        models::usage::everyone(state, &from, &to, &user).await
    })
    .await
}
