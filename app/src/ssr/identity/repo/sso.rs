//! The single sign-on tables: `sso_flows` (sign-ins under way), `sso_identities` (which
//! provider identity is which account) and `sso_pending_links` (links waiting for a password).

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a sign-in may stay at the provider, and a pending link wait for its password.
pub const FLOW_MINUTES: i32 = 10;

/// A sign-in under way, as stored at its start.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// Still within [`FLOW_MINUTES`].
    pub fresh: bool,
}

/// What a new sign-in stores.
#[derive(Debug)]
pub struct NewFlow<'a> {
    pub state_hash: &'a [u8],
    pub provider: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub return_to: &'a str,
    pub client_addr: Option<&'a str>,
}

pub async fn insert_flow(db: impl PgExecutor<'_>, new: NewFlow<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO sso_flows (state_hash, provider, nonce, pkce_verifier, return_to, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6)",
        new.state_hash,
        new.provider,
        new.nonce,
        new.pkce_verifier,
        new.return_to,
        new.client_addr
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sign-ins under way (younger than [`FLOW_MINUTES`]): from `client_addr`, and in all.
pub async fn flows_under_way(
    db: impl PgExecutor<'_>,
    client_addr: Option<&str>,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE client_addr = $1) AS "from_addr!",
                  count(*) AS "total!"
             FROM sso_flows WHERE created_at > now() - make_interval(mins => $2)"#,
        client_addr,
        FLOW_MINUTES
    )
    .fetch_one(db)
    .await?;
    Ok((row.from_addr, row.total))
}

/// Forgets sign-ins older than [`FLOW_MINUTES`] and link requests older than
/// [`REQUEST_HOURS`].
pub async fn prune(db: impl PgExecutor<'_> + Copy) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM sso_flows WHERE created_at < now() - make_interval(mins => $1)",
        FLOW_MINUTES
    )
    .execute(db)
    .await?;
    sqlx::query!(
        "DELETE FROM sso_pending_links WHERE created_at < now() - make_interval(hours => $1)",
        REQUEST_HOURS
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Takes the sign-in with this state: it is deleted, so a state (and the code that came with
/// it) is used at most once.
pub async fn take_flow(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
) -> sqlx::Result<Option<FlowRow>> {
    sqlx::query_as!(
        FlowRow,
        r#"DELETE FROM sso_flows WHERE state_hash = $1
           RETURNING provider, nonce, pkce_verifier, return_to,
                     created_at > now() - make_interval(mins => $2) AS "fresh!""#,
        state_hash,
        FLOW_MINUTES
    )
    .fetch_optional(db)
    .await
}

/// A provider identity and the account it signs in.
#[derive(Debug, Clone)]
pub struct IdentityRow {
    pub provider: String,
    pub subject: String,
    pub user_id: Uuid,
    pub email: Option<String>,
    pub linked_at: OffsetDateTime,
    pub linked_by: String,
    pub last_login_at: Option<OffsetDateTime>,
}

pub async fn find_identity(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
) -> sqlx::Result<Option<IdentityRow>> {
    sqlx::query_as!(
        IdentityRow,
        "SELECT provider, subject, user_id, email, linked_at, linked_by, last_login_at
           FROM sso_identities WHERE provider = $1 AND subject = $2",
        provider,
        subject
    )
    .fetch_optional(db)
    .await
}

/// Every identity linked to `user`.
pub async fn identities_of(db: impl PgExecutor<'_>, user: Uuid) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as!(
        IdentityRow,
        "SELECT provider, subject, user_id, email, linked_at, linked_by, last_login_at
           FROM sso_identities WHERE user_id = $1 ORDER BY provider",
        user
    )
    .fetch_all(db)
    .await
}

/// Unique index names, for telling a lost race from a fault.
pub const IDENTITY_KEY: &str = "sso_identities_pkey";
/// See [`IDENTITY_KEY`].
pub const USER_PROVIDER_KEY: &str = "sso_identities_user_provider";

/// What a new link stores.
#[derive(Debug)]
pub struct NewIdentity<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub user_id: Uuid,
    pub email: Option<&'a str>,
    /// `created`, `password`, `admin` or `invitation`.
    pub linked_by: &'a str,
}

