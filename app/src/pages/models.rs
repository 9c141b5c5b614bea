//! A user's models and API keys: what they may use, the gateway's address, their keys (create,
//! shown once, revoke).

use crate::api::models::{CreateKey, KeyView, MyModels, RevokeKey, get_my_models};
use crate::components::auth::RequireUser;
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, CopyField, Empty, ErrorNotice, Field, Loading, PageHeader, Select, field_error,
    form_error,
};
use leptos::prelude::*;
use leptos_meta::Title;

/// `/models`.
#[component]
pub fn ModelsPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let page = Resource::new(move || refresh.get(), |_| get_my_models());
    let create = ServerAction::<CreateKey>::new();
    let revoke = ServerAction::<RevokeKey>::new();
    Effect::new(move |_| {
        // Both read every time (no short-circuit), so the effect keeps following both.
        let (created, revoked) = (
            create.value().get().is_some(),
            revoke.value().get().is_some(),
        );
        if created || revoked {
            refresh.update(|n| *n += 1);
        }
    });
    view! {
        <Title text="Models and API keys" />
        <RequireUser>
            <PageHeader
                title="Models and API keys".into()
                subtitle="The models you may use, through ClawLoops' OpenAI-compatible gateway. Your runtime has its own key; create personal keys for your own tools."
            >
                <a class="btn-secondary" href="/usage">
                    "Your usage"
                </a>
            </PageHeader>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => view! { <Content page create revoke /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </RequireUser>
    }
}

