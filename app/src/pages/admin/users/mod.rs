use super::{AdminNav, AuditTable};
use crate::AppError;
use crate::api::users::{
    DeleteUser, OneTimePassword, ResetUserPassword, SetUserRole, SetUserStatus, UserDetail,
    UserQuery, UserSummary, get_user, list_users,
};
use crate::components::auth::{RequireUser, urlencode};
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, CopyField, Empty, ErrorNotice, Fact, Field, Loading, PageHeader, Pager, Pill,
    Select,
};
use crate::model::{Role, UserStatus};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

mod detail;
mod sso;
pub use detail::UserDetailPage;

fn list_href(q: &UserQuery) -> String {
    format!(
        "/admin/users?search={}&role={}&status={}&page={}",
        urlencode(&q.search),
        q.role.map_or("", Role::as_str),
        q.status.map_or("", UserStatus::as_str),
        q.page
    )
}

fn status_pill(status: UserStatus) -> impl IntoView {
    match status {
        UserStatus::Active => view! { <Pill text="Active" tone="ok" /> },
        UserStatus::Disabled => view! { <Pill text="Disabled" tone="bad" /> },
    }
}

fn role_pill(role: Role) -> impl IntoView {
    match role {
        Role::Admin => view! { <Pill text="Admin" tone="accent" /> },
        Role::User => view! { <Pill text="User" /> },
    }
}

/// Everyone with an account, searchable and filterable.
#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <Title text="Users" />
        <RequireUser admin=true>
            <PageHeader
                title="Users".into()
                subtitle="Everyone with an account. New people arrive through invitations."
            >
                <a class="btn-primary" href="/admin/invitations/new">
                    "Invite someone"
                </a>
            </PageHeader>
            <AdminNav />
            <UserList />
        </RequireUser>
    }
}

#[component]
fn UserList() -> impl IntoView {
    let query = use_query_map();
    let current = Memo::new(move |_| {
        query.with(|q| UserQuery {
            search: q.get("search").unwrap_or_default(),
            role: q.get("role").as_deref().and_then(Role::parse),
            status: q.get("status").as_deref().and_then(UserStatus::parse),
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
        })
    });
    let users = Resource::new(move || current.get(), list_users);
    let search = RwSignal::new(current.get_untracked().search);
    let role = RwSignal::new(
        current
            .get_untracked()
            .role
            .map_or("", Role::as_str)
            .to_owned(),
    );
    let status = RwSignal::new(
        current
            .get_untracked()
            .status
            .map_or("", UserStatus::as_str)
            .to_owned(),
    );
    let navigate = use_navigate();
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let q = UserQuery {
            search: search.get_untracked(),
            role: Role::parse(&role.get_untracked()),
            status: UserStatus::parse(&status.get_untracked()),
            page: 1,
        };
        navigate(&list_href(&q), Default::default());
    };
    let any = |label: &str| (String::new(), label.to_owned());
    let role_options = std::iter::once(any("Any role"))
        .chain(
            Role::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), r.label().to_owned())),
        )
        .collect();
    let status_options = std::iter::once(any("Any status"))
        .chain(
            UserStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), s.label().to_owned())),
        )
        .collect();
    view! {
        <form
            class="card mb-4 grid gap-4 sm:grid-cols-4 sm:items-end"
            on:submit=apply
            role="search"
        >
            <Field
                name="search"
                label="Search"
                value=search
                hint="Username or e-mail."
                error=Signal::derive(|| None::<String>)
            />
            <Select name="role" label="Role" value=role options=role_options />
            <Select name="status" label="Status" value=status options=status_options />
            <button type="submit" class="btn-primary justify-center">
                "Search"
            </button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(list) => {
                        let q = current.get_untracked();
                        view! {
                            <div class="card overflow-x-auto">
                                <UserTable rows=list.rows />
                                <Pager
                                    page=list.page
                                    per_page=list.per_page
                                    total=list.total
                                    href=move |p| list_href(&UserQuery { page: p, ..q.clone() })
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

#[component]
fn UserTable(rows: Vec<UserSummary>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <Empty text="Nobody matches." /> }.into_any();
    }
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th>"Username"</th>
                    <th>"E-mail"</th>
                    <th>"Role"</th>
                    <th>"Status"</th>
                    <th>"Last sign-in"</th>
                    <th>"Since"</th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|u| {
                        view! {
                            <tr>
                                <td>
                                    <a
                                        class="link font-medium"
                                        href=format!("/admin/users/{}", u.id)
                                    >
                                        {u.username}
                                    </a>
                                </td>
                                <td>{u.email.unwrap_or_else(|| "—".into())}</td>
                                <td>{role_pill(u.role)}</td>
                                <td>{status_pill(u.status)}</td>
                                <td>
                                    {u
                                        .last_login_at
                                        .map_or_else(|| "Never".to_owned(), format::utc)}
                                </td>
                                <td>{format::utc(u.created_at)}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
