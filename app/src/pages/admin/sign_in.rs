//! `/admin/sign-in`: the single sign-on providers (read-only: they come from the settings, and
//! their secrets are never shown) and who may still sign in with a password.

use super::AdminNav;
use crate::api::sso::{
    PasswordFor, ProviderView, SetPasswordPolicy, SignInSetup, sign_in_settings,
};
use crate::components::auth::RequireUser;
use crate::components::form::SaveOutcome;
use crate::components::format::utc;
use crate::components::ui::{Empty, ErrorNotice, Loading, PageHeader, Select, field_error};
use leptos::prelude::*;
use leptos_meta::Title;

/// `/admin/sign-in`.
#[component]
pub fn SignInAdminPage() -> impl IntoView {
    let save = ServerAction::<SetPasswordPolicy>::new();
    let setup = Resource::new(move || save.version().get(), |_| sign_in_settings());
    view! {
        <Title text="Sign-in" />
        <RequireUser admin=true>
            <PageHeader
                title="Sign-in".into()
                subtitle="How people sign in: single sign-on with your identity provider (set in the settings file) and, unless you turn it off, their ClawLoops password."
            />
            <AdminNav />
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match setup.await {
                        Ok(setup) => view! { <SetupView setup save /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </RequireUser>
    }
}

#[component]
fn SetupView(setup: SignInSetup, save: ServerAction<SetPasswordPolicy>) -> impl IntoView {
    let providers = setup.providers.clone();
    view! {
        <section class="card space-y-3" aria-labelledby="providers-heading">
            <h2 id="providers-heading" class="text-lg font-semibold">
                "Single sign-on providers"
            </h2>
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Set in the settings file ([[sso_providers]]) or CLAWLOOPS_SSO_PROVIDERS; see docs/sso.md. Register each redirect URI below at its provider."
            </p>
            {if providers.is_empty() {
                view! {
                    <Empty text="No provider is configured: everyone signs in with a password." />
                }
                    .into_any()
            } else {
                providers
                    .into_iter()
                    .map(|p| view! { <ProviderCard p /> })
                    .collect_view()
                    .into_any()
            }}
        </section>
        <PolicyForm setup save />
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_owned()
    } else {
        items.join(", ")
    }
}

#[component]
fn ProviderCard(p: ProviderView) -> impl IntoView {
    let admission = if p.admission == "invited" {
        "Only people with a pending invitation for their verified address"
    } else {
        "Anyone who passes the domain and group rules gets an account on first sign-in"
    };
    let rows = [
        ("Button", format!("Sign in with {}", p.name)),
        ("Id", p.id.clone()),
        ("Issuer", p.issuer.clone()),
        ("Client id", p.client_id.clone()),
        (
            "Client secret",
            if p.has_secret {
                "set (never shown)"
            } else {
                "none: a public client (PKCE only)"
            }
            .to_owned(),
        ),
        ("Redirect URI", p.callback_url.clone()),
        ("New accounts", admission.to_owned()),
        ("Allowed domains", list(&p.allowed_domains)),
        ("Allowed groups", list(&p.allowed_groups)),
        ("Admin groups", list(&p.admin_groups)),
    ];
    view! {
        <div
            class="rounded-lg border border-slate-200 p-4 dark:border-slate-800"
            data-provider=p.id
        >
            <h3 class="font-semibold">{p.name.clone()}</h3>
            <dl class="mt-2 grid gap-x-4 gap-y-1 text-sm md:grid-cols-[12rem_1fr]">
                {rows
                    .into_iter()
                    .map(|(label, value)| {
                        view! {
                            <dt class="text-slate-500">{label}</dt>
                            <dd class="break-all font-mono text-xs md:text-sm">{value}</dd>
                        }
                    })
                    .collect_view()}
            </dl>
        </div>
    }
}

#[component]
fn PolicyForm(setup: SignInSetup, save: ServerAction<SetPasswordPolicy>) -> impl IntoView {
    let only_break_glass = RwSignal::new(setup.password_for == PasswordFor::BreakGlass);
    let first_admin = setup.admins.first().map(|(id, _)| id.clone());
    let break_glass = RwSignal::new(
        setup
            .break_glass
            .clone()
            .or(first_admin)
            .unwrap_or_default(),
    );
    let result = Signal::derive(move || save.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SetPasswordPolicy {
            password_for: if only_break_glass.get_untracked() {
                PasswordFor::BreakGlass
            } else {
                PasswordFor::Everyone
            },
            break_glass: break_glass.get_untracked(),
        });
    };
    let no_sso = setup.providers.is_empty();
    let status = match (&setup.password_for, &setup.break_glass_name) {
        (PasswordFor::BreakGlass, Some(name)) => format!(
            "Now: only {name} (break-glass) signs in with a password; everyone else uses single sign-on."
        ),
        _ => "Now: everyone may sign in with a password.".to_owned(),
    };
    let changed = setup
        .updated_by
        .clone()
        .map(|by| format!("Last changed by {by}, {}.", utc(setup.updated_at)));
    view! {
        <form
            class="card mt-6 space-y-4"
            on:submit=submit
            aria-label="Password sign-in"
            novalidate=true
        >
            <div>
                <h2 class="text-lg font-semibold">"Password sign-in"</h2>
                <p class="text-sm text-slate-600 dark:text-slate-400" data-testid="policy-status">
                    {status}
                </p>
                {changed.map(|c| view! { <p class="text-xs text-slate-500">{c}</p> })}
            </div>
            <fieldset class="space-y-2">
                <legend class="sr-only">"Who may sign in with a password"</legend>
                <label class="flex items-center gap-2">
                    <input
                        type="radio"
                        name="password_for"
                        prop:checked=move || !only_break_glass.get()
                        on:change=move |_| only_break_glass.set(false)
                    />
                    "Everyone"
                </label>
                <label class="flex items-center gap-2">
                    <input
                        type="radio"
                        name="password_for"
                        disabled=no_sso
                        prop:checked=move || only_break_glass.get()
                        on:change=move |_| only_break_glass.set(true)
                    />
                    "Only the break-glass admin (everyone else uses single sign-on)"
                </label>
            </fieldset>
            <Select
                name="break_glass"
                label="Break-glass admin"
                value=break_glass
                options=setup.admins.clone()
                hint="Keeps a way in when the identity provider is down. This admin can't be deleted, disabled or demoted while named."
                error=field_error(result, "break_glass")
            />
            <SaveOutcome result saved="Saved. Sign-ins follow the new policy from now on." />
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save"
            </button>
        </form>
    }
}
