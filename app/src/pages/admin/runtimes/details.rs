//! A runtime's details: its last log lines, memory and CPU now, and its limits' form.

use super::*;

#[component]
pub(super) fn Details(user_id: String) -> impl IntoView {
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
pub(super) fn LimitsForm(user_id: String, limits: RuntimeLimits) -> impl IntoView {
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
