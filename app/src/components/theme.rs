//! Light, dark or follow-the-system colour theme, remembered in the browser.
//!
//! The stored choice is applied before first paint by the script in `shell.rs`; this component
//! shows the choice and changes it.

use leptos::prelude::*;

const STORAGE_KEY: &str = "clawloops-theme";

/// A colour theme choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    /// Always light.
    Light,
    /// Always dark.
    Dark,
    /// Whatever the operating system prefers.
    System,
}

impl Theme {
    const ALL: [Theme; 3] = [Theme::Light, Theme::Dark, Theme::System];

    fn key(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
            Theme::System => "system",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Theme::Light => "Light",
            Theme::Dark => "Dark",
            Theme::System => "System",
        }
    }

    fn from_key(key: &str) -> Theme {
        match key {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::System,
        }
    }
}

/// Three buttons: Light, Dark, System. The pressed one is the current choice.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    // The server cannot know the stored choice, so both sides start at System and the
    // browser corrects it right after hydration.
    let theme = RwSignal::new(Theme::System);
    Effect::new(move |_| theme.set(browser::stored()));

    let choose = move |choice: Theme| {
        theme.set(choice);
        browser::store(choice);
        browser::apply(choice);
    };

    view! {
        <div
            role="group"
            aria-label="Colour theme"
            class="inline-flex rounded-lg border border-slate-200 bg-slate-100 p-0.5 dark:border-slate-700 dark:bg-slate-800"
        >
            {Theme::ALL
                .into_iter()
                .map(|choice| {
                    view! {
                        <button
                            type="button"
                            title=format!("{} theme", choice.label())
                            aria-pressed=move || (theme.get() == choice).to_string()
                            data-theme-choice=choice.key()
                            class="theme-btn"
                            on:click=move |_| choose(choice)
                        >
                            <ThemeIcon theme=choice />
                            <span class="sr-only sm:not-sr-only">{choice.label()}</span>
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[component]
fn ThemeIcon(theme: Theme) -> impl IntoView {
    let path = match theme {
        Theme::Light => {
            "M12 4V2m0 20v-2m8-8h2M2 12h2m13.66-5.66 1.41-1.41M4.93 19.07l1.41-1.41m0-11.32L4.93 4.93m14.14 14.14-1.41-1.41M16 12a4 4 0 1 1-8 0 4 4 0 0 1 8 0Z"
        }
        Theme::Dark => "M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8Z",
        Theme::System => "M4 5h16v11H4zM8 20h8m-4-4v4",
    };
    view! {
        <svg viewBox="0 0 24 24" class="h-4 w-4" aria-hidden="true">
            <path
                d=path
                fill="none"
                stroke="currentColor"
                stroke-width="2"
                stroke-linecap="round"
                stroke-linejoin="round"
            />
        </svg>
    }
}

/// Browser-only effects. These functions are only called from event handlers and effects,
/// which never run during server rendering.
mod browser {
    use super::{STORAGE_KEY, Theme};

    pub fn stored() -> Theme {
        let stored = web_sys::window()
            .and_then(|w| w.local_storage().ok().flatten())
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
        stored.as_deref().map_or(Theme::System, Theme::from_key)
    }

    pub fn store(theme: Theme) {
        if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            // Private browsing may refuse storage; the choice then lasts for this page only.
            let _ = storage.set_item(STORAGE_KEY, theme.key());
        }
    }

    pub fn apply(theme: Theme) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let dark = match theme {
            Theme::Dark => true,
            Theme::Light => false,
            Theme::System => window
                .match_media("(prefers-color-scheme: dark)")
                .ok()
                .flatten()
                .is_some_and(|query| query.matches()),
        };
        if let Some(root) = window.document().and_then(|d| d.document_element()) {
            let _ = root.class_list().toggle_with_force("dark", dark);
        }
    }
}
