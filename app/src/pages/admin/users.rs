use super::{AdminNav, AuditTable};
use crate::AppError;
use crate::api::users::{
    DeleteUser, OneTimePassword, ResetUserPassword, SetUserRole, SetUserStatus, UserDetail,
    UserQuery, UserSummary, get_user, list_users,
};
use crate::components::auth::{RequireUser, urlencode};
use crate::components::format;
use crate::components::ui::{
    ConfirmButton, CopyField, Empty, ErrorNotice, Field, Loading, PageHeader, Pager, Pill, Select,
};
use crate::model::{Role, UserStatus};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

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

/// One user: facts, actions, recent events.
#[component]
pub fn UserDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let version = RwSignal::new(0u32);
    let detail = Resource::new(move || (id.get(), version.get()), |(id, _)| get_user(id));
    view! {
        <Title text="User" />
        <RequireUser admin=true>
            <AdminNav />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => {
                            view! {
                                <UserDetailView
                                    detail=d
                                    on_change=move || version.update(|v| *v += 1)
                                />
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
fn UserDetailView(
    detail: UserDetail,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let user = detail.user.clone();
    let id = StoredValue::new(user.id.clone());
    let set_status = ServerAction::<SetUserStatus>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let reset = ServerAction::<ResetUserPassword>::new();
    let revoke_keys = RwSignal::new(false);
    let delete = ServerAction::<DeleteUser>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        // Both read every time (no short-circuit), so the effect keeps following both.
        let status_saved = matches!(set_status.value().get(), Some(Ok(_)));
        let role_saved = matches!(set_role.value().get(), Some(Ok(_)));
        if status_saved || role_saved {
            on_change();
        }
    });
    Effect::new(move |_| {
        if matches!(delete.value().get(), Some(Ok(()))) {
            navigate("/admin/users", Default::default());
        }
    });
    let error = Signal::derive(move || {
        let pick = |r: Option<Result<_, AppError>>| r.and_then(Result::err);
        pick(set_status.value().get().map(|r| r.map(|_| ())))
            .or_else(|| pick(set_role.value().get().map(|r| r.map(|_| ()))))
            .or_else(|| pick(reset.value().get().map(|r| r.map(|_| ()))))
            .or_else(|| pick(delete.value().get()))
    });
    let busy = Signal::derive(move || {
        set_status.pending().get()
            || set_role.pending().get()
            || reset.pending().get()
            || delete.pending().get()
    });
    let is_self = detail.is_self;
    let (status, role) = (user.status, user.role);
    view! {
        <PageHeader
            title=user.username.clone()
            subtitle=user.email.clone().unwrap_or_else(|| "No e-mail address".into())
        >
            {role_pill(role)}
            {status_pill(status)}
        </PageHeader>
        <ErrorNotice error=error />
        {move || {
            reset
                .value()
                .get()
                .and_then(Result::ok)
                .map(|OneTimePassword { username, password }| {
                    view! {
                        <div class="card mb-4 space-y-2">
                            <p class="text-sm">
                                {format!(
                                    "New one-time password for {username}. It is shown only now; {username} must change it at the next sign-in.",
                                )}
                            </p>
                            <CopyField label="One-time password" value=password />
                        </div>
                    }
                })
        }}
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="card text-sm" aria-label="Facts">
                <dl class="space-y-1.5">
                    <Fact label="Created" value=format::utc(user.created_at) />
                    <Fact
                        label="Last sign-in"
                        value=user.last_login_at.map_or_else(|| "Never".into(), format::utc)
                    />
                    <Fact label="Open sessions" value=detail.open_sessions.to_string() />
                    <Fact
                        label="Must change password"
                        value=(if user.must_change_password { "Yes" } else { "No" }).into()
                    />
                </dl>
            </section>
            <section class="card space-y-3 lg:col-span-2" aria-label="Actions">
                <h2 class="text-lg font-semibold">"Actions"</h2>
                <div class="flex flex-wrap gap-2">
                    {match status {
                        UserStatus::Active => {
                            view! {
                                <ConfirmButton
                                    label="Disable account"
                                    confirm_label="Yes, disable and sign out"
                                    danger=true
                                    disabled=Signal::derive(move || busy.get() || is_self)
                                    on_confirm=move || {
                                        set_status
                                            .dispatch(SetUserStatus {
                                                id: id.get_value(),
                                                status: UserStatus::Disabled,
                                            });
                                    }
                                />
                            }
                                .into_any()
                        }
                        UserStatus::Disabled => {
                            view! {
                                <button
                                    type="button"
                                    class="btn-secondary"
                                    disabled=move || busy.get()
                                    on:click=move |_| {
                                        set_status
                                            .dispatch(SetUserStatus {
                                                id: id.get_value(),
                                                status: UserStatus::Active,
                                            });
                                    }
                                >
                                    "Enable account"
                                </button>
                            }
                                .into_any()
                        }
                    }}
                    {match role {
                        Role::User => {
                            view! {
                                <button
                                    type="button"
                                    class="btn-secondary"
                                    disabled=move || busy.get()
                                    on:click=move |_| {
                                        set_role
                                            .dispatch(SetUserRole {
                                                id: id.get_value(),
                                                role: Role::Admin,
                                            });
                                    }
                                >
                                    "Make admin"
                                </button>
                            }
                                .into_any()
                        }
                        Role::Admin => {
                            view! {
                                <ConfirmButton
                                    label="Remove admin role"
                                    confirm_label="Yes, make a regular user"
                                    disabled=busy
                                    on_confirm=move || {
                                        set_role
                                            .dispatch(SetUserRole {
                                                id: id.get_value(),
                                                role: Role::User,
                                            });
                                    }
                                />
                            }
                                .into_any()
                        }
                    }}
                    <ConfirmButton
                        label="Reset password"
                        confirm_label="Yes, reset and sign out"
                        disabled=busy
                        on_confirm=move || {
                            reset
                                .dispatch(ResetUserPassword {
                                    id: id.get_value(),
                                    revoke_keys: Some(revoke_keys.get_untracked()),
                                });
                        }
                    />
                    <ConfirmButton
                        label="Delete account"
                        confirm_label="Yes, delete for good"
                        danger=true
                        disabled=Signal::derive(move || busy.get() || is_self)
                        on_confirm=move || {
                            delete.dispatch(DeleteUser { id: id.get_value() });
                        }
                    />
                </div>
                <label class="flex items-center gap-2 text-sm">
                    <input
                        type="checkbox"
                        class="h-4 w-4"
                        prop:checked=move || revoke_keys.get()
                        on:change=move |ev| revoke_keys.set(event_target_checked(&ev))
                    />
                    "When resetting the password, also revoke their personal API keys"
                </label>
                <p class="text-xs text-slate-500">
                    "A reset signs them out everywhere and restarts their workspace if it is running, so that open connections end."
                </p>
                {is_self
                    .then(|| {
                        view! {
                            <p class="text-xs text-slate-500">
                                "This is your own account: you cannot disable or delete it."
                            </p>
                        }
                    })}
            </section>
        </div>
        <section class="card mt-6" aria-labelledby="user-events">
            <h2 id="user-events" class="mb-2 text-lg font-semibold">
                "Recent events"
            </h2>
            <AuditTable rows=detail.recent_events />
        </section>
    }
}

#[component]
fn Fact(label: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="flex justify-between gap-3">
            <dt class="text-slate-500 dark:text-slate-400">{label}</dt>
            <dd class="text-right">{value}</dd>
        </div>
    }
}
