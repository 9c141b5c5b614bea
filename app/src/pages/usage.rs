//! A user's own usage: chart by day and model, totals per model, and what is left of their
//! budgets.

use crate::api::models::{
    BudgetView, ComputeTotal, UsageDay, UsageReport, UsageTotal, get_my_usage,
};
use crate::components::auth::RequireUser;
use crate::components::chart::{Metric, UsageChart, compact};
use crate::components::format;
use crate::components::ui::{Empty, ErrorNotice, Loading, PageHeader, Select};
use leptos::prelude::*;
use leptos_meta::Title;

/// `/usage`.
#[component]
pub fn UsagePage() -> impl IntoView {
    let period = RwSignal::new("30".to_owned());
    let report = Resource::new(
        move || period.get(),
        |days| get_my_usage(days.parse().unwrap_or(30)),
    );
    view! {
        <Title text="Your usage" />
        <RequireUser>
            <PageHeader
                title="Your usage".into()
                subtitle="What you and your runtime used through the model gateway."
            >
                <a class="btn-secondary" href="/models">
                    "Models and keys"
                </a>
            </PageHeader>
            <div class="mb-4 w-48">
                <Select
                    name="period"
                    label="Period"
                    value=period
                    options=vec![
                        ("7".into(), "Last 7 days".into()),
                        ("30".into(), "Last 30 days".into()),
                        ("90".into(), "Last 90 days".into()),
                    ]
                />
            </div>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match report.await {
                        Ok(report) => view! { <Report report /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </RequireUser>
    }
}

#[component]
fn Report(report: UsageReport) -> impl IntoView {
    let spend = spending_days(&report);
    let (from, to) = (report.from.clone(), report.to.clone());
    view! {
        {(!report.budgets.is_empty())
            .then(|| {
                view! {
                    <section class="card mb-6 space-y-3" aria-labelledby="budget-heading">
                        <h2 id="budget-heading" class="text-lg font-semibold">
                            "Budget"
                        </h2>
                        {report
                            .budgets
                            .into_iter()
                            .map(|b| view! { <BudgetBar budget=b /> })
                            .collect_view()}
                    </section>
                }
            })}
        <section class="card space-y-3" aria-labelledby="chart-heading">
            <h2 id="chart-heading" class="text-lg font-semibold">
                "Tokens per day"
            </h2>
            {if report.days.is_empty() {
                view! { <Empty text="No use in this period." /> }.into_any()
            } else {
                view! {
                    <UsageChart
                        days=report.days
                        from=report.from
                        to=report.to
                        metric=Metric::Tokens
                    />
                }
                    .into_any()
            }}
        </section>
        <section class="card mt-6 space-y-3" aria-labelledby="spend-heading">
            <h2 id="spend-heading" class="text-lg font-semibold">
                "Spending per day: model requests and runtime time"
            </h2>
            {if spend.is_empty() {
                view! { <Empty text="Nothing spent in this period." /> }.into_any()
            } else {
                view! { <UsageChart days=spend from=from to=to metric=Metric::Cost /> }.into_any()
            }}
        </section>
        <div class="mt-6 grid gap-6 lg:grid-cols-2">
            <section class="card" aria-labelledby="models-heading">
                <h2 id="models-heading" class="mb-3 text-lg font-semibold">
                    "By model"
                </h2>
                <TotalsTable rows=report.by_model first="Model" />
            </section>
            <section class="card" aria-labelledby="compute-heading">
                <h2 id="compute-heading" class="mb-3 text-lg font-semibold">
                    "Runtime time"
                </h2>
                <ComputeTable rows=report.compute_totals first="Size" />
            </section>
        </div>
    }
}

/// The days of model use and of runtime time in one list, for the spending chart.
pub fn spending_days(report: &UsageReport) -> Vec<UsageDay> {
    report
        .days
        .iter()
        .chain(&report.compute_days)
        .filter(|d| d.cost_usd > 0.0)
        .cloned()
        .collect()
}

/// Hours and cost of runtime time per user or size class.
#[component]
pub fn ComputeTable(rows: Vec<ComputeTotal>, first: &'static str) -> impl IntoView {
    if rows.is_empty() {
        return view! { <Empty text="No runtime time in this period." /> }.into_any();
    }
    view! {
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>{first}</th>
                        <th>"Hours"</th>
                        <th>"Cost"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|r| {
                            view! {
                                <tr data-compute=r.name.clone()>
                                    <td class="font-mono">{r.name.clone()}</td>
                                    <td class="tabular-nums">{format!("{:.2}", r.hours)}</td>
                                    <td class="tabular-nums">{Metric::Cost.show(r.cost_usd)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// What is used of one budget, as a bar with words.
#[component]
pub fn BudgetBar(budget: BudgetView) -> impl IntoView {
    let share = if budget.limit > 0.0 {
        (budget.used / budget.limit).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let (used, limit, left) = match budget.kind.as_str() {
        "cost" => (
            format!("${:.2}", budget.used),
            format!("${:.2}", budget.limit),
            format!("${:.2}", (budget.limit - budget.used).max(0.0)),
        ),
        _ => (
            compact(budget.used),
            compact(budget.limit),
            format!("{} tokens", compact((budget.limit - budget.used).max(0.0))),
        ),
    };
    let tone = if share >= 0.9 {
        "bg-red-500"
    } else if share >= 0.7 {
        "bg-amber-500"
    } else {
        "bg-indigo-500"
    };
    let period = match budget.period.as_str() {
        "day" => "today",
        "week" => "this week",
        _ => "this month",
    };
    let compute = (budget.kind == "cost" && budget.compute > 0.0).then(|| {
        format!(
            " (model requests ${:.2}, runtime time ${:.2})",
            (budget.used - budget.compute).max(0.0),
            budget.compute
        )
    });
    view! {
        <div data-budget=budget.kind.clone()>
            <div class="flex justify-between text-sm">
                <span>
                    {format!(
                        "{} {} of {} used {period}{}",
                        if budget.kind == "cost" { "Spending:" } else { "Tokens:" },
                        used,
                        limit,
                        compute.unwrap_or_default(),
                    )}
                </span>
                <span class="text-slate-500">
                    {format!("{left} left · resets {}", format::utc(budget.resets_at))}
                </span>
            </div>
            <div
                class="mt-1 h-2 w-full rounded bg-slate-200 dark:bg-slate-700"
                role="progressbar"
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=format!("{:.0}", share * 100.0)
                aria-label=format!("{} budget used", budget.kind)
            >
                <div
                    class=format!("h-2 rounded {tone}")
                    style=format!("width:{:.1}%", share * 100.0)
                ></div>
            </div>
        </div>
    }
}

/// Requests, tokens and cost per model or user.
#[component]
pub fn TotalsTable(rows: Vec<UsageTotal>, first: &'static str) -> impl IntoView {
    if rows.is_empty() {
        return view! { <Empty text="Nothing yet." /> }.into_any();
    }
    view! {
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>{first}</th>
                        <th>"Requests"</th>
                        <th>"Errors"</th>
                        <th>"Prompt tokens"</th>
                        <th>"Completion tokens"</th>
                        <th>"Cost"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|r| {
                            view! {
                                <tr data-row=r.name.clone()>
                                    <td class="font-mono">{r.name.clone()}</td>
                                    <td class="tabular-nums">{r.requests}</td>
                                    <td class="tabular-nums">{r.errors}</td>
                                    <td class="tabular-nums">{r.prompt_tokens}</td>
                                    <td class="tabular-nums">{r.completion_tokens}</td>
                                    <td class="tabular-nums">{Metric::Cost.show(r.cost_usd)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
