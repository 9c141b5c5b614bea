//! The live status panel on the overview page.

use super::format;
use super::replicas::ReplicaTable;
use super::ui::Fact;
use crate::AppError;
use crate::api::status::{DatabaseStatus, SystemStatus, get_status};
use leptos::prelude::*;
use std::time::Duration;

/// How often the panel refreshes itself while the page is open.
const AUTO_REFRESH: Duration = Duration::from_secs(30);

/// Control plane, database and installation facts, refreshed every 30 s and on demand.
#[component]
pub fn StatusPanel() -> impl IntoView {
    let generation = RwSignal::new(0u32);
    let status = Resource::new(move || generation.get(), |_| get_status());
    let pending = RwSignal::new(false);
    let refresh = move || generation.update(|n| *n += 1);

    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(refresh, AUTO_REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });

    view! {
        <section aria-labelledby="status-heading" class="space-y-4">
            <div class="flex flex-wrap items-center justify-between gap-3">
                <h2 id="status-heading" class="text-lg font-semibold">
                    "System status"
                </h2>
                <button
                    type="button"
                    class="btn-secondary"
                    on:click=move |_| refresh()
                    disabled=move || pending.get()
                >
                    {move || if pending.get() { "Refreshing…" } else { "Refresh now" }}
                </button>
            </div>
            <Transition fallback=StatusSkeleton set_pending=pending>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(snapshot) => view! { <StatusCards snapshot /> }.into_any(),
                        Err(error) => view! { <StatusError error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn StatusCards(snapshot: SystemStatus) -> impl IntoView {
    let commit = snapshot
        .git_commit
        .as_deref()
        .map(|c| format!(" ({})", &c[..c.len().min(10)]))
        .unwrap_or_default();
    let uptime = format::duration(snapshot.checked_at - snapshot.started_at);
    let checked_iso = snapshot
        .checked_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let serving = snapshot
        .replicas
        .iter()
        .filter(|r| !r.gone(snapshot.checked_at))
        .count();
    let running = if serving > 1 {
        Badge::ok(format!("{serving} replicas"))
    } else {
        Badge::ok("Running")
    };

    view! {
        <div class="grid gap-4 md:grid-cols-3">
            <Card title="Control plane" badge=running>
                <Fact label="Version" value=format!("{}{commit}", snapshot.version) />
                <Fact label="Built" value=format::utc(snapshot.built_at) />
                <Fact label="Up for" value=uptime />
            </Card>
            <DatabaseCard database=snapshot.database.clone() />
            <InstallationCard database=snapshot.database serving />
        </div>
        <ReplicaTable replicas=snapshot.replicas checked_at=snapshot.checked_at />
        <p class="text-xs text-slate-500 dark:text-slate-400" data-checked-at=checked_iso>
            "Last checked "
            {format::utc_time(snapshot.checked_at)}
            " · refreshes every 30 seconds"
        </p>
    }
}

#[component]
fn DatabaseCard(database: DatabaseStatus) -> impl IntoView {
    match database {
        DatabaseStatus::Up {
            server_version,
            migrations_applied,
            latest_migration,
            round_trip_ms,
            ..
        } => {
            let noun = if migrations_applied == 1 {
                "migration"
            } else {
                "migrations"
            };
            let schema = match latest_migration {
                Some(latest) => format!("{migrations_applied} {noun} (latest: {latest})"),
                None => format!("{migrations_applied} {noun}"),
            };
            view! {
                <Card title="Database" badge=Badge::ok("Connected")>
                    <Fact label="PostgreSQL" value=server_version />
                    <Fact label="Schema" value=schema />
                    <Fact label="Round trip" value=format::millis(round_trip_ms) />
                </Card>
            }
            .into_any()
        }
        DatabaseStatus::Down { message } => view! {
            <Card title="Database" badge=Badge::bad("Unreachable")>
                <p class="text-sm text-slate-600 dark:text-slate-300">{message}</p>
            </Card>
        }
        .into_any(),
    }
}

#[component]
fn InstallationCard(database: DatabaseStatus, serving: usize) -> impl IntoView {
    let shape = if serving > 1 {
        format!("{serving} replicas")
    } else {
        "Single replica".to_owned()
    };
    match database {
        DatabaseStatus::Up {
            instance_id,
            installed_at,
            ..
        } => view! {
            <Card title="Installation" badge=Badge::neutral(shape)>
                <Fact label="Instance ID" value=instance_id mono=true />
                <Fact label="Installed" value=format::utc(installed_at) />
            </Card>
        }
        .into_any(),
        DatabaseStatus::Down { .. } => view! {
            <Card title="Installation" badge=Badge::neutral("Unknown")>
                <p class="text-sm text-slate-600 dark:text-slate-300">
                    "Shown again once the database answers."
                </p>
            </Card>
        }
        .into_any(),
    }
}

#[component]
fn StatusError(error: AppError) -> impl IntoView {
    view! {
        <div
            role="alert"
            class="rounded-lg border border-red-300 bg-red-50 p-4 text-sm text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200"
        >
            <p class="font-medium">"The status could not be loaded."</p>
            <p class="mt-1">{error.to_string()}</p>
        </div>
    }
}

#[component]
fn StatusSkeleton() -> impl IntoView {
    view! {
        <div class="grid gap-4 md:grid-cols-3" aria-busy="true" aria-label="Loading status">
            {(0..3).map(|_| view! { <div class="card h-36 animate-pulse"></div> }).collect_view()}
        </div>
    }
}

/// A coloured status word in a card's corner.
#[derive(Clone)]
struct Badge {
    text: String,
    class: &'static str,
}

impl Badge {
    fn ok(text: impl Into<String>) -> Self {
        Badge {
            text: text.into(),
            class: "badge badge-ok",
        }
    }
    fn bad(text: impl Into<String>) -> Self {
        Badge {
            text: text.into(),
            class: "badge badge-bad",
        }
    }
    fn neutral(text: impl Into<String>) -> Self {
        Badge {
            text: text.into(),
            class: "badge badge-neutral",
        }
    }
}

#[component]
fn Card(title: &'static str, badge: Badge, children: Children) -> impl IntoView {
    view! {
        <article class="card" aria-label=title>
            <div class="mb-3 flex items-center justify-between gap-2">
                <h3 class="font-medium">{title}</h3>
                <span class=badge.class>{badge.text}</span>
            </div>
            <dl class="space-y-1.5 text-sm">{children()}</dl>
        </article>
    }
}
