//! The one-row `sign_in_policy` table.

use sqlx::PgExecutor;
use uuid::Uuid;

/// The policy, with the break-glass admin's name.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    /// `everyone` or `break_glass`.
    pub password_for: String,
    pub break_glass_user: Option<Uuid>,
    pub break_glass_name: Option<String>,
    pub updated_at: time::OffsetDateTime,
    pub updated_by: Option<String>,
}

pub async fn get(db: impl PgExecutor<'_>) -> sqlx::Result<PolicyRow> {
    sqlx::query_as!(
        PolicyRow,
        r#"SELECT p.password_for, p.break_glass_user, u.username AS "break_glass_name?",
                  p.updated_at, p.updated_by
             FROM sign_in_policy p LEFT JOIN users u ON u.id = p.break_glass_user"#
    )
    .fetch_one(db)
    .await
}

/// Locks the row (inside the caller's transaction) so a user change and a policy change don't
/// pass each other.
pub async fn lock(db: impl PgExecutor<'_>) -> sqlx::Result<PolicyRow> {
    sqlx::query_as!(
        PolicyRow,
        r#"SELECT p.password_for, p.break_glass_user, NULL::text AS "break_glass_name?",
                  p.updated_at, p.updated_by
             FROM sign_in_policy p FOR UPDATE"#
    )
    .fetch_one(db)
    .await
}

pub async fn set(
    db: impl PgExecutor<'_>,
    password_for: &str,
    break_glass_user: Option<Uuid>,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sign_in_policy
            SET password_for = $1, break_glass_user = $2, updated_at = now(), updated_by = $3",
        password_for,
        break_glass_user,
        by
    )
    .execute(db)
    .await?;
    Ok(())
}
