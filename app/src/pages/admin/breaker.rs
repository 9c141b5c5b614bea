//! `/admin/breaker`: the runaway-agent breaker's rules and its recent trips, with resuming a
//! paused agent at once.

use super::AdminNav;
use crate::api::breaker::{
    BreakerOverview, BreakerRulesForm, ResumeAgent, SaveBreakerRules, TripView, get_breaker,
};
use crate::components::auth::RequireUser;
use crate::components::form::{Checkbox, SaveOutcome};
use crate::components::format::utc;
use crate::components::ui::{Empty, ErrorNotice, Field, Loading, PageHeader, field_error};
use leptos::prelude::*;
use leptos_meta::Title;

/// The form's inputs.
#[derive(Clone, Copy)]
struct RuleFields {
    enabled: RwSignal<bool>,
    spend_per_minute: RwSignal<String>,
    sustained_minutes: RwSignal<String>,
    requests_per_minute: RwSignal<String>,
    repeats: RwSignal<String>,
    repeat_window_secs: RwSignal<String>,
    errors: RwSignal<String>,
    error_window_secs: RwSignal<String>,
    cooldown_minutes: RwSignal<String>,
    include_personal_keys: RwSignal<bool>,
    webhook_url: RwSignal<String>,
}

impl RuleFields {
    fn new() -> Self {
        let text = || RwSignal::new(String::new());
        RuleFields {
            enabled: RwSignal::new(true),
            spend_per_minute: text(),
            sustained_minutes: text(),
            requests_per_minute: text(),
            repeats: text(),
            repeat_window_secs: text(),
            errors: text(),
            error_window_secs: text(),
            cooldown_minutes: text(),
            include_personal_keys: RwSignal::new(false),
            webhook_url: text(),
        }
    }

    fn load(self, f: &BreakerRulesForm) {
        self.enabled.set(f.enabled);
        self.spend_per_minute.set(f.spend_per_minute.clone());
        self.sustained_minutes.set(f.sustained_minutes.clone());
        self.requests_per_minute.set(f.requests_per_minute.clone());
        self.repeats.set(f.repeats.clone());
        self.repeat_window_secs.set(f.repeat_window_secs.clone());
        self.errors.set(f.errors.clone());
        self.error_window_secs.set(f.error_window_secs.clone());
        self.cooldown_minutes.set(f.cooldown_minutes.clone());
        self.include_personal_keys.set(f.include_personal_keys);
        self.webhook_url.set(f.webhook_url.clone());
    }

    fn read(self) -> BreakerRulesForm {
        BreakerRulesForm {
            enabled: self.enabled.get_untracked(),
            spend_per_minute: self.spend_per_minute.get_untracked(),
            sustained_minutes: self.sustained_minutes.get_untracked(),
            requests_per_minute: self.requests_per_minute.get_untracked(),
            repeats: self.repeats.get_untracked(),
            repeat_window_secs: self.repeat_window_secs.get_untracked(),
            errors: self.errors.get_untracked(),
            error_window_secs: self.error_window_secs.get_untracked(),
            cooldown_minutes: self.cooldown_minutes.get_untracked(),
            include_personal_keys: self.include_personal_keys.get_untracked(),
            webhook_url: self.webhook_url.get_untracked(),
        }
    }
}

/// `/admin/breaker`.
#[component]
pub fn BreakerPage() -> impl IntoView {
    let save = ServerAction::<SaveBreakerRules>::new();
    let resume = ServerAction::<ResumeAgent>::new();
    let refresh = RwSignal::new(0u32);
    let overview = Resource::new(move || refresh.get(), |_| get_breaker());
    let fields = RuleFields::new();
    let loaded = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(o)) = overview.get()
            && !loaded.get_untracked()
        {
            fields.load(&o.rules);
            loaded.set(true);
        }
    });
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(_))) || matches!(resume.value().get(), Some(Ok(_)))
        {
            refresh.update(|n| *n += 1);
        }
    });
    view! {
        <Title text="Runaway-agent breaker" />
        <RequireUser admin=true>
            <PageHeader
                title="Runaway-agent breaker".into()
                subtitle="Stops an agent that loops before it empties a budget: when a rule trips, the runtime's model key is refused and its runtime paused in place (memory and workspace kept) within a second, on every replica. Its owner can resume after the cooldown; you can resume it now."
            />
            <AdminNav />
            <RulesForm fields save />
            <section class="card mt-6 space-y-3" aria-labelledby="trips-heading">
                <h2 id="trips-heading" class="text-lg font-semibold">
                    "Recent trips"
                </h2>
                <ErrorNotice error=Signal::derive(move || {
                    resume.value().get().and_then(Result::err)
                }) />
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        match overview.await {
                            Ok(BreakerOverview { trips, .. }) if trips.is_empty() => {
                                view! { <Empty text="The breaker has not tripped." /> }.into_any()
                            }
                            Ok(o) => view! { <TripTable trips=o.trips resume /> }.into_any(),
                            Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </RequireUser>
    }
}

