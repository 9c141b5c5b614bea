//! The runaway-agent breaker on the dashboard: when it paused the user's agent, what it saw,
//! what that means (model requests refused, the runtime frozen with its memory and workspace
//! kept) and a Resume button once the cooldown is over. Asked again every five seconds.

use crate::api::breaker::{ResumeMyAgent, TripView, get_my_trip};
use crate::components::format::{duration, utc_time};
use crate::components::ui::{ErrorNotice, SuccessNotice};
use leptos::prelude::*;
use std::time::Duration;

#[component]
pub fn BreakerBanner() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let trip = Resource::new(move || refresh.get(), |_| get_my_trip());
    let resume = ServerAction::<ResumeMyAgent>::new();
    Effect::new(move |_| {
        if let Ok(handle) =
            set_interval_with_handle(move || refresh.update(|n| *n += 1), Duration::from_secs(5))
        {
            on_cleanup(move || handle.clear());
        }
    });
    Effect::new(move |_| {
        if matches!(resume.value().get(), Some(Ok(_))) {
            refresh.update(|n| *n += 1);
        }
    });
    view! {
        {move || {
            resume
                .value()
                .get()
                .and_then(Result::ok)
                .map(|said| {
                    view! {
                        <div class="mb-6">
                            <SuccessNotice>{said}</SuccessNotice>
                        </div>
                    }
                })
        }}
        <Transition>
            {move || Suspend::new(async move {
                let Ok(Some(t)) = trip.await else {
                    return ().into_any();
                };
                view! { <Paused trip=t resume /> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn Paused(trip: TripView, resume: ServerAction<ResumeMyAgent>) -> impl IntoView {
    let waiting = trip.resume_in_secs > 0;
    let when = if waiting {
        format!(
            "You can resume from {} (in {}); an administrator can resume it now.",
            utc_time(trip.resume_after),
            duration(time::Duration::seconds(trip.resume_in_secs))
        )
    } else {
        "Check what your agent was doing, then resume it.".to_owned()
    };
    let whose = if trip.key_kind == "runtime" {
        "Your agent's model requests are refused and your runtime is paused: its memory and workspace are kept, it uses no CPU and its time is not charged."
    } else {
        "Your model requests are refused and your runtime is paused: its memory and workspace are kept, it uses no CPU and its time is not charged."
    };
    view! {
        <div role="alert" class="notice notice-error mb-6" data-breaker="tripped">
            <p class="font-medium">
                {format!(
                    "The runaway-agent breaker paused your agent at {}: {}.",
                    utc_time(trip.tripped_at),
                    trip.words,
                )}
            </p>
            <p class="mt-1">{whose}</p>
            <p class="mt-1">{when}</p>
            <div class="mt-3">
                <ErrorNotice error=Signal::derive(move || {
                    resume.value().get().and_then(Result::err)
                }) />
                <button
                    type="button"
                    class="btn-primary mt-2"
                    disabled=move || waiting || resume.pending().get()
                    on:click=move |_| {
                        resume.dispatch(ResumeMyAgent {});
                    }
                >
                    {move || if resume.pending().get() { "Resuming…" } else { "Resume my agent" }}
                </button>
            </div>
        </div>
    }
}
