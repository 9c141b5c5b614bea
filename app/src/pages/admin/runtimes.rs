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

#[component]
fn Row(
    runtime: AdminRuntime,
    command: ServerAction<AdminRuntimeCommand>,
    selected: RwSignal<Option<Selected>>,
) -> impl IntoView {
    let (label, tone) = phase(&runtime.card);
    let user = StoredValue::new(runtime.user_id.clone());
    let send = move |cmd: RuntimeCommand| {
        command.dispatch(AdminRuntimeCommand {
            user_id: user.get_value(),
            command: cmd,
        });
    };
    let this = Selected {
        user_id: runtime.user_id.clone(),
        username: runtime.username.clone(),
        limits: runtime.limits.clone(),
    };
    let id = runtime.user_id.clone();
    let open = Signal::derive(move || selected.read().as_ref().is_some_and(|s| s.user_id == id));
    let row_class = if runtime.crash_looping {
        "bg-red-50 dark:bg-red-950/40"
    } else {
        ""
    };
    let task = match (&runtime.card.task_action, &runtime.card.task_status) {
        (Some(a), Some(s)) => format!("{a}: {s}"),
        _ => "—".into(),
    };
    let busy = runtime.card.busy();
    view! {
        <tr class=row_class data-runtime-user=runtime.username.clone()>
            <td>
                <a class="link" href=format!("/admin/users/{}", runtime.user_id)>
                    {runtime.username.clone()}
                </a>
            </td>
            <td>
                <span class=format!("badge badge-{tone}")>{label}</span>
                {runtime
                    .crash_looping
                    .then(|| view! { <span class="badge badge-bad ml-1">"Crash loop"</span> })}
                {runtime
                    .card
                    .planned_stop
                    .clone()
                    .map(|stop| {
                        view! {
                            <div class="mt-1 text-xs text-slate-500 dark:text-slate-400">
                                {if stop.kind == PlannedStopKind::Lifetime {
                                    "lifetime ends "
                                } else {
                                    "idle stop "
                                }} {crate::components::format::utc_time(stop.at)}
                            </div>
                        }
                    })}
                {runtime
                    .card
                    .stop_reason
                    .clone()
                    .map(|why| {
                        view! {
                            <div class="mt-1 text-xs text-slate-500 dark:text-slate-400">{why}</div>
                        }
                    })}
                {runtime
                    .card
                    .disk
                    .clone()
                    .map(|disk| {
                        let over = disk.limit_bytes.is_some_and(|l| disk.used_bytes > l);
                        let class = if over {
                            "mt-1 text-xs font-medium text-red-700 dark:text-red-400"
                        } else {
                            "mt-1 text-xs text-slate-500 dark:text-slate-400"
                        };
                        view! {
                            <div class=class data-disk-used=disk.used_bytes.to_string()>
                                "disk "
                                {disk.used.clone()}
                                {disk.limit.clone().map(|l| format!(" of {l}"))}
                            </div>
                        }
                    })}
            </td>
            <td class="whitespace-nowrap">{task}</td>
            <td class="max-w-xs text-xs">
                {match (&runtime.card.problem, &runtime.problem_detail) {
                    (Some(p), detail) => {
                        view! {
                            <span data-problem=p.code.clone()>
                                <span class="font-medium">{p.message.clone()}</span>
                                " "
                                {detail.clone()}
                                <span class="block text-slate-500">
                                    {format!("{} · reference {}", p.code, p.reference)}
                                </span>
                            </span>
                        }
                            .into_any()
                    }
                    (None, _) => "—".into_any(),
                }}
            </td>
            <td class="tabular-nums">{runtime.crash_count}</td>
            <td>
                <div class="flex flex-wrap gap-1">
                    <button
                        type="button"
                        class="btn-secondary"
                        aria-expanded=move || open.get().to_string()
                        on:click=move |_| {
                            let next = (!open.get_untracked()).then(|| this.clone());
                            selected.set(next);
                        }
                    >
                        "Details"
                    </button>
                    <button
                        type="button"
                        class="btn-secondary"
                        disabled=busy
                        on:click=move |_| send(RuntimeCommand::Recover)
                    >
                        "Recover"
                    </button>
                    <ConfirmButton
                        label="Force stop"
                        confirm_label="Yes, stop"
                        disabled=Signal::derive(move || busy)
                        on_confirm=move || send(RuntimeCommand::Stop)
                    />
                    <ConfirmButton
                        label="Delete"
                        confirm_label="Yes, delete (keep files)"
                        danger=true
                        disabled=Signal::derive(move || busy)
                        on_confirm=move || send(RuntimeCommand::Delete {
                            wipe_workspace: false,
                        })
                    />
                </div>
            </td>
        </tr>
    }
}

