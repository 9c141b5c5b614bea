//! One invitation: who it is for, its state, revoke or resend.

use super::*;

/// One invitation: its facts, revoke, renew.
#[component]
pub fn InvitationDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let revoke = ServerAction::<RevokeInvitation>::new();
    let reissue = ServerAction::<ReissueInvitation>::new();
    let invitation = Resource::new(
        move || (id.get(), revoke.version().get(), reissue.version().get()),
        |(id, _, _)| get_invitation(id),
    );
    let error = Signal::derive(move || {
        revoke
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| reissue.value().get().and_then(Result::err))
    });
    let busy = Signal::derive(move || revoke.pending().get() || reissue.pending().get());
    view! {
        <Title text="Invitation" />
        <RequireUser admin=true>
            <AdminNav />
            <ErrorNotice error=error />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match invitation.await {
                        Ok(i) => {
                            let id = StoredValue::new(i.id.clone());
                            let renewable = matches!(
                                i.status,
                                InvitationStatus::Pending | InvitationStatus::Expired
                            );
                            let pending = i.status == InvitationStatus::Pending;
                            view! {
                                <PageHeader
                                    title="Invitation".into()
                                    subtitle=i.note.clone().unwrap_or_default()
                                >
                                    {status_pill(i.status)}
                                </PageHeader>
                                <div class="grid gap-6 lg:grid-cols-2">
                                    <section class="card text-sm" aria-label="Facts">
                                        <dl class="space-y-1.5">
                                            <Fact label="Role" value=i.role.label().into() />
                                            <Fact
                                                label="Username"
                                                value=i
                                                    .username
                                                    .clone()
                                                    .unwrap_or_else(|| "Chosen by the invitee".into())
                                            />
                                            <Fact
                                                label="E-mail"
                                                value=i.email.clone().unwrap_or_else(|| "—".into())
                                            />
                                            <Fact
                                                label="Created"
                                                value=format!(
                                                    "{} by {}",
                                                    format::utc(i.created_at),
                                                    i.created_by.clone().unwrap_or_else(|| "—".into()),
                                                )
                                            />
                                            <Fact label="Expires" value=format::utc(i.expires_at) />
                                            {i
                                                .consumed_at
                                                .map(|at| {
                                                    view! {
                                                        <Fact
                                                            label="Accepted"
                                                            value=format!(
                                                                "{} by {}",
                                                                format::utc(at),
                                                                i
                                                                    .consumed_by
                                                                    .clone()
                                                                    .unwrap_or_else(|| "a deleted account".into()),
                                                            )
                                                        />
                                                    }
                                                })}
                                            {i
                                                .revoked_at
                                                .map(|at| {
                                                    view! { <Fact label="Revoked" value=format::utc(at) /> }
                                                })}
                                        </dl>
                                    </section>
                                    <section class="card space-y-3" aria-label="Actions">
                                        <h2 class="text-lg font-semibold">"Actions"</h2>
                                        <div class="flex flex-wrap gap-2">
                                            {renewable
                                                .then(|| {
                                                    view! {
                                                        <button
                                                            type="button"
                                                            class="btn-secondary"
                                                            disabled=move || busy.get()
                                                            on:click=move |_| {
                                                                reissue
                                                                    .dispatch(ReissueInvitation {
                                                                        id: id.get_value(),
                                                                        expires_in_hours: 72,
                                                                    });
                                                            }
                                                        >
                                                            "New link (valid 72 hours)"
                                                        </button>
                                                    }
                                                })}
                                            {pending
                                                .then(|| {
                                                    view! {
                                                        <ConfirmButton
                                                            label="Revoke"
                                                            confirm_label="Yes, revoke"
                                                            danger=true
                                                            disabled=busy
                                                            on_confirm=move || {
                                                                revoke
                                                                    .dispatch(RevokeInvitation {
                                                                        id: id.get_value(),
                                                                    });
                                                            }
                                                        />
                                                    }
                                                })}
                                        </div>
                                        {(!renewable)
                                            .then(|| {
                                                view! {
                                                    <p class="text-sm text-slate-500">
                                                        "This invitation is finished; nothing more can be done with it."
                                                    </p>
                                                }
                                            })}
                                        {move || {
                                            reissue
                                                .value()
                                                .get()
                                                .and_then(Result::ok)
                                                .map(|link| view! { <LinkOnce link /> })
                                        }}
                                    </section>
                                </div>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    }
                })}
            </Suspense>
        </RequireUser>
    }
}
