//! The `invitations` table.

use crate::model::{InvitationStatus, Role};
use crate::ssr::paging::Page;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A row of `invitations`, with the names of the people involved.
#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: Uuid,
    pub role: Role,
    pub username: Option<String>,
    pub email: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_by_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub consumed_at: Option<OffsetDateTime>,
    pub consumed_by: Option<Uuid>,
    pub consumed_by_name: Option<String>,
}

impl InvitationRow {
    /// Where the invitation stands at `now`; a finished one stays finished whatever the time.
    pub fn status(&self, now: OffsetDateTime) -> InvitationStatus {
        if self.consumed_at.is_some() {
            InvitationStatus::Consumed
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }
}

/// What a new invitation needs.
#[derive(Debug)]
pub struct NewInvitation<'a> {
    pub token_hash: &'a [u8],
    pub role: Role,
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub note: Option<&'a str>,
    pub created_by: Uuid,
    pub expires_at: OffsetDateTime,
}

// One SELECT list for every read, so rows always carry the same columns.
macro_rules! select_invitations {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            InvitationRow,
            r#"SELECT i.id, i.role AS "role: Role", i.username, i.email, i.note, i.created_by,
                      c.username AS "created_by_name?", i.created_at, i.expires_at, i.revoked_at,
                      i.consumed_at, i.consumed_by, u.username AS "consumed_by_name?"
                 FROM invitations i
                 LEFT JOIN users c ON c.id = i.created_by
                 LEFT JOIN users u ON u.id = i.consumed_by "# + $tail
            $(, $arg)*
        )
    };
}

pub async fn insert(db: impl PgExecutor<'_>, new: NewInvitation<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO invitations (token_hash, role, username, email, note, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        new.token_hash,
        new.role as Role,
        new.username,
        new.email,
        new.note,
        new.created_by,
        new.expires_at
    )
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<InvitationRow>> {
    select_invitations!("WHERE i.id = $1", id)
        .fetch_optional(db)
        .await
}

pub async fn find_by_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<InvitationRow>> {
    select_invitations!("WHERE i.token_hash = $1", token_hash)
        .fetch_optional(db)
        .await
}

/// Locks the invitation row (inside a transaction) so exactly one accept can consume it.
pub async fn lock_by_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<InvitationRow>> {
    select_invitations!("WHERE i.token_hash = $1 FOR UPDATE OF i", token_hash)
        .fetch_optional(db)
        .await
}

/// Locks the invitation row by id.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<InvitationRow>> {
    select_invitations!("WHERE i.id = $1 FOR UPDATE OF i", id)
        .fetch_optional(db)
        .await
}

/// Locks the newest pending invitation for `email` (without regard to case), if any.
pub async fn lock_pending_for_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> sqlx::Result<Option<InvitationRow>> {
    select_invitations!(
        "WHERE lower(i.email) = lower($1) AND i.consumed_at IS NULL AND i.revoked_at IS NULL
           AND i.expires_at > now()
         ORDER BY i.created_at DESC LIMIT 1 FOR UPDATE OF i",
        email
    )
    .fetch_optional(db)
    .await
}

pub async fn consume(db: impl PgExecutor<'_>, id: Uuid, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE invitations SET consumed_at = now(), consumed_by = $2 WHERE id = $1",
        id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid, by: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE invitations SET revoked_at = now(), revoked_by = $2 WHERE id = $1",
        id,
        by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the secret (the old link stops working) and the expiry.
pub async fn reissue(
    db: impl PgExecutor<'_>,
    id: Uuid,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE invitations SET token_hash = $2, expires_at = $3 WHERE id = $1",
        id,
        token_hash,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One page of invitations, newest first, optionally only those with `status`.
pub async fn list(
    db: &mut sqlx::PgConnection,
    status: Option<InvitationStatus>,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Page<InvitationRow>> {
    let status = status.map(InvitationStatus::as_str);
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM invitations i
            WHERE $1::text IS NULL OR $1 = CASE WHEN i.consumed_at IS NOT NULL THEN 'consumed'
                                                WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                                                WHEN i.expires_at <= now() THEN 'expired'
                                                ELSE 'pending' END"#,
        status
    )
    .fetch_one(&mut *db)
    .await?;
    let rows = select_invitations!(
        "WHERE $1::text IS NULL OR $1 = CASE WHEN i.consumed_at IS NOT NULL THEN 'consumed'
                                                 WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                                                 WHEN i.expires_at <= now() THEN 'expired'
                                                 ELSE 'pending' END
             ORDER BY i.created_at DESC, i.id OFFSET $2 LIMIT $3",
        status,
        offset,
        limit
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(Page { rows, total })
}

/// (pending, pending and expiring within `hours`) counts.
pub async fn pending_counts(db: impl PgExecutor<'_>, hours: i32) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "pending!",
                  count(*) FILTER (WHERE expires_at <= now() + make_interval(hours => $1))
                      AS "expiring!"
             FROM invitations
            WHERE consumed_at IS NULL AND revoked_at IS NULL AND expires_at > now()"#,
        hours
    )
    .fetch_one(db)
    .await?;
    Ok((row.pending, row.expiring))
}
