//! SQL for a runtime the platform holds (the runaway-agent breaker's pause).

use clawloops_wire::runtime::ObservedState;
use sqlx::PgConnection;
use uuid::Uuid;

/// Records a hold with its reason (`Some`), or ends it (`None`); false when the user has no
/// runtime.
pub async fn set_hold(
    db: &mut PgConnection,
    user_id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    Ok(sqlx::query!(
        "UPDATE runtimes SET paused_reason = $2,
                paused_at = CASE WHEN $2::text IS NULL THEN NULL ELSE coalesce(paused_at, now()) END,
                paused_in_place = CASE WHEN $2::text IS NULL THEN NULL ELSE paused_in_place END,
                updated_at = now()
          WHERE user_id = $1",
        user_id,
        reason
    )
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Notes how the hold took effect: frozen in place (observed `paused`) or stopped instead.
pub async fn held(db: &mut PgConnection, user_id: Uuid, in_place: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET paused_in_place = $2,
                observed_state = CASE WHEN $2 THEN 'paused' ELSE observed_state END,
                updated_at = now()
          WHERE user_id = $1 AND paused_reason IS NOT NULL",
        user_id,
        in_place
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A thawed runtime runs again.
pub async fn thawed(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE runtimes SET observed_state = $2, updated_at = now()
          WHERE user_id = $1 AND observed_state = 'paused'",
        user_id,
        ObservedState::Running.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the user has a lifecycle task queued or running.
pub async fn busy(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM runtime_tasks
                           WHERE user_id = $1 AND status IN ('queued', 'running')) AS "busy!""#,
        user_id
    )
    .fetch_one(db)
    .await
}
