//! Provider credentials: add (sealed at once, never shown again), verify against the upstream, delete.

use super::*;

#[component]
pub(super) fn Credentials(
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
