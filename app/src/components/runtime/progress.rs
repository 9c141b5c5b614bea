//! A start's progress: each step with the time it was reached, the one under way marked.

use super::*;
use crate::api::runtime::Stage;

/// The steps of a start, with the words shown for each.
pub const START_STEPS: &[(Stage, &str)] = &[
    (Stage::Queued, "Request received"),
    (Stage::ConfigRendered, "Configuration written"),
    (Stage::ImageReady, "Runtime image ready"),
    (Stage::ContainerCreated, "Container created"),
    (Stage::Started, "Started"),
    (Stage::Healthy, "Answering — ready"),
];

/// The start steps with their times; the step under way is marked.
#[component]
pub fn Progress(card: RuntimeCard) -> impl IntoView {
    let current = card.stages.last().map(|s| s.stage);
    view! {
        <ol class="space-y-1 text-sm" aria-label="Start progress">
            {START_STEPS
                .iter()
                .map(|(stage, words)| {
                    let mark = card.stages.iter().rev().find(|s| s.stage == *stage);
                    let done = mark.is_some();
                    let at = mark.map(|m| format::utc_time(m.at)).unwrap_or_default();
                    let next = !done
                        && START_STEPS
                            .iter()
                            .position(|(s, _)| Some(*s) == current)
                            .and_then(|i| START_STEPS.get(i + 1))
                            .is_some_and(|(s, _)| s == stage);
                    let (icon, class) = if done {
                        ("✓", "text-emerald-700 dark:text-emerald-300")
                    } else if next {
                        ("…", "font-medium text-indigo-700 dark:text-indigo-300")
                    } else {
                        ("○", "text-slate-400")
                    };
                    view! {
                        <li
                            class=format!("flex justify-between {class}")
                            data-stage=stage.as_str()
                            data-done=done.to_string()
                        >
                            <span>
                                <span aria-hidden="true" class="inline-block w-5">
                                    {icon}
                                </span>
                                {*words}
                            </span>
                            <span class="tabular-nums text-xs">{at}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}
