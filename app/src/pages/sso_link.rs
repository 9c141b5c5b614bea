//! Linking a single sign-on identity to the existing account with the same e-mail address:
//! the account's own password confirms it (nothing is linked silently).

use crate::AppError;
use crate::api::sso::{ConfirmSsoLink, LinkPreview, preview_sso_link};
use crate::components::auth::reload_to;
use crate::components::ui::{ErrorNotice, Field, Loading, field_error, form_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// `/sso/link?token=…`: who would be linked, and the password form.
#[component]
pub fn SsoLinkPage() -> impl IntoView {
    let query = use_query_map();
    let token = Memo::new(move |_| query.with(|q| q.get("token").unwrap_or_default()));
    let preview = Resource::new(move || token.get(), preview_sso_link);
    view! {
        <Title text="Link your sign-in" />
        <section class="mx-auto mt-8 max-w-md">
            <h1 class="text-2xl font-bold tracking-tight">"Link your sign-in"</h1>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match preview.await {
                        Ok(link) => {
                            view! { <LinkForm token=token.get_untracked() link /> }.into_any()
                        }
                        Err(error) => view! { <DeadLink error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn DeadLink(error: AppError) -> impl IntoView {
    view! {
        <div class="card mt-6 space-y-4">
            <ErrorNotice error=Some(error) />
            <p class="text-sm">
                <a class="link" href="/login">
                    "Back to sign-in"
                </a>
            </p>
        </div>
    }
}

#[component]
fn LinkForm(token: String, link: LinkPreview) -> impl IntoView {
    let password = RwSignal::new(String::new());
    let confirm = ServerAction::<ConfirmSsoLink>::new();
    let result = Signal::derive(move || confirm.value().get());
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            reload_to("/");
        }
    });
    let token = StoredValue::new(token);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        confirm.dispatch(ConfirmSsoLink {
            token: token.get_value(),
            password: password.get_untracked(),
        });
    };
    view! {
        <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">
            {format!(
                "{} says you are {}. The ClawLoops account {} already uses that address. \
                 Enter that account's password to sign in with {} from now on.",
                link.provider,
                link.email,
                link.username,
                link.provider,
            )}
        </p>
        <form class="card mt-6 space-y-4" on:submit=submit novalidate>
            <ErrorNotice error=form_error(result) />
            <Field
                name="password"
                label="Password"
                kind="password"
                value=password
                autocomplete="current-password"
                required=true
                autofocus=true
                error=field_error(result, "password")
            />
            <button
                type="submit"
                class="btn-primary w-full justify-center"
                disabled=move || confirm.pending().get()
            >
                {move || if confirm.pending().get() { "Linking…" } else { "Link and sign in" }}
            </button>
            <p class="text-sm">
                <a class="link" href="/login">
                    "Not you? Back to sign-in"
                </a>
            </p>
        </form>
    }
}
