//! Usage across users and models (period filter, chart, CSV) and per-user limits and budgets.

use super::AdminNav;
use crate::api::models::{LimitsForm, LimitsView, SetLimits, UsageReport, get_usage, list_limits};
use crate::components::auth::RequireUser;
use crate::components::chart::{Metric, UsageChart, compact};
use crate::components::ui::{
    Empty, ErrorNotice, Field, Loading, PageHeader, Select, SuccessNotice, field_error, form_error,
};
use crate::pages::usage::TotalsTable;
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
                subtitle="Every request through the model gateway, by day, model and user."
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
                        ("cost".into(), "Cost".into()),
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
    let requests: i64 = report.by_model.iter().map(|t| t.requests).sum();
    view! {
        <div class="mb-6 grid gap-4 sm:grid-cols-3">
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
                <p class="text-sm text-slate-500">"Cost"</p>
                <p class="text-2xl font-semibold tabular-nums" data-total="cost">
                    {Metric::Cost.show(total_cost)}
                </p>
            </div>
        </div>
        <section class="card" aria-label="By day">
            {if report.days.is_empty() {
                view! { <Empty text="No use in this period." /> }.into_any()
            } else {
                view! { <UsageChart days=report.days from=report.from to=report.to metric /> }
                    .into_any()
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
        </div>
    }
}

/// `/admin/limits`: each user's rate limits, budget and key suspension.
#[component]
pub fn LimitsPage() -> impl IntoView {
    let save = ServerAction::<SetLimits>::new();
    let refresh = RwSignal::new(0u32);
    let limits = Resource::new(move || refresh.get(), |_| list_limits());
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(_))) {
            refresh.update(|n| *n += 1);
        }
    });
    let selected = RwSignal::new(None::<LimitsView>);
    view! {
        <Title text="Limits" />
        <RequireUser admin=true>
            <PageHeader
                title="Limits and budgets".into()
                subtitle="Per-user requests and tokens per minute, a token or spending budget per day or month, and key suspension. The gateway enforces them on every replica."
            />
            <AdminNav />
            {move || selected.get().map(|l| view! { <LimitsEditor limits=l save selected /> })}
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match limits.await {
                        Ok(rows) => {
                            view! {
                                <section class="card overflow-x-auto" aria-label="Limits per user">
                                    <table class="table">
                                        <thead>
                                            <tr>
                                                <th>"User"</th>
                                                <th>"Requests / min"</th>
                                                <th>"Tokens / min"</th>
                                                <th>"Budget"</th>
                                                <th>"Used this period"</th>
                                                <th>"Keys"</th>
                                                <th>
                                                    <span class="sr-only">"Actions"</span>
                                                </th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {rows
                                                .into_iter()
                                                .map(|l| {
                                                    let edit = l.clone();
                                                    let budget = match (&l.budget_tokens, &l.budget_usd) {
                                                        (None, None) => "none".to_owned(),
                                                        (t, d) => {
                                                            [
                                                                t.map(|t| format!("{} tokens", compact(t as f64))),
                                                                d.as_ref().map(|d| format!("${d}")),
                                                            ]
                                                                .into_iter()
                                                                .flatten()
                                                                .collect::<Vec<_>>()
                                                                .join(" and ") + &format!(" per {}", l.budget_period)
                                                        }
                                                    };
                                                    view! {
                                                        <tr data-user=l.username.clone()>
                                                            <td>{l.username.clone()}</td>
                                                            <td class="tabular-nums">
                                                                {l.rpm.map_or_else(|| "—".into(), |v| v.to_string())}
                                                            </td>
                                                            <td class="tabular-nums">
                                                                {l.tpm.map_or_else(|| "—".into(), |v| v.to_string())}
                                                            </td>
                                                            <td class="text-xs">{budget}</td>
                                                            <td class="tabular-nums text-xs">
                                                                {format!(
                                                                    "{} tokens · {}",
                                                                    compact(l.used_tokens as f64),
                                                                    Metric::Cost.show(l.used_usd),
                                                                )}
                                                            </td>
                                                            <td>
                                                                {if l.keys_suspended {
                                                                    view! { <span class="badge badge-bad">"suspended"</span> }
                                                                } else {
                                                                    view! { <span class="badge badge-ok">"active"</span> }
                                                                }}
                                                            </td>
                                                            <td>
                                                                <button
                                                                    type="button"
                                                                    class="btn-secondary"
                                                                    on:click=move |_| selected.set(Some(edit.clone()))
                                                                >
                                                                    "Edit"
                                                                </button>
                                                            </td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                </section>
                            }
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
fn LimitsEditor(
    limits: LimitsView,
    save: ServerAction<SetLimits>,
    selected: RwSignal<Option<LimitsView>>,
) -> impl IntoView {
    let num = |v: Option<String>| RwSignal::new(v.unwrap_or_default());
    let rpm = num(limits.rpm.map(|v| v.to_string()));
    let tpm = num(limits.tpm.map(|v| v.to_string()));
    let tokens = num(limits.budget_tokens.map(|v| v.to_string()));
    let usd = num(limits.budget_usd.clone());
    let period = RwSignal::new(limits.budget_period.clone());
    let suspended = RwSignal::new(limits.keys_suspended);
    let user_id = limits.user_id.clone();
    let result = Signal::derive(move || save.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SetLimits {
            form: LimitsForm {
                user_id: user_id.clone(),
                rpm: rpm.get_untracked(),
                tpm: tpm.get_untracked(),
                budget_tokens: tokens.get_untracked(),
                budget_usd: usd.get_untracked(),
                budget_period: period.get_untracked(),
                keys_suspended: suspended.get_untracked(),
            },
        });
    };
    view! {
        <form
            class="card mb-6 space-y-4"
            on:submit=submit
            aria-label=format!("Limits of {}", limits.username)
            novalidate=true
        >
            <div class="flex items-center justify-between">
                <h2 class="text-lg font-semibold">{format!("Limits of {}", limits.username)}</h2>
                <button type="button" class="btn-secondary" on:click=move |_| selected.set(None)>
                    "Close"
                </button>
            </div>
            <div class="grid gap-4 md:grid-cols-3">
                <Field
                    name="rpm"
                    label="Requests per minute"
                    value=rpm
                    hint="Empty: no limit."
                    error=field_error(result, "rpm")
                />
                <Field
                    name="tpm"
                    label="Tokens per minute"
                    value=tpm
                    hint="Empty: no limit."
                    error=field_error(result, "tpm")
                />
                <Select
                    name="budget_period"
                    label="Budget period"
                    value=period
                    error=field_error(result, "budget_period")
                    options=vec![
                        ("month".into(), "Per calendar month (UTC)".into()),
                        ("day".into(), "Per day (UTC)".into()),
                    ]
                />
                <Field
                    name="budget_tokens"
                    label="Token budget"
                    value=tokens
                    hint="Empty: no token budget."
                    error=field_error(result, "budget_tokens")
                />
                <Field
                    name="budget_usd"
                    label="Spending budget ($)"
                    value=usd
                    hint="Priced from each model's prices. Empty: none."
                    error=field_error(result, "budget_usd")
                />
            </div>
            <label class="flex items-center gap-2 text-sm">
                <input
                    type="checkbox"
                    name="keys_suspended"
                    prop:checked=move || suspended.get()
                    on:change=move |ev| suspended.set(event_target_checked(&ev))
                />
                "Suspend this user's API keys (personal and runtime)"
            </label>
            <ErrorNotice error=form_error(result) />
            {move || {
                matches!(result.get(), Some(Ok(_)))
                    .then(|| {
                        view! {
                            <SuccessNotice>
                                "Saved. Every gateway applies it at once."
                            </SuccessNotice>
                        }
                    })
            }}
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save limits"
            </button>
        </form>
    }
}
