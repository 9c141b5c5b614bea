use crate::api::auth::Me;
use crate::components::auth::RequireUser;
use crate::components::breaker::BreakerBanner;
use crate::components::budget::BudgetBanner;
use crate::components::runtime::RuntimePanel;
use crate::components::ui::PageHeader;
use crate::model::Role;
use leptos::prelude::*;
use leptos_meta::Title;

/// A signed-in person's home page.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="Home" />
        <RequireUser>
            <HomeContent />
        </RequireUser>
    }
}

#[component]
fn HomeContent() -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = me.role == Role::Admin;
    view! {
        <PageHeader
            title=format!("Welcome, {}", me.username)
            subtitle="ClawLoops gives every member of your team their own isolated OpenClaw agent runtime, with one place to govern users, runtimes and model access."
        />
        <BreakerBanner />
        <BudgetBanner />
        <RuntimePanel />
        <div class="mt-6 grid gap-4 md:grid-cols-2">
            <a href="/account" class="card block hover:border-indigo-400">
                <h2 class="font-medium">"Your account"</h2>
                <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                    "Change your password and see where you are signed in."
                </p>
            </a>
            {admin
                .then(|| {
                    view! {
                        <a href="/admin" class="card block hover:border-indigo-400">
                            <h2 class="font-medium">"Administration"</h2>
                            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                                "Invite people, manage accounts, read the audit log and check the system."
                            </p>
                        </a>
                    }
                })}
        </div>
    }
}
