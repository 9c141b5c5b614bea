//! The admin home numbers and the audit log reader.

use crate::AppError;
use crate::api::admin::{AUDIT_PER_PAGE, AdminOverview, AuditEntry, AuditList, AuditQuery};
use crate::ssr::AppState;
use crate::ssr::audit::repo::{self as repo, AuditFilter, AuditRow};
use crate::ssr::identity::repo::{invitations, users};

/// An audit row in words.
pub fn entry(row: AuditRow) -> AuditEntry {
    let details = match row.details {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        _ => Vec::new(),
    };
    AuditEntry {
        id: row.id,
        at: row.at,
        action: row.action,
        actor: row.actor_name,
        subject_type: row.subject_type,
        subject_id: row.subject_id,
        subject: row.subject_name,
        client_addr: row.client_addr,
        details,
    }
}

/// See [`crate::api::admin::get_admin_overview`].
pub async fn overview(state: &AppState) -> Result<AdminOverview, AppError> {
    let pool = state.pool();
    let (users_active, users_disabled) = users::counts(pool).await?;
    let (invitations_pending, invitations_expiring) = invitations::pending_counts(pool, 24).await?;
    let mut conn = pool.acquire().await?;
    let recent = repo::list(&mut conn, &AuditFilter::default(), 0, 10).await?;
    let runtime_alerts = state
        .orchestrator()
        .in_error()
        .await?
        .into_iter()
        .map(|r| {
            let message = match r.fault() {
                Some(f) => format!(
                    "{} {} (reference {})",
                    f.problem.message(),
                    crate::ssr::runtimes::admin_detail(&f),
                    f.reference
                ),
                None => "The runtime is in error.".into(),
            };
            (r.username, r.user_id.to_string(), message)
        })
        .collect();
    Ok(AdminOverview {
        runtime_alerts,
        users_active,
        users_disabled,
        invitations_pending,
        invitations_expiring,
        recent_security: recent.rows.into_iter().map(entry).collect(),
    })
}

/// See [`crate::api::admin::list_audit`].
pub async fn audit(state: &AppState, query: AuditQuery) -> Result<AuditList, AppError> {
    let action = query.action.trim();
    let person = query.person.trim();
    if action.chars().count() > 64 || person.chars().count() > 100 {
        return Err(AppError::field("person", "The filter is too long."));
    }
    let page = query.page.clamp(1, 100_000);
    let filter = AuditFilter {
        action_prefix: (!action.is_empty()).then(|| action.to_owned()),
        person: (!person.is_empty()).then(|| person.to_owned()),
        since: None,
    };
    let mut conn = state.pool().acquire().await?;
    let found = repo::list(
        &mut conn,
        &filter,
        (page - 1) * AUDIT_PER_PAGE,
        AUDIT_PER_PAGE,
    )
    .await?;
    Ok(AuditList {
        rows: found.rows.into_iter().map(entry).collect(),
        total: found.total,
        page,
        per_page: AUDIT_PER_PAGE,
    })
}