pub async fn insert_identity(db: impl PgExecutor<'_>, new: NewIdentity<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO sso_identities (provider, subject, user_id, email, linked_by, last_login_at)
         VALUES ($1, $2, $3, $4, $5, now())",
        new.provider,
        new.subject,
        new.user_id,
        new.email,
        new.linked_by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a sign-in through the identity and keeps the address the provider now reports.
pub async fn touch_identity(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sso_identities SET last_login_at = now(), email = COALESCE($3, email)
          WHERE provider = $1 AND subject = $2",
        provider,
        subject,
        email
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A provider identity waiting for the password of the account with its e-mail address.
#[derive(Debug, Clone)]
pub struct PendingLinkRow {
    pub provider: String,
    pub subject: String,
    pub email: String,
    pub user_id: Uuid,
}

/// What a new pending link stores.
#[derive(Debug)]
pub struct NewPendingLink<'a> {
    pub token_hash: &'a [u8],
    pub provider: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub user_id: Uuid,
}

/// Records a link request; an earlier one of the same identity is replaced (one per identity).
pub async fn insert_pending_link(
    conn: &mut sqlx::PgConnection,
    new: NewPendingLink<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM sso_pending_links WHERE provider = $1 AND subject = $2",
        new.provider,
        new.subject
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO sso_pending_links (token_hash, provider, subject, email, user_id)
         VALUES ($1, $2, $3, $4, $5)",
        new.token_hash,
        new.provider,
        new.subject,
        new.email,
        new.user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The pending link with this token, while within [`FLOW_MINUTES`].
pub async fn find_pending_link(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<PendingLinkRow>> {
    sqlx::query_as!(
        PendingLinkRow,
        "SELECT provider, subject, email, user_id FROM sso_pending_links
          WHERE token_hash = $1 AND created_at > now() - make_interval(mins => $2)",
        token_hash,
        FLOW_MINUTES
    )
    .fetch_optional(db)
    .await
}

/// Takes the pending link (inside the linking transaction): it works once.
pub async fn take_pending_link(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<PendingLinkRow>> {
    sqlx::query_as!(
        PendingLinkRow,
        "DELETE FROM sso_pending_links
          WHERE token_hash = $1 AND created_at > now() - make_interval(mins => $2)
          RETURNING provider, subject, email, user_id",
        token_hash,
        FLOW_MINUTES
    )
    .fetch_optional(db)
    .await
}

/// How long a link request waits for an admin (the password link lasts [`FLOW_MINUTES`]).
pub const REQUEST_HOURS: i32 = 24;

/// A link request, as the admin sees it.
#[derive(Debug, Clone)]
pub struct LinkRequestRow {
    pub token_hash: Vec<u8>,
    pub provider: String,
    pub email: String,
    pub created_at: OffsetDateTime,
}

/// The link requests for `user` younger than [`REQUEST_HOURS`], newest first.
pub async fn link_requests_for(
    db: impl PgExecutor<'_>,
    user: Uuid,
) -> sqlx::Result<Vec<LinkRequestRow>> {
    sqlx::query_as!(
        LinkRequestRow,
        "SELECT token_hash, provider, email, created_at FROM sso_pending_links
          WHERE user_id = $1 AND created_at > now() - make_interval(hours => $2)
          ORDER BY created_at DESC",
        user,
        REQUEST_HOURS
    )
    .fetch_all(db)
    .await
}

/// Takes the link request for `user` (an admin links it).
pub async fn take_link_request(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    user: Uuid,
) -> sqlx::Result<Option<PendingLinkRow>> {
    sqlx::query_as!(
        PendingLinkRow,
        "DELETE FROM sso_pending_links
          WHERE token_hash = $1 AND user_id = $2
            AND created_at > now() - make_interval(hours => $3)
          RETURNING provider, subject, email, user_id",
        token_hash,
        user,
        REQUEST_HOURS
    )
    .fetch_optional(db)
    .await
}

/// Removes `user`'s link to `provider`; the removed row, if there was one.
pub async fn delete_identity(
    db: impl PgExecutor<'_>,
    user: Uuid,
    provider: &str,
) -> sqlx::Result<Option<IdentityRow>> {
    sqlx::query_as!(
        IdentityRow,
        "DELETE FROM sso_identities WHERE user_id = $1 AND provider = $2
         RETURNING provider, subject, user_id, email, linked_at, linked_by, last_login_at",
        user,
        provider
    )
    .fetch_optional(db)
    .await
}
