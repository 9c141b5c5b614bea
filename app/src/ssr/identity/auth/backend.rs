//! The axum-login backend: loads the signed-in user for every request.

use crate::model::{Role, UserStatus};
use crate::ssr::identity::repo::users::{self, UserRow};
use axum_login::{AuthUser, AuthnBackend, UserId};
use sqlx::PgPool;
use uuid::Uuid;

/// The user as a session sees them.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub must_change_password: bool,
    /// Compared with the copy in the session: a new stamp ends the session.
    stamp: Vec<u8>,
}

impl From<UserRow> for SessionUser {
    fn from(row: UserRow) -> Self {
        SessionUser {
            id: row.id,
            username: row.username,
            email: row.email,
            role: row.role,
            status: row.status,
            must_change_password: row.must_change_password,
            stamp: row.session_stamp,
        }
    }
}

impl AuthUser for SessionUser {
    type Id = Uuid;

    fn id(&self) -> Uuid {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.stamp
    }
}

/// Looks users up in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Backend {
    pool: PgPool,
}

impl Backend {
    /// A backend reading from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Backend { pool }
    }
}

/// Sign-in is done by `auth::login` (throttling, audit, timing); this backend only loads users.
#[derive(Debug, Clone)]
pub struct NoCredentials;

impl AuthnBackend for Backend {
    type User = SessionUser;
    type Credentials = NoCredentials;
    type Error = sqlx::Error;

    async fn authenticate(&self, _: NoCredentials) -> Result<Option<SessionUser>, sqlx::Error> {
        Ok(None)
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<SessionUser>, sqlx::Error> {
        Ok(users::find(&self.pool, *id).await?.map(SessionUser::from))
    }
}

/// The per-request session with its user.
pub type AuthSession = axum_login::AuthSession<Backend>;
