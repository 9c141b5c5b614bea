//! One runtime's row: its state, its owner, and what an admin can do to it.

use super::*;

#[component]
pub(super) fn Row(
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
                {runtime
                    .node
                    .clone()
                    .map(|node| {
                        let words = format!("on node {node}");
                        view! {
                            <div
                                class="mt-1 text-xs text-slate-500 dark:text-slate-400"
                                data-node=node
                            >
                                {words}
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
                    {runtime
                        .node
                        .is_some()
                        .then(|| {
                            view! {
                                <ConfirmButton
                                    label="Move to another node"
                                    confirm_label="Yes, move (fresh, empty workspace)"
                                    danger=true
                                    disabled=Signal::derive(move || busy)
                                    on_confirm=move || send(RuntimeCommand::MoveNode)
                                />
                            }
                        })}
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
