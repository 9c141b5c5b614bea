//! The budget on the dashboard: nothing while under 80 %, a warning from 80 %, and at 100 % what
//! it means (model requests refused, the runtime stopped, the workspace kept) and when it
//! renews. Asked again every ten seconds, so a budget used up while the page is open shows.

use crate::api::budget::{BudgetLevel, BudgetStatus, get_my_budget};
use crate::components::chart::Metric;
use leptos::prelude::*;
use std::time::Duration;

/// "$4.20 of $5.00 this week (models $3.10, runtime time $1.10)".
fn spent_words(b: &BudgetStatus) -> String {
    format!(
        "{} of {} this {} (model requests {}, runtime time {})",
        Metric::Cost.show(b.spent_usd),
        Metric::Cost.show(b.limit_usd),
        b.period,
        Metric::Cost.show((b.spent_usd - b.compute_usd).max(0.0)),
        Metric::Cost.show(b.compute_usd)
    )
}

#[component]
pub fn BudgetBanner() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let budget = Resource::new(move || refresh.get(), |_| get_my_budget());
    Effect::new(move |_| {
        if let Ok(handle) =
            set_interval_with_handle(move || refresh.update(|n| *n += 1), Duration::from_secs(10))
        {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <Transition>
            {move || Suspend::new(async move {
                let Ok(Some(b)) = budget.await else {
                    return ().into_any();
                };
                let renews = b.renews_at.date().to_string();
                let percent = b.percent().round();
                match b.level() {
                    BudgetLevel::Fine => ().into_any(),
                    BudgetLevel::Warning => {
                        view! {
                            <div
                                role="status"
                                class="notice notice-warn mb-6"
                                data-budget="warning"
                            >
                                <p class="font-medium">
                                    {format!("You have used {percent}% of your budget.")}
                                </p>
                                <p class="mt-1">
                                    {format!(
                                        "{}. At 100% model requests are refused and your runtime stops (your workspace is kept) until the budget renews on {renews}.",
                                        spent_words(&b),
                                    )}
                                </p>
                                <BudgetBar percent />
                            </div>
                        }
                            .into_any()
                    }
                    BudgetLevel::UsedUp => {
                        view! {
                            <div
                                role="alert"
                                class="notice notice-error mb-6"
                                data-budget="used-up"
                            >
                                <p class="font-medium">"Your budget is used up."</p>
                                <p class="mt-1">
                                    {format!(
                                        "{}. Model requests are refused and your runtime is stopped; your workspace is kept. It renews on {renews}, or ask an administrator to raise or reset it.",
                                        spent_words(&b),
                                    )}
                                </p>
                                <BudgetBar percent />
                            </div>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn BudgetBar(percent: f64) -> impl IntoView {
    let width = format!("width: {}%", percent.clamp(0.0, 100.0));
    view! {
        <div
            class="mt-2 h-2 w-full overflow-hidden rounded-full bg-white/60 dark:bg-slate-900/60"
            role="meter"
            aria-label="Budget used"
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=percent.min(100.0)
        >
            <div class="h-full rounded-full bg-current" style=width></div>
        </div>
    }
}
