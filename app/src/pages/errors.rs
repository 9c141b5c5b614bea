//! The pages people land on when they may not go further.

use leptos::prelude::*;
use leptos_meta::Title;

/// 403 content, shown in place of an admin page to a non-admin.
#[component]
pub fn ForbiddenView() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(http::StatusCode::FORBIDDEN);
    }
    view! {
        <Title text="No access" />
        <section class="mx-auto max-w-xl py-16 text-center">
            <p class="text-sm font-semibold tracking-wide text-indigo-600 uppercase dark:text-indigo-400">
                "Error 403"
            </p>
            <h1 class="mt-2 text-3xl font-bold tracking-tight">
                "You do not have access to this page"
            </h1>
            <p class="mt-4 text-slate-600 dark:text-slate-400">
                "This part of ClawLoops is for administrators. If you need it, ask one of them."
            </p>
            <a href="/" class="btn-primary mt-8 inline-flex">
                "Back to your home page"
            </a>
        </section>
    }
}

/// Shown once to a user whose account was disabled (their session has just ended).
#[component]
pub fn DisabledPage() -> impl IntoView {
    view! {
        <Title text="Account disabled" />
        <section class="mx-auto max-w-xl py-16 text-center">
            <p class="text-sm font-semibold tracking-wide text-red-600 uppercase dark:text-red-400">
                "Account disabled"
            </p>
            <h1 class="mt-2 text-3xl font-bold tracking-tight">"Your account has been disabled"</h1>
            <p class="mt-4 text-slate-600 dark:text-slate-400">
                "You have been signed out. An administrator can enable your account again; \
                 until then you cannot sign in."
            </p>
            <a href="/login" class="btn-secondary mt-8 inline-flex">
                "Go to the sign-in page"
            </a>
        </section>
    }
}
