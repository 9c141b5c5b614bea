//! Small building blocks every page uses: form fields, notices, page headers, paging,
//! confirmation buttons, copyable text.

use crate::AppError;
use leptos::prelude::*;

/// The page title block.
#[component]
pub fn PageHeader(
    title: String,
    #[prop(optional, into)] subtitle: Option<String>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <header class="mb-6 flex flex-wrap items-end justify-between gap-4">
            <div>
                <h1 class="text-2xl font-bold tracking-tight">{title}</h1>
                {subtitle
                    .map(|s| {
                        view! {
                            <p class="mt-1 max-w-2xl text-slate-600 dark:text-slate-400">{s}</p>
                        }
                    })}
            </div>
            {children.map(|c| view! { <div class="flex flex-wrap gap-2">{c()}</div> })}
        </header>
    }
}

/// A labelled input with its hint and its error underneath, wired for screen readers.
#[component]
pub fn Field(
    /// The `name` and `id` of the input; also the field name in server errors.
    name: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] required: bool,
    #[prop(optional)] readonly: bool,
    #[prop(optional)] autofocus: bool,
    /// The error to show, if any.
    #[prop(into)]
    error: Signal<Option<String>>,
) -> impl IntoView {
    let hint_id = format!("{name}-hint");
    let error_id = format!("{name}-error");
    let described = {
        let (hint_id, error_id) = (hint_id.clone(), error_id.clone());
        move || {
            let mut ids = Vec::new();
            if hint.is_some() {
                ids.push(hint_id.clone());
            }
            if error.get().is_some() {
                ids.push(error_id.clone());
            }
            ids.join(" ")
        }
    };
    view! {
        <div class="space-y-1">
            <label for=name class="block text-sm font-medium">
                {label}
            </label>
            <input
                id=name
                name=name
                type=kind
                class="input"
                autocomplete=autocomplete
                required=required
                readonly=readonly
                autofocus=autofocus
                aria-invalid=move || error.get().is_some().to_string()
                aria-describedby=described
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            {hint
                .map(|h| {
                    view! {
                        <p id=hint_id class="text-xs text-slate-500 dark:text-slate-400">
                            {h}
                        </p>
                    }
                })}
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p id=error_id.clone() class="text-sm text-red-700 dark:text-red-300">
                                {e}
                            </p>
                        }
                    })
            }}
        </div>
    }
}

/// The error of the last attempt, for one field.
pub fn field_error<T: Clone + Send + Sync + 'static>(
    result: Signal<Option<Result<T, AppError>>>,
    field: &'static str,
) -> Signal<Option<String>> {
    Signal::derive(move || {
        result.with(|r| match r {
            Some(Err(e)) => e.field_message(field).map(str::to_owned),
            _ => None,
        })
    })
}

/// An error that belongs to no field, from the last attempt.
pub fn form_error<T: Clone + Send + Sync + 'static>(
    result: Signal<Option<Result<T, AppError>>>,
) -> Signal<Option<AppError>> {
    Signal::derive(move || {
        result.with(|r| match r {
            Some(Err(AppError::Validation { field: Some(_), .. })) => None,
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        })
    })
}

/// A red notice for an error, in words.
#[component]
pub fn ErrorNotice(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().map(|e| {
            view! {
                <div role="alert" class="notice notice-error" data-code=e.code()>
                    {e.to_string()}
                </div>
            }
        })
    }
}

/// A green notice.
#[component]
pub fn SuccessNotice(children: Children) -> impl IntoView {
    view! {
        <div role="status" class="notice notice-ok">
            {children()}
        </div>
    }
}

/// What an empty list or chart shows instead: one quiet, centred line.
#[component]
pub fn Empty(text: &'static str) -> impl IntoView {
    view! { <p class="py-4 text-center text-sm text-slate-500">{text}</p> }
}

/// A centred "loading" line for suspense fallbacks.
#[component]
pub fn Loading() -> impl IntoView {
    view! {
        <p class="py-8 text-center text-sm text-slate-500" aria-busy="true">
            "Loading…"
        </p>
    }
}

/// Previous/next links for a paged list; `href(page)` builds each link.
#[component]
pub fn Pager(
    page: i64,
    per_page: i64,
    total: i64,
    href: impl Fn(i64) -> String + 'static,
) -> impl IntoView {
    let pages = ((total + per_page - 1) / per_page).max(1);
    let first = if total == 0 {
        0
    } else {
        (page - 1) * per_page + 1
    };
    let last = (page * per_page).min(total);
    view! {
        <nav aria-label="Pages" class="mt-4 flex items-center justify-between text-sm">
            <p class="text-slate-600 dark:text-slate-400">
                {format!("{first}–{last} of {total}")}
            </p>
            <div class="flex gap-2">
                {(page > 1)
                    .then(|| {
                        view! {
                            <a class="btn-secondary" href=href(page - 1)>
                                "Previous"
                            </a>
                        }
                    })}
                {(page < pages)
                    .then(|| {
                        view! {
                            <a class="btn-secondary" href=href(page + 1)>
                                "Next"
                            </a>
                        }
                    })}
            </div>
        </nav>
    }
}

