//! One user's page: facts, role and status, password reset, sessions, keys and runtime.

use super::sso::SsoSection;
use super::*;
use crate::api::sso::user_identities;

/// One user: facts, actions, recent events.
#[component]
pub fn UserDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let version = RwSignal::new(0u32);
    let detail = Resource::new(move || (id.get(), version.get()), |(id, _)| get_user(id));
    let sso_version = RwSignal::new(0u32);
    let identities = Resource::new(
        move || (id.get(), sso_version.get()),
        |(id, _)| user_identities(id),
    );
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
            <SsoSection user_id=id identities changed=move || sso_version.update(|v| *v += 1) />
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
