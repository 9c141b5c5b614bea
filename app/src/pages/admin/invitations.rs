use super::AdminNav;
use crate::api::invitations::{
    CreateInvitation, EXPIRY_HOURS, InvitationLink, InvitationSummary, NewInvitationForm,
    ReissueInvitation, RevokeInvitation, get_invitation, list_invitations,
};
use crate::components::auth::RequireUser;
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, CopyField, Empty, ErrorNotice, Field, Loading, PageHeader, Pager, Pill, Select,
    field_error, form_error,
};
use crate::model::{InvitationStatus, Role, USERNAME_POLICY};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

fn status_pill(status: InvitationStatus) -> impl IntoView {
    let tone = match status {
        InvitationStatus::Pending => "ok",
        InvitationStatus::Expired => "warn",
        InvitationStatus::Consumed => "accent",
        InvitationStatus::Revoked => "bad",
    };
    view! { <Pill text=status.label() tone /> }
}

fn list_href(status: Option<InvitationStatus>, page: i64) -> String {
    format!(
        "/admin/invitations?status={}&page={page}",
        status.map_or("", InvitationStatus::as_str)
    )
}

/// Invitations, by status.
#[component]
pub fn InvitationsPage() -> impl IntoView {
    let query = use_query_map();
    let status = Memo::new(move |_| {
        query.with(|q| q.get("status").as_deref().and_then(InvitationStatus::parse))
    });
    let page =
        Memo::new(move |_| query.with(|q| q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1)));
    let list = Resource::new(
        move || (status.get(), page.get()),
        |(s, p)| list_invitations(s, p),
    );
    view! {
        <Title text="Invitations" />
        <RequireUser admin=true>
            <PageHeader
                title="Invitations".into()
                subtitle="Links that let new people create their account. Each works once."
            >
                <a class="btn-primary" href="/admin/invitations/new">
                    "New invitation"
                </a>
            </PageHeader>
            <AdminNav />
            <nav aria-label="Invitation status" class="mb-4 flex flex-wrap gap-1 text-sm">
                <A href=list_href(None, 1) attr:class="nav-link" exact=true>
                    "All"
                </A>
                {InvitationStatus::ALL
                    .iter()
                    .map(|s| {
                        view! {
                            <a
                                href=list_href(Some(*s), 1)
                                class="nav-link"
                                aria-current=move || (status.get() == Some(*s)).then_some("page")
                            >
                                {s.label()}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(l) => {
                            let s = status.get_untracked();
                            view! {
                                <div class="card overflow-x-auto">
                                    <InvitationTable rows=l.rows />
                                    <Pager
                                        page=l.page
                                        per_page=l.per_page
                                        total=l.total
                                        href=move |p| list_href(s, p)
                                    />
                                </div>
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
fn InvitationTable(rows: Vec<InvitationSummary>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <Empty text="No invitations here." /> }.into_any();
    }
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th>"For"</th>
                    <th>"Role"</th>
                    <th>"Status"</th>
                    <th>"Created"</th>
                    <th>"Expires"</th>
                    <th>"By"</th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|i| {
                        let who = i
                            .username
                            .clone()
                            .or(i.email.clone())
                            .unwrap_or_else(|| "Anyone with the link".into());
                        view! {
                            <tr>
                                <td>
                                    <a class="link" href=format!("/admin/invitations/{}", i.id)>
                                        {who}
                                    </a>
                                </td>
                                <td>{i.role.label()}</td>
                                <td>{status_pill(i.status)}</td>
                                <td>{format::utc(i.created_at)}</td>
                                <td>{format::utc(i.expires_at)}</td>
                                <td>{i.created_by.unwrap_or_else(|| "—".into())}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The link, shown once after creating or renewing.
#[component]
fn LinkOnce(link: InvitationLink) -> impl IntoView {
    view! {
        <div class="card space-y-3" data-invitation-link=link.link.clone()>
            <p class="notice notice-ok">
                "Invitation ready. Copy the link now: it is shown only once, and it works once, until "
                {format::utc(link.expires_at)} "."
            </p>
            <CopyField label="Invitation link" value=link.link.clone() />
            <a class="link text-sm" href=format!("/admin/invitations/{}", link.id)>
                "See the invitation"
            </a>
        </div>
    }
}

/// The form to invite someone.
#[component]
pub fn NewInvitationPage() -> impl IntoView {
    let role = RwSignal::new("user".to_owned());
    let username = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let hours = RwSignal::new("72".to_owned());
    let create = ServerAction::<CreateInvitation>::new();
    let result = Signal::derive(move || create.value().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let expires_in_hours = hours.get_untracked().trim().parse().unwrap_or(-1);
        create.dispatch(CreateInvitation {
            form: NewInvitationForm {
                role: Role::parse(&role.get_untracked()).unwrap_or(Role::User),
                username: username.get_untracked(),
                email: email.get_untracked(),
                note: note.get_untracked(),
                expires_in_hours,
            },
        });
    };
    let roles: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), r.label().to_owned()))
        .collect();
    let (min, max) = EXPIRY_HOURS;
    view! {
        <Title text="New invitation" />
        <RequireUser admin=true>
            <PageHeader
                title="New invitation".into()
                subtitle="Make a link for one person. They choose their password when they accept it."
            />
            <AdminNav />
            <div class="grid gap-6 lg:grid-cols-2">
                <form class="card space-y-4" on:submit=submit novalidate>
                    <ErrorNotice error=form_error(result) />
                    <Select
                        name="role"
                        label="Role"
                        value=role
                        options=roles.clone()
                        hint="Admins can invite people and manage every account."
                    />
                    <Field
                        name="username"
                        label="Username (optional)"
                        value=username
                        hint=USERNAME_POLICY
                        error=field_error(result, "username")
                    />
                    <Field
                        name="email"
                        label="E-mail (optional)"
                        kind="email"
                        value=email
                        error=field_error(result, "email")
                    />
                    <Field
                        name="note"
                        label="Note for other admins (optional)"
                        value=note
                        error=field_error(result, "note")
                    />
                    <Field
                        name="expires_in_hours"
                        label="Valid for (hours)"
                        kind="number"
                        value=hours
                        required=true
                        hint="From 1 hour to 720 hours (30 days)."
                        error=field_error(result, "expires_in_hours")
                    />
                    <p class="sr-only">{format!("Between {min} and {max} hours.")}</p>
                    <button
                        type="submit"
                        class="btn-primary"
                        disabled=move || create.pending().get()
                    >
                        {move || {
                            if create.pending().get() { "Creating…" } else { "Create invitation" }
                        }}
                    </button>
                </form>
                {move || result.get().and_then(Result::ok).map(|link| view! { <LinkOnce link /> })}
            </div>
        </RequireUser>
    }
}

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
                                            <Row label="Role" value=i.role.label().into() />
                                            <Row
                                                label="Username"
                                                value=i
                                                    .username
                                                    .clone()
                                                    .unwrap_or_else(|| "Chosen by the invitee".into())
                                            />
                                            <Row
                                                label="E-mail"
                                                value=i.email.clone().unwrap_or_else(|| "—".into())
                                            />
                                            <Row
                                                label="Created"
                                                value=format!(
                                                    "{} by {}",
                                                    format::utc(i.created_at),
                                                    i.created_by.clone().unwrap_or_else(|| "—".into()),
                                                )
                                            />
                                            <Row label="Expires" value=format::utc(i.expires_at) />
                                            {i
                                                .consumed_at
                                                .map(|at| {
                                                    view! {
                                                        <Row
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
                                                    view! { <Row label="Revoked" value=format::utc(at) /> }
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

#[component]
fn Row(label: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="flex justify-between gap-3">
            <dt class="text-slate-500 dark:text-slate-400">{label}</dt>
            <dd class="text-right">{value}</dd>
        </div>
    }
}
