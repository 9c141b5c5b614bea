//! One budget for model requests and runtime time: where the signed-in user stands, the default
//! budget and each user's overrides (admins: reset, exempt), and the prices of runtime time per
//! size class (admins).

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a user stands against their spending budget this period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// Dollars per period.
    pub limit_usd: f64,
    /// Spent this period: model requests and runtime time together.
    pub spent_usd: f64,
    /// The runtime-time part of `spent_usd`.
    pub compute_usd: f64,
    /// `day`, `week` or `month`.
    pub period: String,
    #[serde(with = "time::serde::rfc3339")]
    pub renews_at: OffsetDateTime,
    /// The default budget for everyone (not one of the user's own).
    pub from_default: bool,
}

impl BudgetStatus {
    /// Share used, 0–100 and beyond.
    pub fn percent(&self) -> f64 {
        if self.limit_usd > 0.0 {
            self.spent_usd * 100.0 / self.limit_usd
        } else {
            0.0
        }
    }

    /// How the dashboard speaks of it: nothing below 80 %, a warning from 80 %, used up at 100 %.
    pub fn level(&self) -> BudgetLevel {
        match self.percent() {
            p if p >= 100.0 => BudgetLevel::UsedUp,
            p if p >= 80.0 => BudgetLevel::Warning,
            _ => BudgetLevel::Fine,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLevel {
    Fine,
    Warning,
    UsedUp,
}

/// The signed-in user's budget (None: they have no spending budget).
#[server(endpoint = "budget/mine")]
pub async fn get_my_budget() -> Result<Option<BudgetStatus>, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::User, async |state, caller| {
        budget::mine(state, caller).await
    })
    .await
}

/// The default spending budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetDefault {
    /// Dollars per period, as typed; None: no default budget.
    pub usd: Option<String>,
    pub period: String,
}

#[server(endpoint = "admin/budget/default")]
pub async fn get_budget_default() -> Result<BudgetDefault, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, _| {
        budget::default_budget(state).await
    })
    .await
}

/// Sets the default budget: `usd` empty for none, `period` `day`, `week` or `month`.
#[server(endpoint = "admin/budget/default/set")]
pub async fn set_budget_default(usd: String, period: String) -> Result<BudgetDefault, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, caller| {
        budget::set_default_budget(state, caller, &usd, &period).await
    })
    .await
}

/// Starts a user's current budget period over (what was spent counts no more; usage records
/// are kept). Returns what had been spent, in dollars.
#[server(endpoint = "admin/budget/reset")]
pub async fn reset_budget(user_id: String) -> Result<f64, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, caller| {
        budget::reset(state, caller, &user_id).await
    })
    .await
}

/// A size class of runtimes and what an hour of its running time costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeClassView {
    pub name: String,
    pub memory_mb: i32,
    pub cpus: f64,
    /// Dollars per hour, as typed ("0.05").
    pub price_per_hour: String,
    /// How many runtimes belong to it now (by their limits).
    pub runtimes: i64,
}

/// The classes, smallest first, and the class of the installation's default limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputePrices {
    pub classes: Vec<ComputeClassView>,
    pub default_class: Option<String>,
}

#[server(endpoint = "admin/compute")]
pub async fn get_compute_prices() -> Result<ComputePrices, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, _| {
        budget::compute_prices(state).await
    })
    .await
}

/// A class as the form sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputeClassForm {
    pub name: String,
    pub memory_mb: String,
    pub cpus: String,
    pub price_per_hour: String,
}

#[server(endpoint = "admin/compute/save")]
pub async fn save_compute_class(form: ComputeClassForm) -> Result<ComputePrices, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, caller| {
        budget::save_class(state, caller, form).await
    })
    .await
}

#[server(endpoint = "admin/compute/delete")]
pub async fn delete_compute_class(name: String) -> Result<ComputePrices, AppError> {
    use crate::ssr::{Access, budget, serve};
    serve(Access::Admin, async |state, caller| {
        budget::delete_class(state, caller, &name).await
    })
    .await
}
