//! Usage across users and models, model requests and runtime time (period filter, chart, CSV).

use super::AdminNav;
use crate::api::models::{UsageReport, get_usage};
use crate::components::auth::RequireUser;
use crate::components::chart::{Metric, UsageChart, compact};
use crate::components::ui::{Empty, ErrorNotice, Field, Loading, PageHeader, Select};
use crate::pages::usage::{ComputeTable, TotalsTable, spending_days};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// `/admin/usage?from=YYYY-MM-DD&to=YYYY-MM-DD&user=name`.
#[component]
pub fn UsageAdminPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str, default: String| {
        query.with(|q| q.get(k).filter(|v| !v.is_empty()).unwrap_or(default))
    };
    // Empty: the server's last 30 days (the browser's clock is not asked).
    let from = RwSignal::new(get("from", String::new()));
    let to = RwSignal::new(get("to", String::new()));
    let user = RwSignal::new(get("user", String::new()));
    let metric = RwSignal::new("tokens".to_owned());
    // Applied filters (the inputs change without reloading until "Show").
    let applied = RwSignal::new((
        from.get_untracked(),
        to.get_untracked(),
        user.get_untracked(),
    ));
    let report = Resource::new(move || applied.get(), |(f, t, u)| get_usage(f, t, u));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        applied.set((
            from.get_untracked(),
            to.get_untracked(),
            user.get_untracked(),
        ));
    };
    let error_for = move |field: &'static str| {
        Signal::derive(move || match report.get() {
            Some(Err(e)) => e.field_message(field).map(str::to_owned),
            _ => None,
        })
    };
    let csv = move || {
        let (f, t, u) = applied.get();
        format!("/admin/usage.csv?from={f}&to={t}&user={}", u.trim())
    };
    view! {
        <Title text="Usage" />
        <RequireUser admin=true>
            <PageHeader
                title="Usage".into()
                subtitle="Every request through the model gateway and every hour of runtime time, by day, model and user."
            >
                <a class="btn-secondary" href=csv download="">
                    "Download CSV"
                </a>
            </PageHeader>
            <AdminNav />
            <form
                class="card mb-6 flex flex-wrap items-end gap-3"
                on:submit=submit
                aria-label="Period"
            >
                <Field name="from" label="From" kind="date" value=from error=error_for("from") />
                <Field name="to" label="To" kind="date" value=to error=error_for("to") />
                <Field name="user" label="User (optional)" value=user error=error_for("user") />
                <Select
                    name="metric"
                    label="Chart"
                    value=metric
                    options=vec![
                        ("tokens".into(), "Tokens".into()),
                        ("cost".into(), "Spending (models and runtime time)".into()),
                        ("requests".into(), "Requests".into()),
                    ]
                />
                <button type="submit" class="btn-primary">
                    "Show"
                </button>
            </form>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    let m = match metric.get().as_str() {
                        "cost" => Metric::Cost,
                        "requests" => Metric::Requests,
                        _ => Metric::Tokens,
                    };
                    match report.await {
                        Ok(report) => {
                            if from.get_untracked().is_empty() {
                                from.set(report.from.clone());
                            }
                            if to.get_untracked().is_empty() {
                                to.set(report.to.clone());
                            }
                            // Show the period the server chose when none was given.
                            view! { <Report report metric=m /> }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </RequireUser>
    }
}

#[component]
fn Report(report: UsageReport, metric: Metric) -> impl IntoView {
    let total_tokens: i64 = report
        .by_model
        .iter()
        .map(|t| t.prompt_tokens + t.completion_tokens)
        .sum();
    let total_cost: f64 = report.by_model.iter().map(|t| t.cost_usd).sum();
    let compute_cost: f64 = report.compute_totals.iter().map(|t| t.cost_usd).sum();
    let compute_hours: f64 = report.compute_totals.iter().map(|t| t.hours).sum();
    // Spending charts model requests and runtime time together; the other metrics, requests.
    let days = if metric == Metric::Cost {
        spending_days(&report)
    } else {
        report.days.clone()
    };
    let requests: i64 = report.by_model.iter().map(|t| t.requests).sum();
    view! {
        <div class="mb-6 grid gap-4 sm:grid-cols-2 lg:grid-cols-4">
            <div class="card">
                <p class="text-sm text-slate-500">"Requests"</p>
                <p class="text-2xl font-semibold tabular-nums" data-total="requests">
                    {requests}
                </p>
            </div>
            <div class="card">
                <p class="text-sm text-slate-500">"Tokens"</p>
                <p class="text-2xl font-semibold tabular-nums" data-total="tokens">
                    {compact(total_tokens as f64)}
                </p>
            </div>
            <div class="card">
                <p class="text-sm text-slate-500">"Model requests"</p>
                <p class="text-2xl font-semibold tabular-nums" data-total="cost">
                    {Metric::Cost.show(total_cost)}
                </p>
            </div>
            <div class="card">
                <p class="text-sm text-slate-500">"Runtime time"</p>
                <p class="text-2xl font-semibold tabular-nums" data-total="compute">
                    {Metric::Cost.show(compute_cost)}
                </p>
                <p class="text-xs text-slate-500">{format!("{compute_hours:.1} hours")}</p>
            </div>
        </div>
        <section class="card" aria-label="By day">
            {if days.is_empty() {
                view! { <Empty text="No use in this period." /> }.into_any()
            } else {
                view! { <UsageChart days from=report.from to=report.to metric /> }.into_any()
            }}
        </section>
        <div class="mt-6 grid gap-6 lg:grid-cols-2">
            <section class="card" aria-labelledby="by-user">
                <h2 id="by-user" class="mb-3 text-lg font-semibold">
                    "By user"
                </h2>
                <TotalsTable rows=report.by_user first="User" />
            </section>
            <section class="card" aria-labelledby="by-model">
                <h2 id="by-model" class="mb-3 text-lg font-semibold">
                    "By model"
                </h2>
                <TotalsTable rows=report.by_model first="Model" />
            </section>
            <section class="card" aria-labelledby="compute-by-user">
                <h2 id="compute-by-user" class="mb-3 text-lg font-semibold">
                    "Runtime time by user"
                </h2>
                <ComputeTable rows=report.compute_totals first="User" />
            </section>
        </div>
    }
}