#[component]
fn Details(user_id: String) -> impl IntoView {
    let details = Resource::new(move || user_id.clone(), get_runtime_details);
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match details.await {
                    Ok(d) => {
                        let memory = match (d.memory_bytes, d.memory_limit_bytes) {
                            (Some(used), Some(limit)) if limit > 0 => {
                                format!(
                                    "{:.0} MiB of {:.0} MiB",
                                    used as f64 / 1048576.0,
                                    limit as f64 / 1048576.0,
                                )
                            }
                            _ => "not running".into(),
                        };
                        let cpu = d
                            .cpu_cores
                            .map_or_else(
                                || "—".into(),
                                |c| format!("{:.0} % of a core", c * 100.0),
                            );
                        view! {
                            <div class="space-y-2">
                                <p class="text-sm">
                                    "Memory: " <strong>{memory}</strong> " · CPU: "
                                    <strong>{cpu}</strong>
                                </p>
                                <pre
                                    class="max-h-80 overflow-auto whitespace-pre-wrap break-all rounded-lg bg-slate-950 p-3 text-xs text-slate-100"
                                    aria-label="Last 200 log lines"
                                >
                                    {if d.logs.is_empty() {
                                        "No output.".to_owned()
                                    } else {
                                        d.logs.join("\n")
                                    }}
                                </pre>
                            </div>
                        }
                            .into_any()
                    }
                    Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// `""` → no override; otherwise the number, or a message.
fn parse_limit<T: std::str::FromStr>(text: &str, what: &str) -> Result<Option<T>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{what} must be a number (or empty for the default)."))
}

/// The user's own memory, CPU and process limits; empty fields use the deployment's defaults.
#[component]
fn LimitsForm(user_id: String, limits: RuntimeLimits) -> impl IntoView {
    let save = ServerAction::<SetRuntimeLimits>::new();
    let memory = RwSignal::new(limits.memory_mb.map(|m| m.to_string()).unwrap_or_default());
    let cpus = RwSignal::new(limits.cpus.map(|c| c.to_string()).unwrap_or_default());
    let pids = RwSignal::new(limits.pids.map(|p| p.to_string()).unwrap_or_default());
    let idle = RwSignal::new(
        limits
            .idle_stop_minutes
            .map(|m| m.to_string())
            .unwrap_or_default(),
    );
    let disk = RwSignal::new(limits.disk_mb.map(|d| d.to_string()).unwrap_or_default());
    let local_error = RwSignal::new(None::<String>);
    let user = StoredValue::new(user_id);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parsed = (|| {
            Ok::<_, String>(SetRuntimeLimits {
                user_id: user.get_value(),
                memory_mb: parse_limit(&memory.get(), "Memory")?,
                cpus: parse_limit(&cpus.get(), "CPUs")?,
                pids: parse_limit(&pids.get(), "Processes")?,
                idle_stop_minutes: parse_limit(&idle.get(), "Idle stop")?,
                disk_mb: parse_limit(&disk.get(), "Workspace disk")?,
            })
        })();
        match parsed {
            Ok(args) => {
                local_error.set(None);
                save.dispatch(args);
            }
            Err(message) => local_error.set(Some(message)),
        }
    };
    let server_error = Signal::derive(move || save.value().get().and_then(Result::err));
    let saved = move || matches!(save.value().get(), Some(Ok(_)));
    let field =
        |id: &'static str, label: &'static str, value: RwSignal<String>, default: String| {
            view! {
                <label class="block text-sm" for=id>
                    <span class="font-medium">{label}</span>
                    <input
                        id=id
                        name=id
                        class="input mt-1 w-36"
                        type="number"
                        step="any"
                        inputmode="decimal"
                        placeholder=format!("default {default}")
                        prop:value=move || value.get()
                        on:input=move |ev| value.set(event_target_value(&ev))
                    />
                </label>
            }
        };
    view! {
        <form
            class="space-y-2 rounded-lg border border-slate-200 p-3 dark:border-slate-700"
            novalidate=true
            on:submit=submit
            aria-label="Resource limits"
        >
            <p class="text-sm font-medium">"Resource limits for this user"</p>
            <div class="flex flex-wrap items-end gap-3">
                {field(
                    "limit-memory",
                    "Memory (MiB)",
                    memory,
                    limits.default_memory_mb.to_string(),
                )} {field("limit-cpus", "CPUs", cpus, limits.default_cpus.to_string())}
                {field("limit-pids", "Processes", pids, limits.default_pids.to_string())}
                {field(
                    "limit-idle",
                    "Idle stop (minutes)",
                    idle,
                    match limits.default_idle_stop_minutes {
                        0 => "never".to_owned(),
                        m => m.to_string(),
                    },
                )}
                {field(
                    "limit-disk",
                    "Workspace disk (MiB)",
                    disk,
                    match limits.default_disk_mb {
                        None => "none".to_owned(),
                        Some(mb) => mb.to_string(),
                    },
                )} <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                    "Save limits"
                </button>
            </div>
            <p class="text-xs text-slate-500">
                "Leave a field empty to use the default. New limits apply at the next start or recover; \
                the idle stop applies at once (0 = never stop an unused runtime), the workspace disk limit at the next measurement \
                (0 = no limit; a runtime over its limit is stopped and cannot start until the limit is raised)."
            </p>
            {move || {
                local_error
                    .get()
                    .map(|m| {
                        view! {
                            <div role="alert" class="notice notice-error">
                                {m}
                            </div>
                        }
                    })
            }}
            <ErrorNotice error=server_error />
            <Show when=saved>
                <SuccessNotice>
                    "Saved. The new limits apply at the next start or recover."
                </SuccessNotice>
            </Show>
        </form>
    }
}
