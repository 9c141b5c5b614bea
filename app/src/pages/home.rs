use crate::components::status::StatusPanel;
use leptos::prelude::*;
use leptos_meta::Title;

/// The overview: what ClawLoops is and how the installation is doing.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="Overview" />
        <header class="mb-8">
            <h1 class="text-2xl font-bold tracking-tight">"Overview"</h1>
            <p class="mt-2 max-w-2xl text-slate-600 dark:text-slate-400">
                "ClawLoops gives every member of your team their own isolated OpenClaw agent runtime, \
                 with one place to govern users, runtimes and model access."
            </p>
        </header>
        <StatusPanel />
    }
}
