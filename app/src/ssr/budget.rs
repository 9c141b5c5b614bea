//! The budget for model requests and runtime time: a user's standing, the default budget, resets
//! and the prices of runtime time per size class. The rules are in `clawloops_models::budget`
//! and `::compute`, which the gateway and the meter read too.

use super::audit::{self, Subject};
use super::identity::auth::gate::Caller;
use super::identity::repo::users;
use super::models::{parse_usd, show_usd};
use super::{AppState, parse_id};
use crate::AppError;
use crate::api::budget::{
    BudgetDefault, BudgetStatus, ComputeClassForm, ComputeClassView, ComputePrices,
};
use clawloops_models::budget::{self, Period};
use clawloops_models::compute::{self, SizeClass};
use time::OffsetDateTime;

/// See [`crate::api::budget::get_my_budget`].
pub async fn mine(state: &AppState, caller: &Caller) -> Result<Option<BudgetStatus>, AppError> {
    let mut conn = state.pool().acquire().await?;
    let standing = budget::standing(&mut conn, caller.user.id, OffsetDateTime::now_utc()).await?;
    Ok(standing.and_then(|s| {
        Some(BudgetStatus {
            limit_usd: s.limit_nano? as f64 / 1e9,
            spent_usd: s.spent_nano as f64 / 1e9,
            compute_usd: s.compute_nano as f64 / 1e9,
            period: s.period.name().to_owned(),
            renews_at: s.ends,
            from_default: s.from_default,
        })
    }))
}

/// A period as a form sends it.
pub fn parse_period(field: &str, text: &str) -> Result<Period, AppError> {
    match text.trim() {
        "" => Ok(Period::Month),
        t => Period::parse(t)
            .ok_or_else(|| AppError::field(field, "Choose a day, a week or a month.")),
    }
}

/// See [`crate::api::budget::get_budget_default`].
pub async fn default_budget(state: &AppState) -> Result<BudgetDefault, AppError> {
    let mut conn = state.pool().acquire().await?;
    let (usd, period) = budget::default_budget(&mut conn).await?;
    Ok(BudgetDefault {
        usd: usd.map(show_usd),
        period: period.name().to_owned(),
    })
}

/// See [`crate::api::budget::set_budget_default`].
pub async fn set_default_budget(
    state: &AppState,
    caller: &Caller,
    usd: &str,
    period: &str,
) -> Result<BudgetDefault, AppError> {
    let micro = parse_usd("usd", usd)?;
    if micro == Some(0) {
        return Err(AppError::field(
            "usd",
            "A budget must be more than $0 (empty for none).",
        ));
    }
    let period = parse_period("period", period)?;
    let mut tx = state.pool().begin().await?;
    budget::set_default_budget(&mut tx, micro, period).await?;
    let details = serde_json::json!({ "budget_usd": micro.map(show_usd), "period": period.name() });
    audit::by_caller(&mut *tx, caller, "budget.default", None, Some(details)).await?;
    tx.commit().await?;
    state.models_changed();
    default_budget(state).await
}

/// See [`crate::api::budget::reset_budget`].
pub async fn reset(state: &AppState, caller: &Caller, user_id: &str) -> Result<f64, AppError> {
    let id = parse_id(user_id, "User")?;
    let mut tx = state.pool().begin().await?;
    let username = users::find(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "User".into(),
        })?
        .username;
    let spent = budget::reset(&mut tx, id, OffsetDateTime::now_utc()).await?;
    let subject = Subject {
        kind: "user",
        id: user_id,
        name: Some(&username),
    };
    let details = serde_json::json!({ "spent_before_usd": format!("{:.2}", spent as f64 / 1e9) });
    audit::by_caller(
        &mut *tx,
        caller,
        "budget.reset",
        Some(subject),
        Some(details),
    )
    .await?;
    tx.commit().await?;
    state.models_changed();
    Ok(spent as f64 / 1e9)
}

