//! A model's form: add one, or change one in place.

use super::*;

#[component]
pub(super) fn ModelEditor(
    model: Option<ModelView>,
    credentials: Vec<CredentialView>,
    models: Vec<ModelView>,
    save: ServerAction<SaveModel>,
    form_open: RwSignal<bool>,
) -> impl IntoView {
    let m = model.clone();
    let text = |f: fn(&ModelView) -> String, default: &str| {
        RwSignal::new(m.as_ref().map_or_else(|| default.to_owned(), f))
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