/// A button that asks "are you sure?" in place before doing something that cannot be undone.
#[component]
pub fn ConfirmButton(
    label: &'static str,
    confirm_label: &'static str,
    #[prop(optional)] danger: bool,
    #[prop(into)] disabled: Signal<bool>,
    on_confirm: impl Fn() + Send + Sync + 'static,
) -> impl IntoView {
    let asking = RwSignal::new(false);
    let on_confirm = StoredValue::new(on_confirm);
    let class = if danger {
        "btn-danger"
    } else {
        "btn-secondary"
    };
    view! {
        <Show
            when=move || asking.get()
            fallback=move || {
                view! {
                    <button
                        type="button"
                        class=class
                        disabled=move || disabled.get()
                        on:click=move |_| asking.set(true)
                    >
                        {label}
                    </button>
                }
            }
        >
            <span class="inline-flex items-center gap-2" role="group" aria-label=label>
                <button
                    type="button"
                    class="btn-danger"
                    on:click=move |_| {
                        asking.set(false);
                        on_confirm.with_value(|run| run());
                    }
                >
                    {confirm_label}
                </button>
                <button type="button" class="btn-secondary" on:click=move |_| asking.set(false)>
                    "Cancel"
                </button>
            </span>
        </Show>
    }
}

/// Read-only text with a Copy button (for links and one-time passwords shown once).
#[component]
pub fn CopyField(label: &'static str, value: String) -> impl IntoView {
    // One id per label, so several on a page each keep their own label.
    let id = format!(
        "copy-{}",
        label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            })
            .collect::<String>()
    );
    let copied = RwSignal::new(false);
    let text = value.clone();
    let copy = move |_| {
        if let Some(clipboard) = web_sys::window().map(|w| w.navigator().clipboard()) {
            let _ = clipboard.write_text(&text);
            copied.set(true);
        }
    };
    view! {
        <div class="space-y-1">
            <label class="block text-sm font-medium" for=id.clone()>
                {label}
            </label>
            <div class="flex gap-2">
                <input
                    id=id
                    class="input font-mono text-xs"
                    readonly
                    value=value
                    on:focus=move |ev| {
                        use wasm_bindgen::JsCast;
                        if let Some(input) = ev
                            .target()
                            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                        {
                            input.select();
                        }
                    }
                />
                <button type="button" class="btn-secondary" on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
        </div>
    }
}

/// A labelled `<select>` over `(value, label)` options.
#[component]
pub fn Select(
    name: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    options: Vec<(String, String)>,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(into, optional)] error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="space-y-1">
            <label for=name class="block text-sm font-medium">
                {label}
            </label>
            <select
                id=name
                name=name
                class="input"
                aria-invalid=move || error.get().is_some().to_string()
                on:change=move |ev| value.set(event_target_value(&ev))
                prop:value=move || value.get()
            >
                {options
                    .into_iter()
                    .map(|(v, l)| {
                        let selected = value.get_untracked() == v;
                        view! {
                            <option value=v selected=selected>
                                {l}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            {hint.map(|h| view! { <p class="text-xs text-slate-500 dark:text-slate-400">{h}</p> })}
            {move || {
                error
                    .get()
                    .map(|e| view! { <p class="text-sm text-red-700 dark:text-red-300">{e}</p> })
            }}
        </div>
    }
}

/// A coloured word for a status or role.
#[component]
pub fn Pill(text: &'static str, #[prop(default = "neutral")] tone: &'static str) -> impl IntoView {
    let class = match tone {
        "ok" => "badge badge-ok",
        "bad" => "badge badge-bad",
        "warn" => "badge badge-warn",
        "accent" => "badge badge-accent",
        _ => "badge badge-neutral",
    };
    view! { <span class=class>{text}</span> }
}

/// One fact of a `<dl>`: its label on the left, its value on the right (`mono` for ids: one
/// line, truncated, the whole value in its tooltip).
#[component]
pub fn Fact(label: &'static str, value: String, #[prop(optional)] mono: bool) -> impl IntoView {
    let title = value.clone();
    view! {
        <div class="flex justify-between gap-3">
            <dt class="whitespace-nowrap text-slate-500 dark:text-slate-400">{label}</dt>
            <dd
                class=if mono { "truncate font-mono text-xs leading-5" } else { "text-right" }
                title=title
            >
                {value}
            </dd>
        </div>
    }
}
