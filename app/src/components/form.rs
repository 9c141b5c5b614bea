//! Pieces of the admin forms: a labelled checkbox, and what a save came to (the error, or a
//! sentence saying it was saved).

use crate::AppError;
use crate::components::ui::{ErrorNotice, SuccessNotice, form_error};
use leptos::prelude::*;

/// A checkbox with its label, bound to `value`.
#[component]
pub fn Checkbox(name: &'static str, label: &'static str, value: RwSignal<bool>) -> impl IntoView {
    view! {
        <label class="flex items-center gap-2 text-sm">
            <input
                type="checkbox"
                name=name
                prop:checked=move || value.get()
                on:change=move |ev| value.set(event_target_checked(&ev))
            />
            {label}
        </label>
    }
}

/// The error of a failed save (field errors show at their fields), or `saved` once it worked.
#[component]
pub fn SaveOutcome<T: Clone + Send + Sync + 'static>(
    result: Signal<Option<Result<T, AppError>>>,
    saved: &'static str,
) -> impl IntoView {
    view! {
        <ErrorNotice error=form_error(result) />
        {move || {
            matches!(result.get(), Some(Ok(_)))
                .then(|| view! { <SuccessNotice>{saved}</SuccessNotice> })
        }}
    }
}
