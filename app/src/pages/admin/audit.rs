use super::{AdminNav, AuditTable};
use crate::api::admin::{AuditQuery, list_audit};
use crate::components::auth::{RequireUser, urlencode};
use crate::components::ui::{ErrorNotice, Field, Loading, PageHeader, Pager, Select};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

const FAMILIES: &[(&str, &str)] = &[
    ("", "All events"),
    ("login", "Sign-ins"),
    ("logout", "Sign-outs"),
    ("sessions", "Signed out everywhere"),
    ("password", "Passwords"),
    ("invitation", "Invitations"),
    ("user", "Accounts"),
];

fn href(action: &str, person: &str, page: i64) -> String {
    format!(
        "/admin/audit?action={}&person={}&page={page}",
        urlencode(action),
        urlencode(person)
    )
}

/// The audit log, filtered and paged through the URL.
#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Title text="Audit log" />
        <RequireUser admin=true>
            <PageHeader
                title="Audit log".into()
                subtitle="Every sign-in, password, invitation and account change, newest first."
            />
            <AdminNav />
            <AuditContent />
        </RequireUser>
    }
}

#[component]
fn AuditContent() -> impl IntoView {
    let query = use_query_map();
    let current = Memo::new(move |_| {
        query.with(|q| AuditQuery {
            action: q.get("action").unwrap_or_default(),
            person: q.get("person").unwrap_or_default(),
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
        })
    });
    let events = Resource::new(move || current.get(), list_audit);
    let action = RwSignal::new(current.get_untracked().action);
    let person = RwSignal::new(current.get_untracked().person);
    let navigate = use_navigate();
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        navigate(
            &href(&action.get_untracked(), &person.get_untracked(), 1),
            Default::default(),
        );
    };
    let options = FAMILIES
        .iter()
        .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
        .collect();
    view! {
        <form
            class="card mb-4 grid gap-4 sm:grid-cols-3 sm:items-end"
            on:submit=apply
            role="search"
        >
            <Select name="action" label="Events" value=action options />
            <Field
                name="person"
                label="Person"
                value=person
                hint="Who did it, or whom it was about."
                error=Signal::derive(|| None::<String>)
            />
            <button type="submit" class="btn-primary justify-center">
                "Show"
            </button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) => {
                        let q = current.get_untracked();
                        view! {
                            <div class="card">
                                <AuditTable rows=list.rows />
                                <Pager
                                    page=list.page
                                    per_page=list.per_page
                                    total=list.total
                                    href=move |p| href(&q.action, &q.person, p)
                                />
                            </div>
                        }
                            .into_any()
                    }
                    Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                }
            })}
        </Transition>
    }
}
