//! The `sessions` table behind tower-sessions (see `ssr::auth::store`).

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored session as listed on the account page.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// Everything a save writes.
#[derive(Debug)]
pub struct SessionWrite<'a> {
    pub id: &'a str,
    pub user_id: Option<Uuid>,
    pub data: serde_json::Value,
    pub expires_at: OffsetDateTime,
    pub client_addr: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Inserts a new record; `false` when the id is already taken (the caller picks another).
pub async fn insert(db: impl PgExecutor<'_>, s: &SessionWrite<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO sessions (id, user_id, data, expires_at, client_addr, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO NOTHING",
        s.id,
        s.user_id,
        s.data,
        s.expires_at,
        s.client_addr,
        s.user_agent
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts or replaces a record.
pub async fn upsert(db: impl PgExecutor<'_>, s: &SessionWrite<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, data, expires_at, client_addr, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE
            SET user_id = EXCLUDED.user_id, data = EXCLUDED.data,
                expires_at = EXCLUDED.expires_at, updated_at = now(),
                client_addr = COALESCE(EXCLUDED.client_addr, sessions.client_addr),
                user_agent = COALESCE(EXCLUDED.user_agent, sessions.user_agent)",
        s.id,
        s.user_id,
        s.data,
        s.expires_at,
        s.client_addr,
        s.user_agent
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The data and expiry of an unexpired record.
pub async fn load(
    db: impl PgExecutor<'_>,
    id: &str,
) -> sqlx::Result<Option<(serde_json::Value, OffsetDateTime)>> {
    let row = sqlx::query!(
        "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > now()",
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.data, r.expires_at)))
}

pub async fn delete(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM sessions WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of a user except, optionally, one. Returns how many ended.
pub async fn delete_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    except: Option<&str>,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE user_id = $1 AND ($2::text IS NULL OR id <> $2)",
        user_id,
        except
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A user's unexpired sessions, most recently used first.
pub async fn list_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "SELECT id, created_at, updated_at, expires_at, client_addr, user_agent
           FROM sessions
          WHERE user_id = $1 AND expires_at > now()
          ORDER BY updated_at DESC",
        user_id
    )
    .fetch_all(db)
    .await
}

pub async fn delete_expired(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM sessions WHERE expires_at <= now()")
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
