//! The `users` table.

use crate::model::{Role, UserStatus};
use crate::ssr::paging::{Page, contains_pattern};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub password_hash: String,
    pub must_change_password: bool,
    pub session_stamp: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
}

/// What a new account needs.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub role: Role,
    pub password_hash: &'a str,
    pub must_change_password: bool,
}

/// Filters for the admin list.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub search: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

/// Unique index names, for mapping violations to form fields.
pub const USERNAME_KEY: &str = "users_username_key";
/// See [`USERNAME_KEY`].
pub const EMAIL_KEY: &str = "users_email_key";
/// Usernames that differ only in dots, dashes and underscores share a workspace host.
pub const WORKSPACE_NAME_KEY: &str = "users_workspace_name_key";
/// The words for a [`WORKSPACE_NAME_KEY`] violation.
pub fn workspace_name_taken(name: &str) -> String {
    format!(
        "The username {name} is too close to an existing one: dots, dashes and underscores count \
         as the same in workspace addresses. Choose another."
    )
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", status AS "status: UserStatus",
                  password_hash, must_change_password, session_stamp, created_at, updated_at,
                  last_login_at
             FROM users WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn find_by_username(
    db: impl PgExecutor<'_>,
    username: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", status AS "status: UserStatus",
                  password_hash, must_change_password, session_stamp, created_at, updated_at,
                  last_login_at
             FROM users WHERE username = $1"#,
        username
    )
    .fetch_optional(db)
    .await
}

/// The ids of the users with these names (names with no user are left out).
pub async fn ids_by_username(
    db: impl PgExecutor<'_>,
    usernames: &[String],
) -> sqlx::Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query!(
        "SELECT id, username FROM users WHERE username = ANY($1)",
        usernames
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.id, r.username))
    .collect())
}

/// Locks and returns the user (inside a transaction), so guards and the change it guards
/// see the same row.
pub async fn find_for_update(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", status AS "status: UserStatus",
                  password_hash, must_change_password, session_stamp, created_at, updated_at,
                  last_login_at
             FROM users WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn insert(db: impl PgExecutor<'_>, new: NewUser<'_>) -> sqlx::Result<UserRow> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (username, email, role, password_hash, must_change_password)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, username, email, role AS "role: Role", status AS "status: UserStatus",
                     password_hash, must_change_password, session_stamp, created_at, updated_at,
                     last_login_at"#,
        new.username,
        new.email,
        new.role as Role,
        new.password_hash,
        new.must_change_password
    )
    .fetch_one(db)
    .await
}

/// Locks every active admin row and counts them: the last-admin guard holds under
/// concurrent changes because a second transaction waits here.
pub async fn lock_active_admins(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id FOR UPDATE"
    )
    .fetch_all(db)
    .await?;
    Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
}

pub async fn any_admin(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin') AS "found!""#
    )
    .fetch_one(db)
    .await?;
    Ok(found)
}

/// Sets the status and a new session stamp (ending every session).
pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: UserStatus,
    stamp: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET status = $2, session_stamp = $3, updated_at = now() WHERE id = $1",
        id,
        status as UserStatus,
        stamp
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_role(db: impl PgExecutor<'_>, id: Uuid, role: Role) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1",
        id,
        role as Role
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the password hash and the session stamp (ending every session).
pub async fn set_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    password_hash: &str,
    must_change_password: bool,
    stamp: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, must_change_password = $3, session_stamp = $4,
                          updated_at = now()
          WHERE id = $1",
        id,
        password_hash,
        must_change_password,
        stamp
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A new session stamp only (sign out everywhere).
pub async fn set_stamp(db: impl PgExecutor<'_>, id: Uuid, stamp: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET session_stamp = $2, updated_at = now() WHERE id = $1",
        id,
        stamp
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn touch_login(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("UPDATE users SET last_login_at = now() WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM users WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One page of users, newest first, with the total for the filter.
pub async fn list(
    db: &mut sqlx::PgConnection,
    filter: &UserFilter,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Page<UserRow>> {
    let pattern = filter.search.as_deref().map(contains_pattern);
    let role = filter.role.map(Role::as_str);
    let status = filter.status.map(UserStatus::as_str);
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM users
            WHERE ($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1)
              AND ($2::text IS NULL OR role = $2)
              AND ($3::text IS NULL OR status = $3)"#,
        pattern,
        role,
        status
    )
    .fetch_one(&mut *db)
    .await?;
    let rows = sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", status AS "status: UserStatus",
                  password_hash, must_change_password, session_stamp, created_at, updated_at,
                  last_login_at
             FROM users
            WHERE ($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1)
              AND ($2::text IS NULL OR role = $2)
              AND ($3::text IS NULL OR status = $3)
            ORDER BY created_at DESC, id
            OFFSET $4 LIMIT $5"#,
        pattern,
        role,
        status,
        offset,
        limit
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(Page { rows, total })
}

/// (active, disabled) account counts.
pub async fn counts(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE status = 'active') AS "active!",
                  count(*) FILTER (WHERE status = 'disabled') AS "disabled!"
             FROM users"#
    )
    .fetch_one(db)
    .await?;
    Ok((row.active, row.disabled))
}

/// The account with this e-mail address (compared without regard to case, as the unique index).
pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", status AS "status: UserStatus",
                  password_hash, must_change_password, session_stamp, created_at, updated_at,
                  last_login_at
             FROM users WHERE lower(email) = lower($1)"#,
        email
    )
    .fetch_optional(db)
    .await
}

/// Every active admin's id and username, by name.
pub async fn active_admins(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        "SELECT id, username FROM users WHERE role = 'admin' AND status = 'active'
          ORDER BY username"
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.username)).collect())
}
