//! The runtime card on the home page: state in words and colour, live progress while it
//! starts, the last error, and the actions.

use super::format;
use super::ui::ErrorNotice;
use crate::api::runtime::{
    Action, CommandMyRuntime, ObservedState, PlannedStopKind, RuntimeCard, RuntimeCommand,
    StopCause, TaskStatus, my_runtime,
};
use leptos::prelude::*;
use std::time::Duration;

mod disk;
mod progress;
pub use disk::DiskMeter;
pub use progress::{Progress, START_STEPS};

/// The state in words, and the badge tone.
pub fn phase(card: &RuntimeCard) -> (String, &'static str) {
    if card.busy() {
        let waiting = card.task_status == Some(TaskStatus::Queued);
        return match (card.task_action, waiting, card.queue_position) {
            (_, true, Some(n)) if n > 0 => (format!("Waiting — {n} ahead of you"), "warn"),
            (_, true, _) => ("Waiting to begin".into(), "warn"),
            (Some(Action::Stop), ..) => ("Stopping…".into(), "warn"),
            (Some(Action::Delete), ..) => ("Removing…".into(), "warn"),
            (Some(Action::Start | Action::Recover) | None, ..) => ("Starting…".into(), "accent"),
        };
    }
    match card.observed {
        ObservedState::Running => ("Running".into(), "ok"),
        ObservedState::Paused => ("Paused".into(), "warn"),
        ObservedState::Stopped => ("Stopped".into(), "neutral"),
        // Its machine is away: nothing to do but wait (or, for an admin, move it).
        ObservedState::Error if card.problem.as_ref().is_some_and(|p| p.code == "NODE_DOWN") => {
            ("Waiting for its machine".into(), "warn")
        }
        ObservedState::Error => ("Needs attention".into(), "bad"),
        ObservedState::Creating | ObservedState::Starting => ("Starting…".into(), "accent"),
        ObservedState::Stopping => ("Stopping…".into(), "warn"),
        ObservedState::Deleted => ("Removed".into(), "neutral"),
    }
}

