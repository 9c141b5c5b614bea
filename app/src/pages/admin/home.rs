use super::{AdminNav, AuditTable};
use crate::api::admin::get_admin_overview;
use crate::components::auth::RequireUser;
use crate::components::status::StatusPanel;
use crate::components::ui::{ErrorNotice, Loading, PageHeader};
use leptos::prelude::*;
use leptos_meta::Title;

/// Admin home: people, invitations, recent events and the system's health.
#[component]
pub fn AdminHomePage() -> impl IntoView {
    view! {
        <Title text="Administration" />
        <RequireUser admin=true>
            <PageHeader
                title="Administration".into()
                subtitle="People, invitations and the health of this installation."
            />
            <AdminNav />
            <Overview />
            <div class="mt-8">
                <StatusPanel />
            </div>
        </RequireUser>
    }
}

#[component]
fn Overview() -> impl IntoView {
    let overview = Resource::new(|| (), |()| get_admin_overview());
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => {
                        view! {
                            {(!o.runtime_alerts.is_empty())
                                .then(|| {
                                    view! {
                                        <section
                                            role="alert"
                                            class="notice notice-error mb-6"
                                            aria-label="Runtimes needing attention"
                                        >
                                            <p class="font-medium">
                                                {format!(
                                                    "{} runtime(s) need attention",
                                                    o.runtime_alerts.len(),
                                                )}
                                            </p>
                                            <ul class="mt-1 list-disc pl-5">
                                                {o
                                                    .runtime_alerts
                                                    .iter()
                                                    .map(|(name, _, message)| {
                                                        view! {
                                                            <li>
                                                                <strong>{name.clone()}</strong>
                                                                ": "
                                                                {message.clone()}
                                                            </li>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </ul>
                                            <a class="link" href="/admin/runtimes">
                                                "Open the runtimes page"
                                            </a>
                                        </section>
                                    }
                                })}
                            <div class="grid gap-4 sm:grid-cols-2 lg:grid-cols-4">
                                <Stat
                                    label="Active users"
                                    value=o.users_active
                                    href="/admin/users?status=active"
                                />
                                <Stat
                                    label="Disabled users"
                                    value=o.users_disabled
                                    href="/admin/users?status=disabled"
                                />
                                <Stat
                                    label="Pending invitations"
                                    value=o.invitations_pending
                                    href="/admin/invitations?status=pending"
                                />
                                <Stat
                                    label="Expiring within a day"
                                    value=o.invitations_expiring
                                    href="/admin/invitations?status=pending"
                                />
                            </div>
                            <section class="card mt-6" aria-labelledby="recent-heading">
                                <div class="mb-2 flex items-center justify-between">
                                    <h2 id="recent-heading" class="text-lg font-semibold">
                                        "Recent events"
                                    </h2>
                                    <a class="link text-sm" href="/admin/audit">
                                        "Full audit log"
                                    </a>
                                </div>
                                <AuditTable rows=o.recent_security />
                            </section>
                        }
                            .into_any()
                    }
                    Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Stat(label: &'static str, value: i64, href: &'static str) -> impl IntoView {
    view! {
        <a
            href=href
            class="card block hover:border-indigo-400"
            aria-label=format!("{label}: {value}")
        >
            <p class="text-sm text-slate-500 dark:text-slate-400">{label}</p>
            <p class="mt-1 text-3xl font-semibold tabular-nums">{value}</p>
        </a>
    }
}
