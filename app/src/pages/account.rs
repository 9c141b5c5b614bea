use crate::api::auth::{ChangePassword, Logout, Me, SignOutEverywhere, my_sessions};
use crate::components::auth::{RequireUser, reload_to};
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, ErrorNotice, Field, Loading, PageHeader, SuccessNotice, field_error, form_error,
};
use crate::model::PASSWORD_POLICY;
use leptos::prelude::*;
use leptos_meta::Title;

/// The account page: profile, password, sessions.
#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <Title text="Your account" />
        <RequireUser>
            <AccountContent />
        </RequireUser>
    }
}

#[component]
fn AccountContent() -> impl IntoView {
    let me = expect_context::<Me>();
    view! {
        <PageHeader title="Your account".into() subtitle=format!("Signed in as {}", me.username) />
        <div class="grid gap-6 lg:grid-cols-2">
            <section class="card space-y-3" aria-labelledby="profile-heading">
                <h2 id="profile-heading" class="text-lg font-semibold">
                    "Profile"
                </h2>
                <dl class="space-y-1.5 text-sm">
                    <div class="flex justify-between">
                        <dt class="text-slate-500">"Username"</dt>
                        <dd>{me.username.clone()}</dd>
                    </div>
                    <div class="flex justify-between">
                        <dt class="text-slate-500">"E-mail"</dt>
                        <dd>{me.email.clone().unwrap_or_else(|| "—".into())}</dd>
                    </div>
                    <div class="flex justify-between">
                        <dt class="text-slate-500">"Role"</dt>
                        <dd>{me.role.label()}</dd>
                    </div>
                </dl>
            </section>
            <PasswordForm forced=false />
            <div class="lg:col-span-2">
                <Sessions />
            </div>
        </div>
    }
}

/// The forced (or voluntary) password change page.
#[component]
pub fn PasswordPage() -> impl IntoView {
    view! {
        <Title text="Choose a new password" />
        <RequireUser password_change=true>
            <section class="mx-auto mt-4 max-w-md">
                <PasswordForm forced=true />
            </section>
        </RequireUser>
    }
}

#[component]
fn PasswordForm(forced: bool) -> impl IntoView {
    let me = expect_context::<Me>();
    let must = me.must_change_password;
    let current = RwSignal::new(String::new());
    let new_password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let mismatch = RwSignal::new(None::<String>);
    let change = ServerAction::<ChangePassword>::new();
    let result = Signal::derive(move || change.value().get());
    Effect::new(move |_| {
        if let Some(Ok(())) = result.get() {
            current.set(String::new());
            new_password.set(String::new());
            confirm.set(String::new());
            if forced {
                reload_to("/");
            }
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if new_password.get_untracked() != confirm.get_untracked() {
            mismatch.set(Some("The two new passwords differ.".into()));
            return;
        }
        mismatch.set(None);
        change.dispatch(ChangePassword {
            current: current.get_untracked(),
            new_password: new_password.get_untracked(),
        });
    };
    view! {
        <form class="card space-y-4" on:submit=submit novalidate aria-labelledby="password-heading">
            <h2 id="password-heading" class="text-lg font-semibold">
                {if forced { "Choose a new password" } else { "Change password" }}
            </h2>
            {(forced && must)
                .then(|| {
                    view! {
                        <p class="notice notice-warn">
                            "Your password was set by an administrator or is a one-time password. \
                             Choose your own before you continue."
                        </p>
                    }
                })}
            <ErrorNotice error=form_error(result) />
            {move || {
                matches!(result.get(), Some(Ok(())))
                    .then(|| {
                        view! {
                            <SuccessNotice>
                                "Password changed. Your other sessions were signed out."
                            </SuccessNotice>
                        }
                    })
            }}
            <Field
                name="current"
                label="Current password"
                kind="password"
                value=current
                autocomplete="current-password"
                required=true
                autofocus=forced
                error=field_error(result, "current")
            />
            <Field
                name="new_password"
                label="New password"
                kind="password"
                value=new_password
                autocomplete="new-password"
                required=true
                hint=PASSWORD_POLICY
                error=field_error(result, "new_password")
            />
            <Field
                name="confirm_password"
                label="New password again"
                kind="password"
                value=confirm
                autocomplete="new-password"
                required=true
                error=Signal::derive(move || mismatch.get())
            />
            <button type="submit" class="btn-primary" disabled=move || change.pending().get()>
                {move || if change.pending().get() { "Saving…" } else { "Change password" }}
            </button>
        </form>
    }
}

#[component]
fn Sessions() -> impl IntoView {
    let sessions = Resource::new(|| (), |()| my_sessions());
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    let logout = ServerAction::<Logout>::new();
    let revoke_keys = RwSignal::new(false);
    Effect::new(move |_| {
        if matches!(everywhere.value().get(), Some(Ok(_)))
            || matches!(logout.value().get(), Some(Ok(())))
        {
            reload_to("/login");
        }
    });
    view! {
        <section class="card space-y-3" aria-labelledby="sessions-heading">
            <div class="flex flex-wrap items-center justify-between gap-2">
                <h2 id="sessions-heading" class="text-lg font-semibold">
                    "Where you are signed in"
                </h2>
                <div class="flex gap-2">
                    <button
                        type="button"
                        class="btn-secondary"
                        on:click=move |_| {
                            logout.dispatch(Logout {});
                        }
                    >
                        "Sign out"
                    </button>
                    <ConfirmButton
                        label="Sign out everywhere"
                        confirm_label="Yes, sign out everywhere"
                        danger=true
                        disabled=Signal::derive(move || everywhere.pending().get())
                        on_confirm=move || {
                            everywhere
                                .dispatch(SignOutEverywhere {
                                    revoke_keys: Some(revoke_keys.get_untracked()),
                                });
                        }
                    />
                </div>
            </div>
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Signing out everywhere also restarts your workspace if it is running, so that connections opened from other browsers end."
            </p>
            <label class="flex items-center gap-2 text-sm">
                <input
                    type="checkbox"
                    class="h-4 w-4"
                    prop:checked=move || revoke_keys.get()
                    on:change=move |ev| revoke_keys.set(event_target_checked(&ev))
                />
                "Also revoke my personal API keys"
            </label>
            <ErrorNotice error=Signal::derive(move || {
                everywhere.value().get().and_then(Result::err)
            }) />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match sessions.await {
                        Ok(list) => {
                            view! {
                                <table class="table">
                                    <thead>
                                        <tr>
                                            <th>"Signed in"</th>
                                            <th>"Last used"</th>
                                            <th>"From"</th>
                                            <th>"Browser"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list
                                            .into_iter()
                                            .map(|s| {
                                                view! {
                                                    <tr>
                                                        <td>
                                                            {format::utc(s.signed_in_at)}
                                                            {s
                                                                .current
                                                                .then(|| {
                                                                    view! {
                                                                        <span class="badge badge-ok ml-2">"This browser"</span>
                                                                    }
                                                                })}
                                                        </td>
                                                        <td>{format::utc(s.last_used_at)}</td>
                                                        <td>{s.client_addr.unwrap_or_else(|| "—".into())}</td>
                                                        <td class="max-w-xs truncate" title=s.user_agent.clone()>
                                                            {s.user_agent.clone().unwrap_or_else(|| "—".into())}
                                                        </td>
                                                    </tr>
                                                }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
