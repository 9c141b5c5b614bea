//! The model registry and provider credentials.

use super::AdminNav;
use crate::api::models::{
    AddCredential, CredentialView, DeleteCredential, DeleteModel, ModelForm, ModelView,
    ModelsAdmin, SaveModel, UPSTREAM_KINDS, VerifyCredential, get_models_admin,
};
use crate::components::auth::RequireUser;
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, Empty, ErrorNotice, Field, Loading, PageHeader, Select, SuccessNotice,
    field_error, form_error,
};
use leptos::prelude::*;
use leptos_meta::Title;

/// `/admin/models`.
#[component]
pub fn ModelsAdminPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let page = Resource::new(move || refresh.get(), |_| get_models_admin());
    let save = ServerAction::<SaveModel>::new();
    let delete = ServerAction::<DeleteModel>::new();
    let add = ServerAction::<AddCredential>::new();
    let verify = ServerAction::<VerifyCredential>::new();
    let remove = ServerAction::<DeleteCredential>::new();
    Effect::new(move |_| {
        // Read every action (no short-circuit), so the effect keeps following all of them.
        let changed = [
            matches!(save.value().get(), Some(Ok(_))),
            delete.value().get().is_some(),
            matches!(add.value().get(), Some(Ok(_))),
            verify.value().get().is_some(),
            remove.value().get().is_some(),
        ];
        if changed.contains(&true) {
            refresh.update(|n| *n += 1);
        }
    });
    // The model being edited (None: the form creates a new one); kept outside the list so a
    // refresh does not wipe a half-filled form.
    let editing = RwSignal::new(None::<ModelView>);
    let form_open = RwSignal::new(false);
    view! {
        <Title text="Models" />
        <RequireUser admin=true>
            <PageHeader
                title="Models".into()
                subtitle="What users and runtimes may call through the gateway, and the provider keys it uses. Keys are stored encrypted and never shown again."
            >
                <button
                    type="button"
                    class="btn-primary"
                    on:click=move |_| {
                        editing.set(None);
                        form_open.set(true);
                    }
                >
                    "Add a model"
                </button>
            </PageHeader>
            <AdminNav />
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => {
                            view! {
                                <Content page editing form_open save delete add verify remove />
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </RequireUser>
    }
}

#[component]
fn Content(
    page: ModelsAdmin,
    editing: RwSignal<Option<ModelView>>,
    form_open: RwSignal<bool>,
    save: ServerAction<SaveModel>,
    delete: ServerAction<DeleteModel>,
    add: ServerAction<AddCredential>,
    verify: ServerAction<VerifyCredential>,
    remove: ServerAction<DeleteCredential>,
) -> impl IntoView {
    let credentials = page.credentials.clone();
    let models = page.models.clone();
    let delete_error = Signal::derive(move || delete.value().get().and_then(Result::err));
    view! {
        <Show when=move || {
            form_open.get()
        }>
            {
                let credentials = credentials.clone();
                let models = models.clone();
                move || {
                    view! {
                        <ModelEditor
                            model=editing.get()
                            credentials=credentials.clone()
                            models=models.clone()
                            save
                            form_open
                        />
                    }
                }
            }
        </Show>
        <ErrorNotice error=delete_error />
        <section class="card overflow-x-auto" aria-label="Registered models">
            {if page.models.is_empty() {
                view! {
                    <Empty text="No model yet. Add one (for example your LiteLLM proxy's model) so users and runtimes can use it." />
                }
                    .into_any()
            } else {
                view! {
                    <table class="table">
                        <thead>
                            <tr>
                                <th>"Name"</th>
                                <th>"Upstream"</th>
                                <th>"Who"</th>
                                <th>"Price in / out (1M)"</th>
                                <th>"Fallback"</th>
                                <th>"State"</th>
                                <th>
                                    <span class="sr-only">"Actions"</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {page
                                .models
                                .into_iter()
                                .map(|m| {
                                    let who = match m.visibility.as_str() {
                                        "roles" => format!("roles: {}", m.visible_roles.join(", ")),
                                        "users" => format!("users: {}", m.visible_users.join(", ")),
                                        _ => "everyone".into(),
                                    };
                                    let edit = m.clone();
                                    let id = StoredValue::new(m.id.clone());
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
                                            <td class="text-xs">
                                                <div>
                                                    {format!(
                                                        "{} · {}",
                                                        kind_label(&m.upstream_kind),
                                                        m.upstream_model,
                                                    )}
                                                </div>
                                                <div class="text-slate-500">{m.base_url.clone()}</div>
                                                <div class="text-slate-500">
                                                    {m
                                                        .credential_name
                                                        .clone()
                                                        .map(|c| format!("key: {c}"))
                                                        .unwrap_or_else(|| "no key".into())}
                                                </div>
                                            </td>
                                            <td class="text-xs">{who}</td>
                                            <td class="tabular-nums">
                                                {format!("${} / ${}", m.price_input, m.price_output)}
                                            </td>
                                            <td class="font-mono text-xs">
                                                {m.fallback_alias.clone().unwrap_or_else(|| "—".into())}
                                            </td>
                                            <td>
                                                {if m.enabled {
                                                    view! { <span class="badge badge-ok">"on"</span> }
                                                } else {
                                                    view! { <span class="badge badge-neutral">"off"</span> }
                                                }}
                                            </td>
                                            <td>
                                                <div class="flex gap-1">
                                                    <button
                                                        type="button"
                                                        class="btn-secondary"
                                                        on:click=move |_| {
                                                            editing.set(Some(edit.clone()));
                                                            form_open.set(true);
                                                        }
                                                    >
                                                        "Edit"
                                                    </button>
                                                    <ConfirmButton
                                                        label="Delete"
                                                        confirm_label="Delete model"
                                                        danger=true
                                                        disabled=delete.pending()
                                                        on_confirm=move || {
                                                            delete.dispatch(DeleteModel { id: id.get_value() });
                                                        }
                                                    />
                                                </div>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
        <Credentials credentials=page.credentials add verify remove />
    }
}

fn kind_label(kind: &str) -> &'static str {
    UPSTREAM_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, l)| *l)
        .unwrap_or("Other")
}

#[component]
fn ModelEditor(
    model: Option<ModelView>,
    credentials: Vec<CredentialView>,
    models: Vec<ModelView>,
    save: ServerAction<SaveModel>,
    form_open: RwSignal<bool>,
) -> impl IntoView {
    let m = model.clone();
    let text = |f: fn(&ModelView) -> String, default: &str| {
        RwSignal::new(m.as_ref().map(f).unwrap_or_else(|| default.to_owned()))
    };
    let alias = text(|m| m.alias.clone(), "");
    let kind = text(|m| m.upstream_kind.clone(), "openai-compatible");
    let base_url = text(|m| m.base_url.clone(), "");
    let upstream_model = text(|m| m.upstream_model.clone(), "");
    let credential = text(|m| m.credential_id.clone().unwrap_or_default(), "");
    let visibility = text(|m| m.visibility.clone(), "everyone");
    let roles = text(|m| m.visible_roles.join(", "), "");
    let users = text(|m| m.visible_users.join(", "), "");
    let price_in = text(|m| m.price_input.clone(), "0");
    let price_out = text(|m| m.price_output.clone(), "0");
    let context = text(
        |m| m.context_window.map(|c| c.to_string()).unwrap_or_default(),
        "",
    );
    let fallback = text(|m| m.fallback_id.clone().unwrap_or_default(), "");
    let enabled = RwSignal::new(m.as_ref().is_none_or(|m| m.enabled));
    let is_default = RwSignal::new(m.as_ref().is_some_and(|m| m.is_default));
    let id = m.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    let result = Signal::derive(move || save.value().get());
    let submit = {
        let id = id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            save.dispatch(SaveModel {
                form: ModelForm {
                    id: id.clone(),
                    alias: alias.get_untracked(),
                    upstream_kind: kind.get_untracked(),
                    base_url: base_url.get_untracked(),
                    upstream_model: upstream_model.get_untracked(),
                    credential_id: credential.get_untracked(),
                    enabled: enabled.get_untracked(),
                    visibility: visibility.get_untracked(),
                    visible_roles: roles.get_untracked(),
                    visible_users: users.get_untracked(),
                    is_default: is_default.get_untracked(),
                    price_input: price_in.get_untracked(),
                    price_output: price_out.get_untracked(),
                    context_window: context.get_untracked(),
                    fallback_id: fallback.get_untracked(),
                },
            });
        }
    };
    let mut credential_options = vec![(String::new(), "None (no API key)".to_owned())];
    credential_options.extend(
        credentials
            .iter()
            .map(|c| (c.id.clone(), format!("{} ({})", c.name, c.hint))),
    );
    let mut fallback_options = vec![(String::new(), "None".to_owned())];
    fallback_options.extend(
        models
            .iter()
            .filter(|o| o.id != id)
            .map(|o| (o.id.clone(), o.alias.clone())),
    );
    let kinds = UPSTREAM_KINDS
        .iter()
        .map(|(k, l)| ((*k).to_owned(), (*l).to_owned()))
        .collect::<Vec<_>>();
    let title = if model.is_some() {
        "Edit model"
    } else {
        "Add a model"
    };
    view! {
        <form class="card mb-6 space-y-4" on:submit=submit aria-label=title novalidate=true>
            <div class="flex items-center justify-between">
                <h2 class="text-lg font-semibold">{title}</h2>
                <button type="button" class="btn-secondary" on:click=move |_| form_open.set(false)>
                    "Close"
                </button>
            </div>
            <div class="grid gap-4 md:grid-cols-2">
                <Field
                    name="alias"
                    label="Name users ask for"
                    value=alias
                    required=true
                    autofocus=true
                    hint="Letters, digits and . _ : / - (e.g. gpt-4o-mini)."
                    error=field_error(result, "alias")
                />
                <Select
                    name="upstream_kind"
                    label="Upstream kind"
                    value=kind
                    options=kinds
                    error=field_error(result, "upstream_kind")
                />
                <Field
                    name="base_url"
                    label="Upstream base URL"
                    value=base_url
                    required=true
                    hint="OpenAI-compatible, ending in /v1 (e.g. http://litellm:4000/v1)."
                    error=field_error(result, "base_url")
                />
                <Field
                    name="upstream_model"
                    label="Model name at the upstream"
                    value=upstream_model
                    required=true
                    error=field_error(result, "upstream_model")
                />
                <Select
                    name="credential_id"
                    label="Provider key"
                    value=credential
                    options=credential_options
                    error=field_error(result, "credential_id")
                />
                <Select
                    name="fallback_id"
                    label="Fallback when the upstream fails"
                    value=fallback
                    options=fallback_options
                    error=field_error(result, "fallback_id")
                    hint="Tried on connection errors, timeouts and 5xx, before anything was sent back."
                />
                <Field
                    name="price_input"
                    label="Price per 1M input tokens ($)"
                    value=price_in
                    error=field_error(result, "price_input")
                />
                <Field
                    name="price_output"
                    label="Price per 1M output tokens ($)"
                    value=price_out
                    error=field_error(result, "price_output")
                />
                <Field
                    name="context_window"
                    label="Context window (tokens)"
                    value=context
                    hint="Optional. Requests may ask for at most this much output; without it, a request that names no max_tokens is limited to 4,096 output tokens."
                    error=field_error(result, "context_window")
                />
                <Select
                    name="visibility"
                    label="Who may use it"
                    value=visibility
                    error=field_error(result, "visibility")
                    options=vec![
                        ("everyone".into(), "Everyone".into()),
                        ("roles".into(), "Some roles".into()),
                        ("users".into(), "Some users".into()),
                    ]
                />
                <Show when=move || visibility.get() == "roles">
                    <Field
                        name="visible_roles"
                        label="Roles"
                        value=roles
                        hint="Comma-separated: user, admin."
                        error=field_error(result, "visible_roles")
                    />
                </Show>
                <Show when=move || visibility.get() == "users">
                    <Field
                        name="visible_users"
                        label="Usernames"
                        value=users
                        hint="Comma-separated."
                        error=field_error(result, "visible_users")
                    />
                </Show>
            </div>
            <div class="flex flex-wrap gap-6 text-sm">
                <label class="flex items-center gap-2">
                    <input
                        type="checkbox"
                        name="enabled"
                        prop:checked=move || enabled.get()
                        on:change=move |ev| enabled.set(event_target_checked(&ev))
                    />
                    "Enabled"
                </label>
                <label class="flex items-center gap-2">
                    <input
                        type="checkbox"
                        name="is_default"
                        prop:checked=move || is_default.get()
                        on:change=move |ev| is_default.set(event_target_checked(&ev))
                    />
                    "Default model (runtimes use it first)"
                </label>
            </div>
            <ErrorNotice error=form_error(result) />
            {move || {
                matches!(result.get(), Some(Ok(_)))
                    .then(|| {
                        view! {
                            <SuccessNotice>
                                "Saved. Gateways pick it up at once; running runtimes see new models at their next start."
                            </SuccessNotice>
                        }
                    })
            }}
            <button type="submit" class="btn-primary" disabled=move || save.pending().get()>
                "Save model"
            </button>
        </form>
    }
}

#[component]
fn Credentials(
    credentials: Vec<CredentialView>,
    add: ServerAction<AddCredential>,
    verify: ServerAction<VerifyCredential>,
    remove: ServerAction<DeleteCredential>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let verify_url = RwSignal::new(String::new());
    let result = Signal::derive(move || add.value().get());
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) {
            name.set(String::new());
            secret.set(String::new());
            verify_url.set(String::new());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        add.dispatch(AddCredential {
            name: name.get_untracked(),
            secret: secret.get_untracked(),
            verify_url: verify_url.get_untracked(),
        });
    };
    let action_error = Signal::derive(move || {
        let (removed, verified) = (remove.value().get(), verify.value().get());
        removed
            .and_then(Result::err)
            .or_else(|| verified.and_then(Result::err))
    });
    view! {
        <section class="card mt-6 space-y-4" aria-labelledby="credentials-heading">
            <h2 id="credentials-heading" class="text-lg font-semibold">
                "Provider keys"
            </h2>
            <ErrorNotice error=action_error />
            {if credentials.is_empty() {
                view! { <Empty text="No provider key yet." /> }.into_any()
            } else {
                view! {
                    <div class="overflow-x-auto">
                        <table class="table">
                            <thead>
                                <tr>
                                    <th>"Name"</th>
                                    <th>"Key"</th>
                                    <th>"Used by"</th>
                                    <th>"Last check"</th>
                                    <th>
                                        <span class="sr-only">"Actions"</span>
                                    </th>
                                </tr>
                            </thead>
                            <tbody>
                                {credentials
                                    .into_iter()
                                    .map(|c| {
                                        let id = StoredValue::new(c.id.clone());
                                        let check = match (c.verify_ok, c.verified_at) {
                                            (Some(true), Some(at)) => {
                                                view! {
                                                    <span>
                                                        <span class="badge badge-ok">"works"</span>
                                                        " "
                                                        {format::utc(at)}
                                                    </span>
                                                }
                                                    .into_any()
                                            }
                                            (Some(false), Some(at)) => {
                                                view! {
                                                    <span>
                                                        <span class="badge badge-bad">"failed"</span>
                                                        " "
                                                        {format::utc(at)}
                                                    </span>
                                                }
                                                    .into_any()
                                            }
                                            _ => {
                                                view! {
                                                    <span class="text-slate-500">"never checked"</span>
                                                }
                                                    .into_any()
                                            }
                                        };
                                        view! {
                                            <tr data-credential=c.name.clone()>
                                                <td>{c.name.clone()}</td>
                                                <td class="font-mono text-xs">{c.hint.clone()}</td>
                                                <td class="text-xs">
                                                    {if c.used_by.is_empty() {
                                                        "—".to_owned()
                                                    } else {
                                                        c.used_by.join(", ")
                                                    }}
                                                </td>
                                                <td class="text-xs">
                                                    {check}
                                                    <div class="text-slate-500">{c.verify_message.clone()}</div>
                                                </td>
                                                <td>
                                                    <div class="flex gap-1">
                                                        <button
                                                            type="button"
                                                            class="btn-secondary"
                                                            disabled=move || verify.pending().get()
                                                            on:click=move |_| {
                                                                verify
                                                                    .dispatch(VerifyCredential {
                                                                        id: id.get_value(),
                                                                    });
                                                            }
                                                        >
                                                            {move || {
                                                                if verify.pending().get() {
                                                                    "Checking…"
                                                                } else {
                                                                    "Verify"
                                                                }
                                                            }}
                                                        </button>
                                                        <ConfirmButton
                                                            label="Delete"
                                                            confirm_label="Delete key"
                                                            danger=true
                                                            disabled=remove.pending()
                                                            on_confirm=move || {
                                                                remove
                                                                    .dispatch(DeleteCredential {
                                                                        id: id.get_value(),
                                                                    });
                                                            }
                                                        />
                                                    </div>
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
            <form
                class="grid gap-3 md:grid-cols-4 md:items-end"
                on:submit=submit
                aria-label="Add a provider key"
                novalidate=true
            >
                <Field
                    name="name"
                    label="Name"
                    value=name
                    required=true
                    error=field_error(result, "name")
                />
                <Field
                    name="secret"
                    label="API key"
                    kind="password"
                    autocomplete="off"
                    value=secret
                    required=true
                    hint="Stored encrypted; never shown again."
                    error=field_error(result, "secret")
                />
                <Field
                    name="verify_url"
                    label="Check against (optional)"
                    value=verify_url
                    hint="Base URL whose /models the Verify button lists."
                    error=field_error(result, "verify_url")
                />
                <button type="submit" class="btn-primary" disabled=move || add.pending().get()>
                    "Add key"
                </button>
            </form>
            <ErrorNotice error=form_error(result) />
        </section>
    }
}