/// See [`crate::api::budget::get_compute_prices`].
pub async fn compute_prices(state: &AppState) -> Result<ComputePrices, AppError> {
    let mut conn = state.pool().acquire().await?;
    let classes = compute::classes(&mut conn).await?;
    let defaults = &state.orchestrator().settings().limits;
    let default_memory = i32::try_from(defaults.memory_mb).unwrap_or(i32::MAX);
    let bindings = clawloops_orchestrator::repo::limits_in_use(&mut conn).await?;
    let class_of = |memory: Option<i32>, cpus: Option<f64>| {
        compute::class_for(
            &classes,
            memory.unwrap_or(default_memory),
            cpus.unwrap_or(defaults.cpus),
        )
        .map(|c| c.name.clone())
    };
    let default_class = class_of(None, None);
    let counted: Vec<Option<String>> = bindings
        .iter()
        .map(|(memory, cpus)| class_of(*memory, *cpus))
        .collect();
    Ok(ComputePrices {
        classes: classes
            .iter()
            .map(|c| ComputeClassView {
                name: c.name.clone(),
                memory_mb: c.memory_mb,
                cpus: c.cpus,
                price_per_hour: show_usd(c.price_micro_per_hour),
                runtimes: i64::try_from(
                    counted
                        .iter()
                        .filter(|n| n.as_deref() == Some(&*c.name))
                        .count(),
                )
                .unwrap_or(i64::MAX),
            })
            .collect(),
        default_class,
    })
}

/// See [`crate::api::budget::save_compute_class`].
pub async fn save_class(
    state: &AppState,
    caller: &Caller,
    form: ComputeClassForm,
) -> Result<ComputePrices, AppError> {
    let name = form.name.trim().to_lowercase();
    let valid_name = (1..=30).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name {
        return Err(AppError::field(
            "name",
            "Use 1–30 lowercase letters, digits and dashes (starting with a letter or digit).",
        ));
    }
    let memory_mb = form
        .memory_mb
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|m| (64..=1_048_576).contains(m))
        .ok_or_else(|| AppError::field("memory_mb", "Memory: a whole number of MiB from 64."))?;
    let cpus = form
        .cpus
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|c| c.is_finite() && (0.1..=512.0).contains(c))
        .ok_or_else(|| AppError::field("cpus", "CPUs: a number from 0.1 to 512, like 2 or 0.5."))?;
    let price = parse_usd("price_per_hour", &form.price_per_hour)?.ok_or_else(|| {
        AppError::field(
            "price_per_hour",
            "Enter a price per hour in dollars, like 0.05 (0 for free).",
        )
    })?;
    let class = SizeClass {
        name: name.clone(),
        memory_mb,
        cpus,
        price_micro_per_hour: price,
    };
    let mut tx = state.pool().begin().await?;
    compute::save_class(&mut tx, &class).await?;
    let details = serde_json::json!({ "memory_mb": memory_mb, "cpus": cpus, "price_per_hour": show_usd(price) });
    let subject = Subject {
        kind: "compute_class",
        id: &name,
        name: Some(&name),
    };
    audit::by_caller(
        &mut *tx,
        caller,
        "compute.price",
        Some(subject),
        Some(details),
    )
    .await?;
    tx.commit().await?;
    compute_prices(state).await
}

/// See [`crate::api::budget::delete_compute_class`].
pub async fn delete_class(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ComputePrices, AppError> {
    let mut tx = state.pool().begin().await?;
    if !compute::delete_class(&mut tx, name).await? {
        return Err(AppError::NotFound {
            what: "Size class".into(),
        });
    }
    let subject = Subject {
        kind: "compute_class",
        id: name,
        name: Some(name),
    };
    audit::by_caller(&mut *tx, caller, "compute.delete", Some(subject), None).await?;
    tx.commit().await?;
    compute_prices(state).await
}
