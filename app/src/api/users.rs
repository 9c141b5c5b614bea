//! Admin user management.

use super::admin::AuditEntry;
use crate::AppError;
use crate::model::{Role, UserStatus};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Users per page.
pub const PER_PAGE: i64 = 25;

/// A user as admins see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

/// Filters for the list; empty strings mean "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserQuery {
    pub search: String,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    pub page: i64,
}

/// A page of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    pub rows: Vec<UserSummary>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// One user with their open sessions and recent events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDetail {
    pub user: UserSummary,
    pub open_sessions: i64,
    pub recent_events: Vec<AuditEntry>,
    /// The caller is looking at themself (self-disable and self-delete are refused).
    pub is_self: bool,
}

/// A new one-time password, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneTimePassword {
    pub username: String,
    pub password: String,
}

#[server(endpoint = "admin/users/list")]
pub async fn list_users(query: UserQuery) -> Result<UserList, AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, _| {
        users::list(state, query).await
    })
    .await
}

#[server(endpoint = "admin/users/get")]
pub async fn get_user(id: String) -> Result<UserDetail, AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, caller| {
        users::detail(state, caller, &id).await
    })
    .await
}

/// Enables or disables an account. Disabling ends all of its sessions at once.
#[server(endpoint = "admin/users/status")]
pub async fn set_user_status(id: String, status: UserStatus) -> Result<UserSummary, AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, caller| {
        users::set_status(state, caller, &id, status).await
    })
    .await
}

#[server(endpoint = "admin/users/role")]
pub async fn set_user_role(id: String, role: Role) -> Result<UserSummary, AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, caller| {
        users::set_role(state, caller, &id, role).await
    })
    .await
}

/// Sets a one-time password the user must change at next sign-in; ends their sessions and what
/// was opened with them (a running workspace restarts); with `revoke_keys`, their personal API
/// keys are revoked too.
#[server(endpoint = "admin/users/reset-password")]
pub async fn reset_user_password(
    id: String,
    revoke_keys: Option<bool>,
) -> Result<OneTimePassword, AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, caller| {
        users::reset_password(state, caller, &id, revoke_keys.unwrap_or(false)).await
    })
    .await
}

#[server(endpoint = "admin/users/delete")]
pub async fn delete_user(id: String) -> Result<(), AppError> {
    use crate::ssr::{Access, identity::users, serve};
    serve(Access::Admin, async |state, caller| {
        users::delete(state, caller, &id).await
    })
    .await
}
