use super::AdminNav;
use crate::api::invitations::{
    CreateInvitation, EXPIRY_HOURS, InvitationLink, InvitationSummary, NewInvitationForm,
    ReissueInvitation, RevokeInvitation, get_invitation, list_invitations,
};
use crate::components::auth::RequireUser;
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, CopyField, Empty, ErrorNotice, Fact, Field, Loading, PageHeader, Pager, Pill,
    Select, field_error, form_error,
};
use crate::model::{InvitationStatus, Role, USERNAME_POLICY};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

mod detail;
mod new;
pub use detail::InvitationDetailPage;
pub use new::NewInvitationPage;

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