#[component]
fn Content(
    page: MyModels,
    create: ServerAction<CreateKey>,
    revoke: ServerAction<RevokeKey>,
) -> impl IntoView {
    let default = page
        .models
        .iter()
        .find(|m| m.is_default)
        .map(|m| m.alias.clone());
    let example = format!(
        "curl {}/chat/completions \\\n  -H \"Authorization: Bearer $CLAWLOOPS_KEY\" -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
        page.gateway_url,
        default.clone().unwrap_or_else(|| "MODEL".into())
    );
    view! {
        {page
            .suspended
            .then(|| {
                view! {
                    <div role="alert" class="notice notice-error mb-4">
                        "An administrator has suspended your API keys: requests with them are refused until the suspension is lifted. Your runtime's key is affected too."
                    </div>
                }
            })}
        <section class="card space-y-3" aria-labelledby="models-heading">
            <h2 id="models-heading" class="text-lg font-semibold">
                "Your models"
            </h2>
            {if page.models.is_empty() {
                view! {
                    <Empty text="No model is available to you yet. Ask an administrator to give you access." />
                }
                    .into_any()
            } else {
                view! {
                    <div class="overflow-x-auto">
                        <table class="table">
                            <thead>
                                <tr>
                                    <th>"Model"</th>
                                    <th>"Context window"</th>
                                    <th>"Price per 1M tokens (in / out)"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {page
                                    .models
                                    .into_iter()
                                    .map(|m| {
                                        view! {
                                            <tr data-model=m.alias.clone()>
                                                <td class="font-mono">
                                                    {m.alias.clone()}
                                                    {m
                                                        .is_default
                                                        .then(|| {
                                                            view! {
                                                                <span class="badge badge-accent ml-2">"default"</span>
                                                            }
                                                        })}
                                                </td>
                                                <td class="tabular-nums">
                                                    {m
                                                        .context_window
                                                        .map_or_else(|| "—".into(), |w| format!("{w} tokens"))}
                                                </td>
                                                <td class="tabular-nums">
                                                    {format!("${} / ${}", m.price_input, m.price_output)}
                                                </td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
            <CopyField
                label="Gateway base URL (OpenAI-compatible)"
                value=page.gateway_url.clone()
            />
            <details class="text-sm">
                <summary class="cursor-pointer text-slate-600 dark:text-slate-400">
                    "Example request"
                </summary>
                <pre class="mt-2 overflow-x-auto rounded bg-slate-100 p-3 text-xs dark:bg-slate-800">
                    {example}
                </pre>
            </details>
        </section>
        <section class="card mt-6 space-y-4" aria-labelledby="keys-heading">
            <h2 id="keys-heading" class="text-lg font-semibold">
                "API keys"
            </h2>
            <NewKey create />
            <KeyTable keys=page.keys revoke />
        </section>
    }
}

#[component]
fn NewKey(create: ServerAction<CreateKey>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let expiry = RwSignal::new("90".to_owned());
    let result = Signal::derive(move || create.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        create.dispatch(CreateKey {
            name: name.get_untracked(),
            expires_days: expiry.get_untracked().parse().ok(),
        });
    };
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            name.set(String::new());
        }
    });
    view! {
        <form
            class="flex flex-wrap items-end gap-3"
            on:submit=submit
            aria-label="Create an API key"
        >
            <div class="min-w-56 flex-1">
                <Field
                    name="name"
                    label="Name"
                    value=name
                    required=true
                    hint="Where you will use it, e.g. \"laptop CLI\"."
                    error=field_error(result, "name")
                />
            </div>
            <Select
                name="expires_days"
                label="Expires"
                value=expiry
                error=field_error(result, "expires_days")
                options=vec![
                    ("30".into(), "in 30 days".into()),
                    ("90".into(), "in 90 days".into()),
                    ("365".into(), "in a year".into()),
                    (String::new(), "never".into()),
                ]
            />
            <button type="submit" class="btn-primary" disabled=move || create.pending().get()>
                "Create key"
            </button>
        </form>
        <ErrorNotice error=form_error(result) />
        {move || match create.value().get() {
            Some(Ok(created)) => {
                Some(
                    view! {
                        <div class="notice notice-ok space-y-2" role="status">
                            <p class="font-medium">
                                {format!(
                                    "Key \"{}\" created. Copy it now: it is shown only this once.",
                                    created.key.name,
                                )}
                            </p>
                            <CopyField label="Your new API key" value=created.secret.clone() />
                        </div>
                    },
                )
            }
            _ => None,
        }}
    }
}

#[component]
fn KeyTable(keys: Vec<KeyView>, revoke: ServerAction<RevokeKey>) -> impl IntoView {
    let error = Signal::derive(move || revoke.value().get().and_then(Result::err));
    if keys.is_empty() {
        return view! { <Empty text="You have no keys yet." /> }.into_any();
    }
    view! {
        <ErrorNotice error=error />
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Key"</th>
                        <th>"Created"</th>
                        <th>"Last used"</th>
                        <th>"Expires"</th>
                        <th>"State"</th>
                        <th>
                            <span class="sr-only">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {keys
                        .into_iter()
                        .map(|k| {
                            let id = StoredValue::new(k.id.clone());
                            let tone = match k.state.as_str() {
                                "active" => "badge-ok",
                                "expired" => "badge-warn",
                                _ => "badge-neutral",
                            };
                            let can_revoke = k.kind == "personal" && k.state == "active";
                            view! {
                                <tr data-key=k.name.clone()>
                                    <td>
                                        {k.name.clone()}
                                        {(k.kind == "runtime")
                                            .then(|| {
                                                view! {
                                                    <span class="badge badge-neutral ml-2">"runtime"</span>
                                                }
                                            })}
                                    </td>
                                    <td class="font-mono text-xs">{format!("{}…", k.prefix)}</td>
                                    <td class="whitespace-nowrap">{format::utc(k.created_at)}</td>
                                    <td class="whitespace-nowrap">
                                        {k.last_used_at.map_or_else(|| "never".into(), format::utc)}
                                    </td>
                                    <td class="whitespace-nowrap">
                                        {k.expires_at.map_or_else(|| "never".into(), format::utc)}
                                    </td>
                                    <td>
                                        <span class=format!("badge {tone}")>{k.state.clone()}</span>
                                    </td>
                                    <td>
                                        {can_revoke
                                            .then(|| {
                                                view! {
                                                    <ConfirmButton
                                                        label="Revoke"
                                                        confirm_label="Revoke for good"
                                                        danger=true
                                                        disabled=revoke.pending()
                                                        on_confirm=move || {
                                                            revoke.dispatch(RevokeKey { id: id.get_value() });
                                                        }
                                                    />
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