/// The signed-in user's runtime card.
#[component]
pub fn RuntimePanel() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let runtime = Resource::new(move || refresh.get(), |_| my_runtime());
    let command = ServerAction::<CommandMyRuntime>::new();
    let latest = RwSignal::new(None::<Option<RuntimeCard>>);
    Effect::new(move |_| {
        if let Some(Ok(card)) = runtime.get() {
            latest.set(Some(card));
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(card)) = command.value().get() {
            latest.set(Some(card));
            refresh.update(|n| *n += 1);
        }
    });
    // Live: every second while something happens, every ten seconds otherwise.
    Effect::new(move |_| {
        let tick = RwSignal::new(0u32);
        if let Ok(handle) = set_interval_with_handle(
            move || {
                tick.update(|t| *t += 1);
                let busy = latest.with_untracked(|c| {
                    c.as_ref()
                        .and_then(|c| c.as_ref())
                        .is_some_and(|c| c.busy() || c.observed.is_transient())
                });
                if busy || tick.get_untracked().is_multiple_of(10) {
                    refresh.update(|n| *n += 1);
                }
            },
            Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    let run = move |cmd: RuntimeCommand| {
        command.dispatch(CommandMyRuntime { command: cmd });
    };
    let error = Signal::derive(move || command.value().get().and_then(Result::err));

    view! {
        <section class="card space-y-4" aria-labelledby="runtime-heading" aria-live="polite">
            <Transition fallback=|| {
                view! { <p class="text-sm text-slate-500">"Loading your runtime…"</p> }
            }>
                {move || Suspend::new(async move {
                    let card = match runtime.await {
                        Ok(card) => card,
                        Err(error) => return view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    };
                    view! { <CardBody card pending=command.pending() run /> }.into_any()
                })}
            </Transition>
            <ErrorNotice error=error />
        </section>
    }
}

#[component]
fn CardBody(
    card: Option<RuntimeCard>,
    pending: Memo<bool>,
    run: impl Fn(RuntimeCommand) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let Some(card) = card else {
        return view! {
            <Header label="Not created yet".into() tone="neutral" />
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Your runtime is your own OpenClaw agent gateway, with a workspace that is kept between sessions. \
                 Start it when you need it."
            </p>
            <div class="flex gap-2">
                <button
                    type="button"
                    class="btn-primary"
                    disabled=move || pending.get()
                    on:click=move |_| run(RuntimeCommand::Start)
                >
                    "Start my runtime"
                </button>
            </div>
        }
        .into_any();
    };
    let (label, tone) = phase(&card);
    let busy = card.busy();
    let observed = card.observed;
    let starting = busy && matches!(card.task_action, Some(Action::Start | Action::Recover));
    let deleting = busy && card.task_action == Some(Action::Delete);
    let running = observed == ObservedState::Running && !busy;
    let can_start = !busy && matches!(observed, ObservedState::Stopped | ObservedState::Deleted);
    let can_stop = !busy
        && matches!(
            observed,
            ObservedState::Running
                | ObservedState::Paused
                | ObservedState::Starting
                | ObservedState::Creating
                | ObservedState::Error
        );
    let can_recover = !busy && matches!(observed, ObservedState::Running | ObservedState::Error);
    let over_limit = card
        .disk
        .as_ref()
        .is_some_and(|d| d.limit_bytes.is_some_and(|limit| d.used_bytes > limit));
    view! {
        <Header label tone />
        {starting.then(|| view! { <Progress card=card.clone() /> })}
        {card
            .problem
            .clone()
            .filter(|_| !running)
            .map(|p| {
                let waiting = p.code == "NODE_DOWN";
                let reference = if waiting { String::new() } else { format!(" {}", p.ask_admin()) };
                let class = if waiting { "notice notice-warn" } else { "notice notice-error" };
                // Waiting for its machine is not a fault of the runtime: a calmer notice, and
                // nothing to report.
                view! {
                    <div role="alert" class=class data-runtime-error=p.code.clone()>
                        {p.message.clone()}
                        <span class="text-xs opacity-80">{reference}</span>
                    </div>
                }
            })}
        {card
            .stop_reason
            .clone()
            .filter(|_| observed == ObservedState::Stopped)
            .map(|why| {
                let hint = (!over_limit
                    && card.stop_cause.is_some_and(StopCause::start_again_helps))
                    .then_some(" Open the workspace to start it again.");
                // A stop for a used-up budget or a breaker trip says itself what happens next.
                view! {
                    <div class="notice notice-info" data-stop-reason="">
                        {why}
                        {hint}
                    </div>
                }
            })}
        {card
            .planned_stop
            .clone()
            .map(|stop| {
                view! {
                    <p
                        class="text-sm text-slate-600 dark:text-slate-400"
                        data-planned-stop=stop.kind.as_str()
                    >
                        {planned_stop_words(&stop)}
                    </p>
                }
            })}
        <div class="flex flex-wrap items-center gap-2">
            {card
                .workspace_url
                .clone()
                .filter(|_| !deleting)
                .map(|_| {
                    view! {
                        <a class="btn-primary" href="/workspace">
                            "Open workspace"
                        </a>
                    }
                })}
            {can_start
                .then(|| {
                    view! {
                        <CommandButton
                            label="Start"
                            command=RuntimeCommand::Start
                            primary=true
                            pending
                            run
                        />
                    }
                })}
            {can_recover
                .then(|| {
                    view! {
                        <CommandButton
                            label="Restart cleanly"
                            command=RuntimeCommand::Recover
                            pending
                            run
                        />
                    }
                })}
            {can_stop
                .then(|| {
                    view! {
                        <CommandButton label="Stop" command=RuntimeCommand::Stop pending run />
                    }
                })} {(!busy).then(|| view! { <DeleteRuntime run pending /> })}
        </div>
        {card.disk.clone().map(|disk| view! { <DiskMeter disk /> })}
        <p class="text-xs text-slate-500 dark:text-slate-400">
            {format!("Runtime {} · updated {}", card.runtime_id, format::utc(card.updated_at))}
        </p>
    }
    .into_any()
}

/// "Workspace: 12 MiB of 10 GiB" with a bar (as last measured).
#[component]
fn Header(label: String, tone: &'static str) -> impl IntoView {
    let class = format!("badge badge-{tone}");
    let state = label.clone();
    view! {
        <div class="flex items-center justify-between gap-2">
            <h2 id="runtime-heading" class="text-lg font-semibold">
                "Your runtime"
            </h2>
            <span class=class data-runtime-state=state>
                {label}
            </span>
        </div>
    }
}

/// "Stops at 14:03:09 UTC if the workspace stays unused (limit: 1 hour)."
pub fn planned_stop_words(stop: &crate::api::runtime::PlannedStopView) -> String {
    let at = format::utc_time(stop.at);
    if stop.kind == PlannedStopKind::Lifetime {
        format!(
            "Stops at {at}: a runtime runs at most {} at a time.",
            stop.limit
        )
    } else {
        format!(
            "Stops at {at} if the workspace stays unused (after {} without use).",
            stop.limit
        )
    }
}

/// One command's button, disabled while a command is under way.
#[component]
fn CommandButton(
    label: &'static str,
    command: RuntimeCommand,
    #[prop(optional)] primary: bool,
    pending: Memo<bool>,
    run: impl Fn(RuntimeCommand) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <button
            type="button"
            class=if primary { "btn-primary" } else { "btn-secondary" }
            disabled=move || pending.get()
            on:click=move |_| run(command)
        >
            {label}
        </button>
    }
}

/// Delete, with the choice to keep or wipe the workspace.
#[component]
fn DeleteRuntime(
    run: impl Fn(RuntimeCommand) + Copy + Send + Sync + 'static,
    pending: Memo<bool>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let wipe = RwSignal::new(false);
    view! {
        <Show
            when=move || open.get()
            fallback=move || {
                view! {
                    <button type="button" class="btn-secondary" on:click=move |_| open.set(true)>
                        "Delete…"
                    </button>
                }
            }
        >
            <fieldset class="w-full space-y-2 rounded-lg border border-red-300 p-3 dark:border-red-800">
                <legend class="px-1 text-sm font-medium">"Delete your runtime?"</legend>
                <label class="flex items-center gap-2 text-sm">
                    <input
                        type="radio"
                        name="wipe"
                        checked=move || !wipe.get()
                        on:change=move |_| wipe.set(false)
                    />
                    "Keep my workspace files (a new runtime will find them)"
                </label>
                <label class="flex items-center gap-2 text-sm">
                    <input
                        type="radio"
                        name="wipe"
                        checked=move || wipe.get()
                        on:change=move |_| wipe.set(true)
                    />
                    "Delete my workspace files too (cannot be undone)"
                </label>
                <div class="flex gap-2">
                    <button
                        type="button"
                        class="btn-danger"
                        disabled=move || pending.get()
                        on:click=move |_| {
                            open.set(false);
                            run(RuntimeCommand::Delete {
                                wipe_workspace: wipe.get_untracked(),
                            });
                        }
                    >
                        "Delete runtime"
                    </button>
                    <button type="button" class="btn-secondary" on:click=move |_| open.set(false)>
                        "Cancel"
                    </button>
                </div>
            </fieldset>
        </Show>
    }
}
