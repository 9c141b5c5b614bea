//! The workspace entry page (`/workspace`): starts the runtime when it is not running, shows the
//! real stages of the start task, and sends the browser to the workspace host once the runtime
//! answers and the entry proxy routes it. Failures say what happened and what to do.

use crate::api::runtime::{
    CommandMyRuntime, ObservedState, RuntimeCard, RuntimeCommand, TaskStatus, my_runtime,
};
use crate::components::auth::RequireUser;
use crate::components::runtime::{Progress, phase};
use crate::components::ui::{ErrorNotice, PageHeader};
use leptos::prelude::*;
use leptos_meta::Title;
use std::time::Duration;

#[component]
pub fn WorkspacePage() -> impl IntoView {
    view! {
        <Title text="Opening your workspace" />
        <RequireUser>
            <WorkspaceEntry />
        </RequireUser>
    }
}

/// What the page does next for a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Workspaces are not routed in this installation.
    NoRouting,
    /// Ask for a start (nothing runs and nothing is under way).
    Start,
    /// A task is under way, or the route is not live yet: keep watching.
    Wait,
    /// Go there.
    Open(String),
    /// The last start failed: show why, offer to try again.
    Failed(String),
}

/// The decision, from the latest card (`None`: no runtime yet) and whether this page already
/// asked for a start.
pub fn next_step(card: Option<&RuntimeCard>, asked: bool) -> Next {
    let Some(card) = card else {
        return if asked { Next::Wait } else { Next::Start };
    };
    if card.workspace_url.is_none() {
        return Next::NoRouting;
    }
    if card.busy() {
        return Next::Wait;
    }
    match card.observed {
        ObservedState::Running => match (&card.browser_url, card.routed) {
            (Some(url), true) => Next::Open(url.clone()),
            _ => Next::Wait,
        },
        ObservedState::Error if asked || card.task_status == Some(TaskStatus::Failed) => {
            Next::Failed(match &card.problem {
                Some(p) => p.sentence(),
                None => "The runtime did not start.".into(),
            })
        }
        ObservedState::Paused => Next::Failed(
            "Your runtime is paused by the runaway-agent breaker. Resume it on the dashboard."
                .into(),
        ),
        ObservedState::Creating | ObservedState::Starting | ObservedState::Stopping => Next::Wait,
        _ if asked => Next::Wait,
        _ => Next::Start,
    }
}

