//! The entry layer's reads of PostgreSQL: a session's facts for forward-auth. (Handoff codes
//! and workspace cookies are in [`super::handoff`].)

use clawloops_orchestrator::{DesiredState, ObservedState};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// What forward-auth needs to know about a session: its user, when it ends, and whether the
/// user's runtime is wanted and running.
#[derive(Debug)]
pub struct SessionFacts {
    pub id: Uuid,
    pub username: String,
    pub status: String,
    pub must_change_password: bool,
    pub expires_at: OffsetDateTime,
    /// When the session signed in (unix seconds), for its absolute lifetime.
    pub login_at: Option<i64>,
    pub desired_state: Option<DesiredState>,
    pub observed_state: Option<ObservedState>,
}

/// The session's facts, or `None` for no such session.
pub async fn session_facts(pool: &PgPool, session: &str) -> sqlx::Result<Option<SessionFacts>> {
    sqlx::query_as!(
        SessionFacts,
        r#"SELECT u.id, u.username, u.status, u.must_change_password, s.expires_at,
                  (s.data->>'clawloops.login_at')::bigint AS login_at,
                  r.desired_state AS "desired_state?: DesiredState",
                  r.observed_state AS "observed_state?: ObservedState"
             FROM sessions s
             JOIN users u ON u.id = s.user_id
             LEFT JOIN runtimes r ON r.user_id = u.id
            WHERE s.id = $1"#,
        session
    )
    .fetch_optional(pool)
    .await
}
