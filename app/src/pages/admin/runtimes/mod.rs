use super::AdminNav;
use crate::api::runtime::{
    AdminRuntime, AdminRuntimeCommand, NetworkPolicyView, PlannedStopKind, RuntimeCommand,
    RuntimeLimits, SetRuntimeLimits, get_runtime_details, list_runtimes, runtime_network_policy,
};
use crate::components::auth::RequireUser;
use crate::components::runtime::phase;
use crate::components::ui::{ConfirmButton, ErrorNotice, Loading, PageHeader, SuccessNotice};
use leptos::prelude::*;
use leptos_meta::Title;
use std::time::Duration;

mod details;
mod row;
use details::{Details, LimitsForm};
use row::Row;

/// Every user's runtime: states, actions, logs, memory and CPU.
#[component]
pub fn RuntimesPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let runtimes = Resource::new(move || refresh.get(), |_| list_runtimes());
    let policy = Resource::new(move || refresh.get(), |_| runtime_network_policy());
    let command = ServerAction::<AdminRuntimeCommand>::new();
    Effect::new(move |_| {
        if command.value().get().is_some() {
            refresh.update(|n| *n += 1);
        }
    });
    Effect::new(move |_| {
        if let Ok(handle) =
            set_interval_with_handle(move || refresh.update(|n| *n += 1), Duration::from_secs(5))
        {
            on_cleanup(move || handle.clear());
        }
    });
    let error = Signal::derive(move || command.value().get().and_then(Result::err));
    // The open details live outside the list, so the 5-second refresh neither closes them nor
    // wipes a half-typed limits form.
    let selected = RwSignal::new(None::<Selected>);
    view! {
        <Title text="Runtimes" />
        <RequireUser admin=true>
            <PageHeader
                title="Runtimes".into()
                subtitle="Every user's OpenClaw runtime. Updates every 5 seconds."
            />
            <AdminNav />
            <ErrorNotice error=error />
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    policy.await.ok().map(|p| view! { <NetworkPolicy policy=p /> })
                })}
            </Transition>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match runtimes.await {
                        Ok(list) if list.is_empty() => {
                            view! {
                                <p class="card text-center text-sm text-slate-500">
                                    "Nobody has started a runtime yet."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(list) => {
                            view! {
                                <div class="card overflow-x-auto">
                                    <table class="table">
                                        <thead>
                                            <tr>
                                                <th>"User"</th>
                                                <th>"State"</th>
                                                <th>"Last task"</th>
                                                <th>"Last error"</th>
                                                <th>"Crashes"</th>
                                                <th>"Actions"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {list
                                                .into_iter()
                                                .map(|r| view! { <Row runtime=r command selected /> })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
            {move || {
                selected
                    .get()
                    .map(|s| {
                        view! {
                            <section
                                class="card mt-4 space-y-3"
                                aria-label=format!("Runtime of {}", s.username)
                            >
                                <div class="flex items-center justify-between">
                                    <h2 class="text-lg font-semibold">
                                        {format!("Runtime of {}", s.username)}
                                    </h2>
                                    <button
                                        type="button"
                                        class="btn-secondary"
                                        on:click=move |_| selected.set(None)
                                    >
                                        "Close"
                                    </button>
                                </div>
                                <Details user_id=s.user_id.clone() />
                                <LimitsForm user_id=s.user_id limits=s.limits />
                            </section>
                        }
                    })
            }}
        </RequireUser>
    }
}

/// What runtimes may reach, and whether the host firewall holds them to it.
#[component]
fn NetworkPolicy(policy: NetworkPolicyView) -> impl IntoView {
    let egress = match policy.egress.as_str() {
        "public" => {
            "Runtimes reach the model gateway and public internet addresses. Private \
                     networks, this host and the cloud metadata address stay blocked."
        }
        _ => {
            "Runtimes reach the model gateway and nothing else: no internet, no private \
              networks, nothing on this host."
        }
    };
    let (badge, state) = match policy.firewall.as_str() {
        "enforced" => ("badge badge-ok", "Runtime firewall active"),
        "external" => (
            "badge badge-neutral",
            "Runtime firewall left to the operator",
        ),
        _ => (
            "badge badge-bad",
            "Runtime firewall failing: no runtime can start",
        ),
    };
    let checked = policy.checked_at.map(|at| {
        format!(
            "checked {:02}:{:02}:{:02} UTC",
            at.hour(),
            at.minute(),
            at.second()
        )
    });
    view! {
        <section class="card mb-4 space-y-1" aria-label="Runtime network">
            <div class="flex flex-wrap items-center gap-2">
                <h2 class="text-base font-semibold">"Network"</h2>
                <span class=badge>{state}</span>
                <span class="text-xs text-slate-500">{checked}</span>
            </div>
            <p class="text-sm">
                {egress}" "
                <span class="text-slate-500">
                    "Internet egress: "<code>{policy.egress.clone()}</code> " (setting "
                    <code>"runtime_egress"</code>", applied when a runtime starts)."
                </span>
            </p>
            {policy
                .problem
                .map(|p| view! { <p class="text-sm text-red-700 dark:text-red-400">{p}</p> })}
            {(!policy.hardening_gaps.is_empty())
                .then(|| {
                    view! {
                        <div class="text-sm" data-hardening-gaps>
                            <p class="font-medium text-amber-800 dark:text-amber-300">
                                "Hardening this engine cannot enforce:"
                            </p>
                            <ul class="list-disc pl-5 text-slate-600 dark:text-slate-300">
                                {policy
                                    .hardening_gaps
                                    .iter()
                                    .map(|gap| view! { <li>{gap.clone()}</li> })
                                    .collect_view()}
                            </ul>
                        </div>
                    }
                })}
        </section>
    }
}

/// The runtime whose details are open.
#[derive(Debug, Clone, PartialEq)]
struct Selected {
    user_id: String,
    username: String,
    limits: RuntimeLimits,
}