#[component]
fn WorkspaceEntry() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let runtime = Resource::new(move || refresh.get(), |_| my_runtime());
    let command = ServerAction::<CommandMyRuntime>::new();
    let asked = RwSignal::new(false);
    let latest = RwSignal::new(None::<Option<RuntimeCard>>);
    Effect::new(move |_| {
        if let Some(Ok(card)) = runtime.get() {
            latest.set(Some(card));
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(card)) = command.value().get() {
            latest.set(Some(card));
        }
    });
    // Act on each new card: start once, or leave for the workspace.
    Effect::new(move |_| {
        let Some(card) = latest.get() else { return };
        match next_step(card.as_ref(), asked.get_untracked()) {
            Next::Start if !command.pending().get_untracked() => {
                asked.set(true);
                command.dispatch(CommandMyRuntime {
                    command: RuntimeCommand::Start,
                });
            }
            Next::Open(url) => {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().replace(&url);
                }
            }
            _ => {}
        }
    });
    // Live progress: ask again every second until the page leaves.
    Effect::new(move |_| {
        if let Ok(handle) =
            set_interval_with_handle(move || refresh.update(|n| *n += 1), Duration::from_secs(1))
        {
            on_cleanup(move || handle.clear());
        }
    });
    let retry = move |_| {
        asked.set(true);
        command.dispatch(CommandMyRuntime {
            command: RuntimeCommand::Start,
        });
    };
    let error = Signal::derive(move || command.value().get().and_then(Result::err));

    view! {
        <PageHeader
            title="Opening your workspace".to_owned()
            subtitle="Your own OpenClaw runtime opens in this tab as soon as it is ready."
        />
        <section class="card space-y-4" aria-live="polite" aria-labelledby="entry-heading">
            {move || match latest.get() {
                None => {
                    view! { <p class="text-sm text-slate-500">"Checking your runtime…"</p> }
                        .into_any()
                }
                Some(card) => {
                    let step = next_step(card.as_ref(), asked.get());
                    let (label, tone) = card
                        .as_ref()
                        .map_or(("Starting…".into(), "accent"), phase);
                    let badge = format!("badge badge-{tone}");
                    let state = label.clone();
                    let body = match step {
                        Next::NoRouting => {
                            view! {
                                <div class="notice notice-warn" role="alert">
                                    "Workspaces are not reachable in this installation yet: an administrator needs to set "
                                    <code>"workspace_domain"</code>
                                    " and run the entry proxy (see the README)."
                                </div>
                            }
                                .into_any()
                        }
                        Next::Failed(why) => {
                            view! {
                                <div class="notice notice-error" role="alert" data-entry-error="">
                                    <p class="font-medium">"Your runtime could not start."</p>
                                    <p class="mt-1">{why}</p>
                                    <p class="mt-1">
                                        "Try again; if it keeps failing, tell your administrator what it says above."
                                    </p>
                                </div>
                                <div class="flex gap-2">
                                    <button type="button" class="btn-primary" on:click=retry>
                                        "Try again"
                                    </button>
                                    <a class="btn-secondary" href="/">
                                        "Back to the dashboard"
                                    </a>
                                </div>
                            }
                                .into_any()
                        }
                        Next::Open(url) => {
                            view! {
                                <p class="text-sm">
                                    "Ready. Opening " <a class="link" href=url.clone()>
                                        {url.clone()}
                                    </a> "…"
                                </p>
                            }
                                .into_any()
                        }
                        Next::Start | Next::Wait => {
                            let routed_step = card
                                .as_ref()
                                .is_some_and(|c| c.observed == ObservedState::Running && !c.busy());
                            view! {
                                {card.clone().map(|c| view! { <Progress card=c /> })}
                                <p class="text-sm" data-entry-routing=routed_step.to_string()>
                                    {if routed_step {
                                        "Runtime ready — waiting for its address to answer…"
                                    } else {
                                        "This usually takes a few seconds; the first start of a new runtime can take a minute."
                                    }}
                                </p>
                            }
                                .into_any()
                        }
                    };
                    view! {
                        <div class="flex items-center justify-between gap-2">
                            <h2 id="entry-heading" class="text-lg font-semibold">
                                "Your runtime"
                            </h2>
                            <span class=badge data-runtime-state=state>
                                {label}
                            </span>
                        </div>
                        {body}
                    }
                        .into_any()
                }
            }}
            <ErrorNotice error=error />
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::runtime::{Action, DesiredState, Problem, ProblemView};

    fn card(observed: &str, task: Option<(&str, &str)>, routed: bool) -> RuntimeCard {
        let observed = ObservedState::parse(observed).expect("a state");
        RuntimeCard {
            runtime_id: "rt-ana".into(),
            desired: DesiredState::Running,
            observed,
            task_action: task.and_then(|t| Action::parse(t.0)),
            task_status: task.and_then(|t| TaskStatus::parse(t.1)),
            stages: Vec::new(),
            queue_position: None,
            problem: Some(ProblemView::new(
                &Problem::ImageMissing,
                "0123456789abcdef".into(),
            )),
            browser_url: (observed == ObservedState::Running).then(|| "http://ana.ws.test/".into()),
            workspace_url: Some("http://ana.ws.test/".into()),
            routed,
            planned_stop: None,
            disk: None,
            stop_reason: None,
            stop_cause: None,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_entry_page_starts_waits_opens_or_explains() {
        assert_eq!(next_step(None, false), Next::Start, "no runtime yet");
        assert_eq!(next_step(None, true), Next::Wait);
        assert_eq!(
            next_step(
                Some(&card("stopped", Some(("stop", "succeeded")), false)),
                false
            ),
            Next::Start
        );
        assert_eq!(
            next_step(
                Some(&card("stopped", Some(("start", "queued")), false)),
                true
            ),
            Next::Wait
        );
        assert_eq!(
            next_step(
                Some(&card("running", Some(("start", "succeeded")), false)),
                true
            ),
            Next::Wait,
            "healthy but not routed yet"
        );
        assert_eq!(
            next_step(
                Some(&card("running", Some(("start", "succeeded")), true)),
                true
            ),
            Next::Open("http://ana.ws.test/".into())
        );
        assert!(matches!(
            next_step(Some(&card("error", Some(("start", "failed")), false)), true),
            Next::Failed(why) if why.contains("software is not installed")
                && why.contains("reference 01234567.")
        ));
        let mut unrouted = card("stopped", None, false);
        unrouted.workspace_url = None;
        assert_eq!(next_step(Some(&unrouted), false), Next::NoRouting);
    }
}
