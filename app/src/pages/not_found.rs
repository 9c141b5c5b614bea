use leptos::prelude::*;
use leptos_meta::Title;

/// Shown for any path no route matches; answers HTTP 404.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Page not found" />
        <section class="mx-auto max-w-xl py-16 text-center">
            <p class="text-sm font-semibold tracking-wide text-indigo-600 uppercase dark:text-indigo-400">
                "Error 404"
            </p>
            <h1 class="mt-2 text-3xl font-bold tracking-tight">"Page not found"</h1>
            <p class="mt-4 text-slate-600 dark:text-slate-400">
                "There is nothing at this address. It may have moved, or the link may be mistyped."
            </p>
            <a href="/" class="btn-primary mt-8 inline-flex">
                "Back to the overview"
            </a>
        </section>
    }
}
