//! Administration pages.

mod audit;
mod breaker;
mod home;
mod invitations;
mod limits;
mod models;
mod runtimes;
mod sign_in;
mod usage;
mod users;

pub use audit::AuditPage;
pub use breaker::BreakerPage;
pub use home::AdminHomePage;
pub use invitations::{InvitationDetailPage, InvitationsPage, NewInvitationPage};
pub use limits::LimitsPage;
pub use models::ModelsAdminPage;
pub use runtimes::RuntimesPage;
pub use sign_in::SignInAdminPage;
pub use usage::UsageAdminPage;
pub use users::{UserDetailPage, UsersPage};

use crate::api::admin::AuditEntry;
use crate::components::format;
use crate::components::ui::Empty;
use leptos::prelude::*;

/// The admin section's own navigation.
#[component]
fn AdminNav() -> impl IntoView {
    use leptos_router::components::A;
    view! {
        <nav
            aria-label="Administration"
            class="mb-6 flex flex-wrap gap-1 border-b border-slate-200 pb-2 text-sm dark:border-slate-800"
        >
            <A href="/admin" exact=true attr:class="nav-link">
                "Overview"
            </A>
            <A href="/admin/users" attr:class="nav-link">
                "Users"
            </A>
            <A href="/admin/invitations" attr:class="nav-link">
                "Invitations"
            </A>
            <A href="/admin/runtimes" attr:class="nav-link">
                "Runtimes"
            </A>
            <A href="/admin/models" attr:class="nav-link">
                "Models"
            </A>
            <A href="/admin/usage" attr:class="nav-link">
                "Usage"
            </A>
            <A href="/admin/limits" attr:class="nav-link">
                "Limits"
            </A>
            <A href="/admin/breaker" attr:class="nav-link">
                "Breaker"
            </A>
            <A href="/admin/sign-in" attr:class="nav-link">
                "Sign-in"
            </A>
            <A href="/admin/audit" attr:class="nav-link">
                "Audit log"
            </A>
        </nav>
    }
}

/// An audit action in words.
pub fn action_label(action: &str) -> &'static str {
    match action {
        "login.succeeded" => "Signed in",
        "login.failed" => "Failed sign-in",
        "login.throttled" => "Sign-in blocked (too many attempts)",
        "login.locked" => "Sign-ins slowed down (too many failures)",
        "login.denied" => "Sign-in refused (account disabled)",
        "logout" => "Signed out",
        "sessions.ended" => "Signed out everywhere",
        "password.changed" => "Changed password",
        "password.reset" => "Password reset",
        "invitation.created" => "Invitation created",
        "invitation.reissued" => "Invitation link renewed",
        "invitation.revoked" => "Invitation revoked",
        "invitation.accepted" => "Invitation accepted",
        "user.created" => "Account created",
        "user.enabled" => "Account enabled",
        "user.disabled" => "Account disabled",
        "user.role_changed" => "Role changed",
        "user.deleted" => "Account deleted",
        "sso.login" => "Signed in with single sign-on",
        "sso.refused" => "Single sign-on refused",
        "sso.linked" => "Single sign-on linked to the account",
        "sso.unlinked" => "Single sign-on unlinked from the account",
        "sign_in.policy_changed" => "Password sign-in policy changed",
        "runtime.start" => "Runtime started",
        "runtime.stop" => "Runtime stopped",
        "runtime.recover" => "Runtime recovered",
        "runtime.delete" => "Runtime deleted",
        "runtime.limits" => "Runtime limits changed",
        "model.created" => "Model added",
        "model.updated" => "Model changed",
        "model.deleted" => "Model deleted",
        "credential.created" => "Provider key added",
        "credential.verified" => "Provider key checked",
        "credential.deleted" => "Provider key deleted",
        "key.created" => "API key created",
        "key.revoked" => "API key revoked",
        "user.limits" => "Limits changed",
        "breaker.tripped" => "Runaway-agent breaker tripped",
        "breaker.resumed" => "Agent resumed after a breaker trip",
        "breaker.rules" => "Breaker rules changed",
        _ => "Other event",
    }
}

/// A table of audit events.
#[component]
fn AuditTable(rows: Vec<AuditEntry>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <Empty text="No events." /> }.into_any();
    }
    view! {
        <div class="overflow-x-auto">
            <table class="table">
                <thead>
                    <tr>
                        <th>"When"</th>
                        <th>"Event"</th>
                        <th>"By"</th>
                        <th>"About"</th>
                        <th>"From"</th>
                        <th>"Details"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|e| {
                            let about = match (
                                e.subject_type.as_deref(),
                                e.subject.clone(),
                                e.subject_id.clone(),
                            ) {
                                (Some("user"), Some(name), Some(id)) => {
                                    view! {
                                        <a class="link" href=format!("/admin/users/{id}")>
                                            {name}
                                        </a>
                                    }
                                        .into_any()
                                }
                                (Some("invitation"), _, Some(id)) => {
                                    view! {
                                        <a class="link" href=format!("/admin/invitations/{id}")>
                                            "invitation"
                                        </a>
                                    }
                                        .into_any()
                                }
                                (_, Some(name), _) => view! { <span>{name}</span> }.into_any(),
                                _ => view! { <span>"—"</span> }.into_any(),
                            };
                            let details = e
                                .details
                                .iter()
                                .map(|(k, v)| format!("{k}: {v}"))
                                .collect::<Vec<_>>()
                                .join(", ");
                            view! {
                                <tr data-action=e.action.clone()>
                                    <td class="whitespace-nowrap">{format::utc(e.at)}</td>
                                    <td>{action_label(&e.action)}</td>
                                    <td>{e.actor.unwrap_or_else(|| "—".into())}</td>
                                    <td>{about}</td>
                                    <td>{e.client_addr.unwrap_or_else(|| "—".into())}</td>
                                    <td class="text-xs text-slate-500">{details}</td>
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
