//! The append-only `audit_events` table.

use crate::ssr::paging::{Page, contains_pattern};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// One event as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub subject_name: Option<String>,
    pub client_addr: Option<String>,
    pub details: serde_json::Value,
}

/// An event to record.
#[derive(Debug, Default)]
pub struct NewAuditEvent<'a> {
    pub action: &'a str,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<&'a str>,
    pub subject_type: Option<&'a str>,
    pub subject_id: Option<String>,
    pub subject_name: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub details: Option<serde_json::Value>,
}

/// Filters for the audit page.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Actions starting with this (`login.` matches every sign-in event).
    pub action_prefix: Option<String>,
    /// Actor or subject name contains this.
    pub person: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
}

pub async fn record(db: impl PgExecutor<'_>, event: NewAuditEvent<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO audit_events (action, actor_id, actor_name, subject_type, subject_id,
                                   subject_name, client_addr, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        event.action,
        event.actor_id,
        event.actor_name,
        event.subject_type,
        event.subject_id,
        event.subject_name,
        event.client_addr,
        event.details.unwrap_or_else(|| serde_json::json!({}))
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One page of events, newest first.
pub async fn list(
    db: &mut sqlx::PgConnection,
    filter: &AuditFilter,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Page<AuditRow>> {
    let prefix = filter.action_prefix.as_deref().map(|p| {
        format!(
            "{}%",
            p.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let person = filter.person.as_deref().map(contains_pattern);
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM audit_events
            WHERE ($1::text IS NULL OR action LIKE $1)
              AND ($2::text IS NULL OR actor_name ILIKE $2 OR subject_name ILIKE $2)
              AND ($3::timestamptz IS NULL OR at >= $3)"#,
        prefix,
        person,
        filter.since
    )
    .fetch_one(&mut *db)
    .await?;
    let rows = sqlx::query_as!(
        AuditRow,
        r#"SELECT id, at, action, actor_id, actor_name, subject_type, subject_id, subject_name,
                  client_addr, details
             FROM audit_events
            WHERE ($1::text IS NULL OR action LIKE $1)
              AND ($2::text IS NULL OR actor_name ILIKE $2 OR subject_name ILIKE $2)
              AND ($3::timestamptz IS NULL OR at >= $3)
            ORDER BY at DESC, id DESC
            OFFSET $4 LIMIT $5"#,
        prefix,
        person,
        filter.since,
        offset,
        limit
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(Page { rows, total })
}
