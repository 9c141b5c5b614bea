//! The user page's single sign-on section: the provider identities that sign this account in,
//! and requests to link one (someone signed in with the account's verified address).

use super::*;
use crate::api::sso::{LinkIdentity, SsoLinks, UnlinkIdentity};

/// The section; `identities` is the page's resource, `changed` refetches it.
#[component]
pub fn SsoSection(
    user_id: Memo<String>,
    identities: Resource<Result<SsoLinks, AppError>>,
    changed: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let link = ServerAction::<LinkIdentity>::new();
    let unlink = ServerAction::<UnlinkIdentity>::new();
    Effect::new(move |_| {
        let linked = matches!(link.value().get(), Some(Ok(_)));
        let unlinked = matches!(unlink.value().get(), Some(Ok(_)));
        if linked || unlinked {
            changed();
        }
    });
    let error = Signal::derive(move || {
        link.value()
            .get()
            .and_then(Result::err)
            .or_else(|| unlink.value().get().and_then(Result::err))
    });
    let busy = Signal::derive(move || link.pending().get() || unlink.pending().get());
    view! {
        <section class="card mt-6 space-y-3" aria-labelledby="sso-heading">
            <h2 id="sso-heading" class="text-lg font-semibold">
                "Single sign-on"
            </h2>
            <ErrorNotice error />
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match identities.await {
                        Ok(list) => view! { <SsoTables list user_id link unlink busy /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn SsoTables(
    list: SsoLinks,
    user_id: Memo<String>,
    link: ServerAction<LinkIdentity>,
    unlink: ServerAction<UnlinkIdentity>,
    busy: Signal<bool>,
) -> impl IntoView {
    let identities = if list.identities.is_empty() {
        view! { <Empty text="No provider identity signs in this account." /> }.into_any()
    } else {
        view! {
            <table class="table" aria-label="Linked identities">
                <thead>
                    <tr>
                        <th>"Provider"</th>
                        <th>"Address"</th>
                        <th>"Linked"</th>
                        <th>"Last sign-in"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .identities
                        .into_iter()
                        .map(|i| {
                            let provider = i.provider.clone();
                            view! {
                                <tr>
                                    <td>{i.provider_name}</td>
                                    <td>{i.email.unwrap_or_else(|| "—".into())}</td>
                                    <td>
                                        {format!("{} ({})", format::utc(i.linked_at), i.linked_by)}
                                    </td>
                                    <td>
                                        {i
                                            .last_login_at
                                            .map_or_else(|| "never".into(), format::utc)}
                                    </td>
                                    <td>
                                        <ConfirmButton
                                            label="Unlink"
                                            confirm_label="Yes, unlink"
                                            danger=true
                                            disabled=busy
                                            on_confirm=move || {
                                                unlink
                                                    .dispatch(UnlinkIdentity {
                                                        id: user_id.get_untracked(),
                                                        provider: provider.clone(),
                                                    });
                                            }
                                        />
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    let requests = (!list.requests.is_empty())
        .then(|| {
            view! {
                <h3 class="font-semibold">"Asked to link"</h3>
                <p class="text-sm text-slate-600 dark:text-slate-400">
                    "Someone signed in with a provider that vouches for this account's address. They can link it with the account's password; link it for them only if you know it is them."
                </p>
                <table class="table" aria-label="Link requests">
                    <thead>
                        <tr>
                            <th>"Provider"</th>
                            <th>"Address"</th>
                            <th>"Asked"</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>
                        {list
                            .requests
                            .into_iter()
                            .map(|r| {
                                let request = r.id.clone();
                                view! {
                                    <tr>
                                        <td>{r.provider_name}</td>
                                        <td>{r.email}</td>
                                        <td>{format::utc(r.requested_at)}</td>
                                        <td>
                                            <ConfirmButton
                                                label="Link to this account"
                                                confirm_label="Yes, link"
                                                disabled=busy
                                                on_confirm=move || {
                                                    link.dispatch(LinkIdentity {
                                                        id: user_id.get_untracked(),
                                                        request: request.clone(),
                                                    });
                                                }
                                            />
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
        });
    view! {
        {identities}
        {requests}
    }
}
