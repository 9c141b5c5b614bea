//! Admin user management, with the guards that keep an installation governable: the last
//! active admin stays, and nobody disables or deletes themself.

use crate::AppError;
use crate::api::users::{OneTimePassword, PER_PAGE, UserDetail, UserList, UserQuery, UserSummary};
use crate::model::{Role, UserStatus};
use crate::ssr::AppState;
use crate::ssr::admin::entry;
use crate::ssr::audit::repo as audit_repo;
use crate::ssr::audit::{self, Subject, action};
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::identity::auth::{password, tokens};
use crate::ssr::identity::repo::sessions;
use crate::ssr::identity::repo::users::{self, UserFilter, UserRow};
use crate::ssr::{lifecycle, parse_id};
use sqlx::PgConnection;
use uuid::Uuid;

const SEARCH_MAX: usize = 100;

fn summary(row: UserRow) -> UserSummary {
    UserSummary {
        id: row.id.to_string(),
        username: row.username,
        email: row.email,
        role: row.role,
        status: row.status,
        must_change_password: row.must_change_password,
        created_at: row.created_at,
        last_login_at: row.last_login_at,
    }
}

fn not_found() -> AppError {
    AppError::NotFound {
        what: "User".into(),
    }
}

/// See [`crate::api::users::list_users`].
pub async fn list(state: &AppState, query: UserQuery) -> Result<UserList, AppError> {
    let search = query.search.trim();
    if search.chars().count() > SEARCH_MAX {
        return Err(AppError::field(
            "search",
            "Search for at most 100 characters.",
        ));
    }
    let page = query.page.clamp(1, 100_000);
    let filter = UserFilter {
        search: (!search.is_empty()).then(|| search.to_owned()),
        role: query.role,
        status: query.status,
    };
    let mut conn = state.pool().acquire().await?;
    let found = users::list(&mut conn, &filter, (page - 1) * PER_PAGE, PER_PAGE).await?;
    Ok(UserList {
        rows: found.rows.into_iter().map(summary).collect(),
        total: found.total,
        page,
        per_page: PER_PAGE,
    })
}

/// See [`crate::api::users::get_user`].
pub async fn detail(state: &AppState, caller: &Caller, id: &str) -> Result<UserDetail, AppError> {
    let id = parse_id(id, "User")?;
    let row = users::find(state.pool(), id).await?.ok_or_else(not_found)?;
    let open_sessions =
        i64::try_from(sessions::list_for_user(state.pool(), id).await?.len()).unwrap_or(i64::MAX);
    let mut conn = state.pool().acquire().await?;
    let events = audit_repo::list(
        &mut conn,
        &audit_repo::AuditFilter {
            person: Some(row.username.clone()),
            ..Default::default()
        },
        0,
        10,
    )
    .await?;
    Ok(UserDetail {
        is_self: caller.user.id == id,
        user: summary(row),
        open_sessions,
        recent_events: events.rows.into_iter().map(entry).collect(),
    })
}

/// Locks the admins and then the target (always in this order, so two admins changing each
/// other cannot deadlock), and checks the guards for `change`.
async fn guarded(
    tx: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    change: Change,
) -> Result<UserRow, AppError> {
    let active_admins = users::lock_active_admins(&mut *tx).await?;
    let target = users::find_for_update(&mut *tx, id)
        .await?
        .ok_or_else(not_found)?;
    let is_self = caller.user.id == id;
    if is_self && matches!(change, Change::Disable | Change::Delete) {
        return Err(AppError::Conflict {
            message: match change {
                Change::Delete => "You cannot delete your own account.".into(),
                _ => "You cannot disable your own account.".into(),
            },
        });
    }
    let removes_an_admin = target.role == Role::Admin
        && target.status == UserStatus::Active
        && matches!(change, Change::Disable | Change::Delete | Change::Demote);
    if matches!(change, Change::Disable | Change::Delete | Change::Demote) {
        crate::ssr::identity::sso::policy::guard_break_glass(&mut *tx, &target).await?;
    }
    if removes_an_admin && active_admins <= 1 {
        return Err(AppError::Conflict {
            message: format!(
                "{} is the last active admin. Make someone else an admin first.",
                target.username
            ),
        });
    }
    Ok(target)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Disable,
    Enable,
    Demote,
    Promote,
    Delete,
}

