//! `/admin/limits`: the default budget for everyone, and each user's rate limits, budget
//! (model requests and runtime time together), exemption, reset and key suspension.

use super::AdminNav;
use crate::api::budget::{ResetBudget, SetBudgetDefault, get_budget_default};
use crate::api::models::{LimitsForm, LimitsView, SetLimits, list_limits};
use crate::components::auth::RequireUser;
use crate::components::chart::{Metric, compact};
use crate::components::form::{Checkbox, SaveOutcome};
use crate::components::ui::{
    ConfirmButton, ErrorNotice, Field, Loading, PageHeader, Select, field_error,
};
use leptos::prelude::*;
use leptos_meta::Title;

/// The periods a budget can have.
fn periods() -> Vec<(String, String)> {
    vec![
        ("month".into(), "Per calendar month (UTC)".into()),
        ("week".into(), "Per week, Monday to Sunday (UTC)".into()),
        ("day".into(), "Per day (UTC)".into()),
    ]
}

/// What applies to a user, in words: "$5.00 per week (default)", "exempt", "none".
fn budget_words(l: &LimitsView) -> String {
    if l.budget_exempt {
        return "exempt".into();
    }
    let parts: Vec<String> = [
        l.budget_tokens
            .map(|t| format!("{} tokens", compact(t as f64))),
        l.effective_usd.map(|d| Metric::Cost.show(d)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return "none".into();
    }
    format!(
        "{} per {}{}",
        parts.join(" and "),
        l.effective_period,
        if l.from_default { " (default)" } else { "" }
    )
}

/// What is used: "$4.20 (84%) · runtime time $1.10 · 1.2k tokens".
fn used_words(l: &LimitsView) -> String {
    let percent = l
        .effective_usd
        .filter(|d| *d > 0.0 && !l.budget_exempt)
        .map(|d| format!(" ({:.0}%)", l.used_usd * 100.0 / d))
        .unwrap_or_default();
    format!(
        "{}{percent} · runtime time {} · {} tokens",
        Metric::Cost.show(l.used_usd),
        Metric::Cost.show(l.used_compute_usd),
        compact(l.used_tokens as f64)
    )
}

/// `/admin/limits`: each user's rate limits, budget and key suspension.
#[component]
pub fn LimitsPage() -> impl IntoView {
    let save = ServerAction::<SetLimits>::new();
    let reset = ServerAction::<ResetBudget>::new();
    let refresh = RwSignal::new(0u32);
    let limits = Resource::new(move || refresh.get(), |_| list_limits());
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(_))) || matches!(reset.value().get(), Some(Ok(_))) {
            refresh.update(|n| *n += 1);
        }
    });
    let selected = RwSignal::new(None::<LimitsView>);
    view! {
        <Title text="Limits" />
        <RequireUser admin=true>
            <PageHeader
                title="Limits and budgets".into()
                subtitle="One budget per user for model requests and runtime time together, per day, week or month; requests and tokens per minute; key suspension. Every replica enforces them: at 100% the gateway refuses requests and the runtime is stopped, its workspace kept."
            />
            <AdminNav />
            <DefaultBudget refresh />
            <ErrorNotice error=Signal::derive(move || reset.value().get().and_then(Result::err)) />
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
                                                    let budget = budget_words(&l);
                                                    let used = used_words(&l);
                                                    let user_id = l.user_id.clone();
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
                                                            <td class="tabular-nums text-xs" data-used="">
                                                                {used}
                                                            </td>
                                                            <td>
                                                                {if l.keys_suspended {
                                                                    view! { <span class="badge badge-bad">"suspended"</span> }
                                                                } else {
                                                                    view! { <span class="badge badge-ok">"active"</span> }
                                                                }}
                                                            </td>
                                                            <td class="flex flex-wrap gap-2">
                                                                <button
                                                                    type="button"
                                                                    class="btn-secondary"
                                                                    on:click=move |_| selected.set(Some(edit.clone()))
                                                                >
                                                                    "Edit"
                                                                </button>
                                                                <ConfirmButton
                                                                    label="Reset period"
                                                                    confirm_label="Start this period over"
                                                                    disabled=reset.pending()
                                                                    on_confirm=move || {
                                                                        reset
                                                                            .dispatch(ResetBudget {
                                                                                user_id: user_id.clone(),
                                                                            });
                                                                    }
                                                                />
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
    let exempt = RwSignal::new(limits.budget_exempt);
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
                budget_exempt: exempt.get_untracked(),
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
                    options=periods()
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
                    hint="Model requests and runtime time together. Empty: the default budget."
                    error=field_error(result, "budget_usd")
                />
            </div>
            <Checkbox
                name="keys_suspended"
                label="Suspend this user's API keys (personal and runtime)"
                value=suspended
            />
            <Checkbox
                name="budget_exempt"
                label="Exempt from budgets (their own and the default): use is still recorded"
                value=exempt
            />
            <SaveOutcome result saved="Saved. Every gateway applies it at once." />
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save limits"
            </button>
        </form>
    }
}

/// The default spending budget, for everyone without one of their own.
#[component]
fn DefaultBudget(refresh: RwSignal<u32>) -> impl IntoView {
    let save = ServerAction::<SetBudgetDefault>::new();
    let current = Resource::new(|| (), |_| get_budget_default());
    let usd = RwSignal::new(String::new());
    let period = RwSignal::new("month".to_owned());
    Effect::new(move |_| {
        if let Some(Ok(d)) = current.get() {
            usd.set(d.usd.unwrap_or_default());
            period.set(d.period);
        }
    });
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(_))) {
            refresh.update(|n| *n += 1);
        }
    });
    let result = Signal::derive(move || save.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SetBudgetDefault {
            usd: usd.get_untracked(),
            period: period.get_untracked(),
        });
    };
    view! {
        <form
            class="card mb-6 space-y-4"
            on:submit=submit
            aria-label="Default budget"
            novalidate=true
        >
            <div>
                <h2 class="text-lg font-semibold">"Default budget"</h2>
                <p class="text-sm text-slate-600 dark:text-slate-400">
                    "Applies to everyone without a spending budget of their own: model requests (priced per model) and runtime time (priced per size class on the Models page) together. Users see a warning at 80%."
                </p>
            </div>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    current.await.err().map(|e| view! { <ErrorNotice error=Some(e) /> })
                })}
            </Transition>
            <div class="grid gap-4 md:grid-cols-3">
                <Field
                    name="default_usd"
                    label="Budget ($)"
                    value=usd
                    hint="Empty: no default budget."
                    error=field_error(result, "usd")
                />
                <Select
                    name="default_period"
                    label="Period"
                    value=period
                    error=field_error(result, "period")
                    options=periods()
                />
            </div>
            <SaveOutcome result saved="Saved. Every gateway applies it at once." />
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save default budget"
            </button>
        </form>
    }
}
