use crate::AppError;
use crate::api::invitations::{AcceptInvitation, InvitationPreview, preview_invitation};
use crate::components::auth::reload_to;
use crate::components::format;
use crate::components::ui::{ErrorNotice, Field, Loading, field_error, form_error};
use crate::model::{PASSWORD_POLICY, USERNAME_POLICY};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// Accepting an invitation: see who invited you, choose a username and password.
#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = Memo::new(move |_| params.with(|p| p.get("token").unwrap_or_default()));
    let preview = Resource::new(move || token.get(), preview_invitation);
    view! {
        <Title text="Accept invitation" />
        <section class="mx-auto mt-8 max-w-md">
            <h1 class="text-2xl font-bold tracking-tight">"Join ClawLoops"</h1>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match preview.await {
                        Ok(invitation) => {
                            view! { <AcceptForm token=token.get_untracked() invitation /> }
                                .into_any()
                        }
                        Err(error) => view! { <DeadInvitation error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn DeadInvitation(error: AppError) -> impl IntoView {
    view! {
        <div class="card mt-6 space-y-4">
            <ErrorNotice error=Some(error) />
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Already have an account? " <a class="link" href="/login">
                    "Sign in"
                </a>
            </p>
        </div>
    }
}

#[component]
fn AcceptForm(token: String, invitation: InvitationPreview) -> impl IntoView {
    let pinned = invitation.username.clone();
    let username = RwSignal::new(pinned.clone().unwrap_or_default());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let mismatch = RwSignal::new(None::<String>);
    let accept = ServerAction::<AcceptInvitation>::new();
    let result = Signal::derive(move || accept.value().get());
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            reload_to("/");
        }
    });
    let token = StoredValue::new(token);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if password.get_untracked() != confirm.get_untracked() {
            mismatch.set(Some("The two passwords differ.".into()));
            return;
        }
        mismatch.set(None);
        accept.dispatch(AcceptInvitation {
            token: token.get_value(),
            username: username.get_untracked(),
            password: password.get_untracked(),
        });
    };
    let password_error = Signal::derive(move || field_error(result, "password").get());
    let inviter = invitation
        .invited_by
        .clone()
        .unwrap_or_else(|| "An administrator".into());
    view! {
        <p class="mt-2 text-slate-600 dark:text-slate-400">
            {inviter} " invited you as " <strong>{invitation.role.label()}</strong> ". "
            "This invitation is valid until " {format::utc(invitation.expires_at)} "."
        </p>
        <form class="card mt-6 space-y-4" on:submit=submit novalidate>
            <ErrorNotice error=form_error(result) />
            {match pinned {
                Some(_) => {
                    view! {
                        <Field
                            name="username"
                            label="Username"
                            value=username
                            readonly=true
                            hint="Chosen by the administrator who invited you."
                            error=field_error(result, "username")
                        />
                    }
                        .into_any()
                }
                None => {
                    view! {
                        <Field
                            name="username"
                            label="Username"
                            value=username
                            autocomplete="username"
                            required=true
                            autofocus=true
                            hint=USERNAME_POLICY
                            error=field_error(result, "username")
                        />
                    }
                        .into_any()
                }
            }}
            <Field
                name="password"
                label="Password"
                kind="password"
                value=password
                autocomplete="new-password"
                required=true
                hint=PASSWORD_POLICY
                error=password_error
            />
            <Field
                name="confirm"
                label="Password again"
                kind="password"
                value=confirm
                autocomplete="new-password"
                required=true
                error=Signal::derive(move || mismatch.get())
            />
            <button
                type="submit"
                class="btn-primary w-full justify-center"
                disabled=move || accept.pending().get()
            >
                {move || {
                    if accept.pending().get() {
                        "Creating your account…"
                    } else {
                        "Create my account"
                    }
                }}
            </button>
        </form>
    }
}