#[component]
fn RulesForm(fields: RuleFields, save: ServerAction<SaveBreakerRules>) -> impl IntoView {
    let result = Signal::derive(move || save.value().get().map(|r| r.map(|_| ())));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SaveBreakerRules {
            form: fields.read(),
        });
    };
    view! {
        <form class="card space-y-4" on:submit=submit aria-label="Breaker rules" novalidate=true>
            <div>
                <h2 class="text-lg font-semibold">"Rules"</h2>
                <p class="text-sm text-slate-600 dark:text-slate-400">
                    "Any one rule trips the breaker. Leave a limit empty to turn its rule off. Runtime keys always count; personal keys used from outside only when you include them."
                </p>
            </div>
            <Checkbox name="enabled" label="The breaker is on" value=fields.enabled />
            <div class="grid gap-4 md:grid-cols-2">
                <Field
                    name="spend_per_minute"
                    label="Spending per minute over ($)"
                    value=fields.spend_per_minute
                    error=field_error(result, "spend_per_minute")
                />
                <Field
                    name="sustained_minutes"
                    label="…for this many minutes in a row"
                    value=fields.sustained_minutes
                    error=field_error(result, "sustained_minutes")
                />
                <Field
                    name="requests_per_minute"
                    label="Model requests in any minute over"
                    value=fields.requests_per_minute
                    error=field_error(result, "requests_per_minute")
                />
                <div></div>
                <Field
                    name="repeats"
                    label="The same request this many times"
                    value=fields.repeats
                    hint="Requests count as the same when only case, spacing or numbers differ."
                    error=field_error(result, "repeats")
                />
                <Field
                    name="repeat_window_secs"
                    label="…within seconds"
                    value=fields.repeat_window_secs
                    error=field_error(result, "repeat_window_secs")
                />
                <Field
                    name="errors"
                    label="Failed requests this many times"
                    value=fields.errors
                    error=field_error(result, "errors")
                />
                <Field
                    name="error_window_secs"
                    label="…within seconds"
                    value=fields.error_window_secs
                    error=field_error(result, "error_window_secs")
                />
                <Field
                    name="cooldown_minutes"
                    label="Owners may resume after (minutes)"
                    value=fields.cooldown_minutes
                    error=field_error(result, "cooldown_minutes")
                />
                <Field
                    name="webhook_url"
                    label="Webhook (optional)"
                    value=fields.webhook_url
                    hint="Each trip is posted here as JSON: user, rule, what was seen, when."
                    error=field_error(result, "webhook_url")
                />
            </div>
            <Checkbox
                name="include_personal_keys"
                label="Count personal keys too (and refuse them on a trip)"
                value=fields.include_personal_keys
            />
            <SaveOutcome result saved="Saved. Every replica applies the rules within a second." />
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save rules"
            </button>
        </form>
    }
}

#[component]
fn TripTable(trips: Vec<TripView>, resume: ServerAction<ResumeAgent>) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>"When"</th>
                        <th>"User"</th>
                        <th>"What it saw"</th>
                        <th>"Key"</th>
                        <th>"State"</th>
                        <th>
                            <span class="sr-only">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {trips
                        .into_iter()
                        .map(|t| {
                            let open = t.open();
                            let user_id = t.user_id.clone();
                            let state = match (&t.resumed_at, &t.resumed_by) {
                                (Some(at), Some(by)) => format!("resumed by {by}, {}", utc(*at)),
                                _ => "paused".to_owned(),
                            };
                            view! {
                                <tr data-trip=t.username.clone()>
                                    <td class="whitespace-nowrap text-xs">{utc(t.tripped_at)}</td>
                                    <td>{t.username.clone()}</td>
                                    <td class="text-sm">{t.words.clone()}</td>
                                    <td class="text-xs">{t.key_kind.clone()}</td>
                                    <td>
                                        <span class=if open {
                                            "badge badge-bad"
                                        } else {
                                            "badge badge-ok"
                                        }>{state}</span>
                                    </td>
                                    <td>
                                        {open
                                            .then(|| {
                                                let user_id = user_id.clone();
                                                view! {
                                                    <button
                                                        type="button"
                                                        class="btn-secondary"
                                                        disabled=move || resume.pending().get()
                                                        on:click=move |_| {
                                                            resume
                                                                .dispatch(ResumeAgent {
                                                                    user_id: user_id.clone(),
                                                                });
                                                        }
                                                    >
                                                        "Resume now"
                                                    </button>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
