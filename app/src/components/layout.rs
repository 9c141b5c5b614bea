use super::auth::{reload_to, use_auth};
use super::theme::ThemeToggle;
use crate::api::auth::Logout;
use crate::model::Role;
use leptos::prelude::*;
use leptos_router::components::A;

/// The frame of every page: header with navigation, account menu and theme, content, footer.
#[component]
pub fn AppShell(children: Children) -> impl IntoView {
    view! {
        <div class="flex min-h-screen flex-col">
            <a
                href="#main"
                class="sr-only focus:not-sr-only focus:absolute focus:top-2 focus:left-2 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:text-slate-900"
            >
                "Skip to content"
            </a>
            <header class="border-b border-slate-200 bg-white/80 backdrop-blur dark:border-slate-800 dark:bg-slate-900/80">
                <div class="mx-auto flex h-14 w-full max-w-6xl items-center gap-4 px-4">
                    <a href="/" class="flex items-center gap-2 font-semibold tracking-tight">
                        <Logo />
                        <span>"ClawLoops"</span>
                    </a>
                    <MainNav />
                    <div class="ml-auto flex items-center gap-3">
                        <AccountMenu />
                        <ThemeToggle />
                    </div>
                </div>
            </header>
            <main id="main" class="mx-auto w-full max-w-6xl flex-1 px-4 py-8">
                {children()}
            </main>
            <footer class="border-t border-slate-200 py-4 text-center text-xs text-slate-500 dark:border-slate-800 dark:text-slate-500">
                "ClawLoops · self-hosted OpenClaw runtimes for teams"
            </footer>
        </div>
    }
}

#[component]
fn MainNav() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Transition>
            {move || Suspend::new(async move {
                let me = auth.me.await.ok().flatten().filter(|me| !me.must_change_password);
                me.map(|me| {
                    view! {
                        <nav aria-label="Main" class="flex items-center gap-1 text-sm">
                            <A href="/" exact=true attr:class="nav-link">
                                "Home"
                            </A>
                            <A href="/models" attr:class="nav-link">
                                "Models"
                            </A>
                            <A href="/usage" attr:class="nav-link">
                                "Usage"
                            </A>
                            {(me.role == Role::Admin)
                                .then(|| {
                                    view! {
                                        <A href="/admin" attr:class="nav-link">
                                            "Administration"
                                        </A>
                                    }
                                })}
                        </nav>
                    }
                })
            })}
        </Transition>
    }
}

#[component]
fn AccountMenu() -> impl IntoView {
    let auth = use_auth();
    let logout = ServerAction::<Logout>::new();
    Effect::new(move |_| {
        if matches!(logout.value().get(), Some(Ok(()))) {
            reload_to("/login");
        }
    });
    view! {
        <Transition>
            {move || Suspend::new(async move {
                auth.me
                    .await
                    .ok()
                    .flatten()
                    .map(|me| {
                        view! {
                            <div class="flex items-center gap-2 text-sm">
                                <a
                                    href="/account"
                                    class="nav-link"
                                    aria-label=format!("Your account ({})", me.username)
                                >
                                    {me.username.clone()}
                                </a>
                                <button
                                    type="button"
                                    class="btn-secondary"
                                    on:click=move |_| {
                                        logout.dispatch(Logout {});
                                    }
                                >
                                    "Sign out"
                                </button>
                            </div>
                        }
                    })
            })}
        </Transition>
    }
}

/// The ClawLoops mark: a loop with a claw notch.
#[component]
fn Logo() -> impl IntoView {
    view! {
        <svg
            viewBox="0 0 24 24"
            class="h-6 w-6 text-indigo-600 dark:text-indigo-400"
            aria-hidden="true"
        >
            <path
                fill="none"
                stroke="currentColor"
                stroke-width="2.2"
                stroke-linecap="round"
                d="M17.5 7.5a7 7 0 1 0 0 9M13 9l4.5-1.5L19 3"
            />
        </svg>
    }
}
