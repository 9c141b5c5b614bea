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

mod compute;
mod credentials;
mod editor;
use compute::ComputePricesSection;
use credentials::Credentials;
use editor::ModelEditor;

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
            // Its own resource, so outside the registry's suspense (a resource made while a
            // suspense resolves does not hydrate).
            <ComputePricesSection />
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
                                                        .map_or_else(|| "no key".into(), |c| format!("key: {c}"))}
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
        .map_or("Other", |(_, l)| *l)
}
