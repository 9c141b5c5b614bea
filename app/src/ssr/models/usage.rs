//! Usage reports: a user's own (with their budgets), everyone's for admins, and the CSV export
//! of single requests and runtime time per day.

use crate::AppError;
use crate::api::models::{
    BudgetView, ComputeTotal, RUNTIME_TIME, UsageDay, UsageReport, UsageTotal,
};
use crate::ssr::AppState;
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::identity::repo::users;
use clawloops_models::usage::{self, TotalRow};
use clawloops_models::{budget, compute};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The most days a usage report covers.
const MAX_DAYS: i64 = 366;

fn parse_day(field: &str, text: &str) -> Result<Date, AppError> {
    Date::parse(
        text.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| AppError::field(field, "Enter a date like 2026-11-25."))
}

fn totals(rows: Vec<TotalRow>) -> Vec<UsageTotal> {
    rows.into_iter()
        .map(|r| UsageTotal {
            name: r.name,
            requests: r.requests,
            errors: r.errors,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_usd: r.cost_nano as f64 / 1e9,
        })
        .collect()
}

async fn report(
    state: &AppState,
    user: Option<Uuid>,
    from: Date,
    to: Date,
    per_user: bool,
) -> Result<UsageReport, AppError> {
    let mut conn = state.pool().acquire().await?;
    let days = usage::days(&mut conn, from, to, user)
        .await?
        .into_iter()
        .map(|r| UsageDay {
            day: r.day.to_string(),
            model: r.model_alias,
            requests: r.requests,
            tokens: r.tokens,
            cost_usd: r.cost_nano as f64 / 1e9,
        })
        .collect();
    let by_model = totals(usage::by_model(&mut conn, from, to, user).await?);
    let by_user = if per_user {
        totals(usage::by_user(&mut conn, from, to, user).await?)
    } else {
        Vec::new()
    };
    let (compute_days, compute_totals) =
        compute_report(&mut conn, from, to, user, per_user).await?;
    Ok(UsageReport {
        from: from.to_string(),
        to: to.to_string(),
        days,
        by_model,
        by_user,
        budgets: Vec::new(),
        compute_days,
        compute_totals,
    })
}

/// The budgets that apply to a user and how much of each is used.
async fn budgets(state: &AppState, user: Uuid) -> Result<Vec<BudgetView>, AppError> {
    let mut conn = state.pool().acquire().await?;
    let Some(s) = budget::standing(&mut conn, user, OffsetDateTime::now_utc()).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some(limit) = s.limit_tokens {
        out.push(BudgetView {
            kind: "tokens".into(),
            used: s.used_tokens as f64,
            limit: limit as f64,
            compute: 0.0,
            period: s.period.name().into(),
            resets_at: s.ends,
        });
    }
    if let Some(limit) = s.limit_nano {
        out.push(BudgetView {
            kind: "cost".into(),
            used: s.spent_nano as f64 / 1e9,
            limit: limit as f64 / 1e9,
            compute: s.compute_nano as f64 / 1e9,
            period: s.period.name().into(),
            resets_at: s.ends,
        });
    }
    Ok(out)
}

/// Runtime time per day (one series) and per user (admins) or size class.
async fn compute_report(
    conn: &mut sqlx::PgConnection,
    from: Date,
    to: Date,
    user: Option<Uuid>,
    per_user: bool,
) -> Result<(Vec<UsageDay>, Vec<ComputeTotal>), AppError> {
    let rows = compute::days(conn, from, to, user).await?;
    let mut days: BTreeMap<Date, f64> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in rows {
        *days.entry(r.day).or_default() += r.cost_nano as f64 / 1e9;
        let name = if per_user {
            r.username.clone()
        } else {
            r.size_class.clone()
        };
        let t = totals.entry(name).or_default();
        t.0 += r.run_ms;
        t.1 += r.cost_nano;
    }
    let days = days
        .into_iter()
        .map(|(day, cost_usd)| UsageDay {
            day: day.to_string(),
            model: RUNTIME_TIME.into(),
            requests: 0,
            tokens: 0,
            cost_usd,
        })
        .collect();
    let mut totals: Vec<ComputeTotal> = totals
        .into_iter()
        .map(|(name, (ms, nano))| ComputeTotal {
            name,
            hours: ms as f64 / 3_600_000.0,
            cost_usd: nano as f64 / 1e9,
        })
        .collect();
    totals.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.hours.total_cmp(&a.hours))
    });
    Ok((days, totals))
}

/// See [`crate::api::models::get_my_usage`].
pub async fn mine(state: &AppState, caller: &Caller, days: u32) -> Result<UsageReport, AppError> {
    let days = i64::from(days.clamp(1, 366));
    let to = OffsetDateTime::now_utc().date();
    let from = to - time::Duration::days(days - 1);
    let mut out = report(state, Some(caller.user.id), from, to, false).await?;
    out.budgets = budgets(state, caller.user.id).await?;
    Ok(out)
}

/// See [`crate::api::models::get_usage`].
pub async fn everyone(
    state: &AppState,
    from: &str,
    to: &str,
    user: &str,
) -> Result<UsageReport, AppError> {
    let (from, to, user) = query(state, from, to, user).await?;
    report(state, user, from, to, true).await
}

/// Checks an admin usage query: the dates and the user (by name; empty for everyone).
pub async fn query(
    state: &AppState,
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
            users::find_by_username(state.pool(), &name.to_lowercase())
                .await?
                .ok_or_else(|| AppError::field("user", format!("There is no user named {name}.")))?
                .id,
        ),
    };
    Ok((from, to, user))
}

/// The usage events between two days as CSV (admins), newest last.
pub async fn csv_export(
    state: &AppState,
    from: &str,
    to: &str,
    user: &str,
) -> Result<String, AppError> {
    let (from, to, user) = query(state, from, to, user).await?;
    let start = from.midnight().assume_utc();
    let end = (to + time::Duration::days(1)).midnight().assume_utc();
    let mut conn = state.pool().acquire().await?;
    let rows = usage::events(&mut conn, start, end, user).await?;
    let mut out = String::from(
        "kind,time,user,model,endpoint,stream,status,error,prompt_tokens,completion_tokens,estimated,cost_usd,latency_ms,key,run_seconds\n",
    );
    for r in rows {
        let at =
            r.at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
        let _ = writeln!(
            out,
            "request,{at},{},{},{},{},{},{},{},{},{},{:.9},{},{},",
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
        );
    }
    // Runtime time, one row per user, day and size class (as charged).
    for r in compute::days(&mut conn, from, to, user).await? {
        let _ = writeln!(
            out,
            "runtime,{}T00:00:00Z,{},{},,,,,0,0,false,{:.9},,,{:.3}",
            r.day,
            csv(&r.username),
            csv(&r.size_class),
            r.cost_nano as f64 / 1e9,
            r.run_ms as f64 / 1000.0
        );
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
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("=cmd()"), "'=cmd()");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