/// See [`crate::api::users::set_user_status`].
pub async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: &str,
    status: UserStatus,
) -> Result<UserSummary, AppError> {
    let id = parse_id(id, "User")?;
    let change = match status {
        UserStatus::Disabled => Change::Disable,
        UserStatus::Active => Change::Enable,
    };
    let mut tx = state.pool().begin().await?;
    let target = guarded(&mut tx, caller, id, change).await?;
    if target.status != status {
        users::set_status(&mut *tx, id, status, &target.session_stamp).await?;
        match status {
            UserStatus::Disabled => {
                lifecycle::user_disabled(state, &mut tx, id, &target.username).await?;
            }
            UserStatus::Active => lifecycle::user_enabled(&mut tx, id).await?,
        }
        let act = match status {
            UserStatus::Disabled => action::USER_DISABLED,
            UserStatus::Active => action::USER_ENABLED,
        };
        let id_text = id.to_string();
        let subject = Subject::user(&id_text, &target.username);
        audit::by_caller(&mut *tx, caller, act, Some(subject), None).await?;
    }
    let updated = users::find(&mut *tx, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    state.access_changed(id);
    Ok(summary(updated))
}

/// See [`crate::api::users::set_user_role`].
pub async fn set_role(
    state: &AppState,
    caller: &Caller,
    id: &str,
    role: Role,
) -> Result<UserSummary, AppError> {
    let id = parse_id(id, "User")?;
    let change = match role {
        Role::User => Change::Demote,
        Role::Admin => Change::Promote,
    };
    let mut tx = state.pool().begin().await?;
    let target = guarded(&mut tx, caller, id, change).await?;
    if target.role != role {
        users::set_role(&mut *tx, id, role).await?;
        let id_text = id.to_string();
        audit::by_caller(
            &mut *tx,
            caller,
            action::USER_ROLE_CHANGED,
            Some(Subject::user(&id_text, &target.username)),
            Some(serde_json::json!({ "from": target.role.as_str(), "to": role.as_str() })),
        )
        .await?;
    }
    let updated = users::find(&mut *tx, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    state.access_changed(id);
    Ok(summary(updated))
}

/// See [`crate::api::users::reset_user_password`].
pub async fn reset_password(
    state: &AppState,
    caller: &Caller,
    id: &str,
    revoke_keys: bool,
) -> Result<OneTimePassword, AppError> {
    let id = parse_id(id, "User")?;
    let one_time = tokens::one_time_password();
    let hash = password::hash(one_time.clone()).await?;
    let mut tx = state.pool().begin().await?;
    let target = users::find_for_update(&mut *tx, id)
        .await?
        .ok_or_else(not_found)?;
    users::set_password(&mut *tx, id, &hash, true, &tokens::new_stamp()).await?;
    let ended =
        lifecycle::password_reset(state, &mut tx, id, &target.username, revoke_keys).await?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::PASSWORD_RESET,
        Some(Subject::user(&id_text, &target.username)),
        Some(serde_json::json!({
            "workspace_restarted": ended.workspace_restarted,
            "keys_revoked": ended.keys_revoked,
        })),
    )
    .await?;
    tx.commit().await?;
    state.access_changed(id);
    Ok(OneTimePassword {
        username: target.username,
        password: one_time,
    })
}

/// See [`crate::api::users::delete_user`].
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), AppError> {
    let id = parse_id(id, "User")?;
    let mut tx = state.pool().begin().await?;
    let target = guarded(&mut tx, caller, id, Change::Delete).await?;
    lifecycle::user_deleting(state, &mut tx, id, &target.username).await?;
    users::delete(&mut *tx, id).await?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::USER_DELETED,
        Some(Subject::user(&id_text, &target.username)),
        Some(serde_json::json!({ "role": target.role.as_str() })),
    )
    .await?;
    tx.commit().await?;
    state.access_changed(id);
    Ok(())
}
