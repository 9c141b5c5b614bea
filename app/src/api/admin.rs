//! The admin home and the audit log.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Audit events per page.
pub const AUDIT_PER_PAGE: i64 = 50;

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub actor: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub subject: Option<String>,
    pub client_addr: Option<String>,
    /// Extra facts as `key: value` pairs, already in words.
    pub details: Vec<(String, String)>,
}

/// Filters for the audit page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// An action or action family (`login`, `user`, `invitation.created`, …); empty for all.
    pub action: String,
    /// Actor or subject name contains this.
    pub person: String,
    pub page: i64,
}

/// A page of audit events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditList {
    pub rows: Vec<AuditEntry>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The admin home's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminOverview {
    pub users_active: i64,
    pub users_disabled: i64,
    pub invitations_pending: i64,
    /// Pending invitations that expire within a day.
    pub invitations_expiring: i64,
    pub recent_security: Vec<AuditEntry>,
    /// Runtimes in error: (username, user id, what went wrong).
    pub runtime_alerts: Vec<(String, String, String)>,
}

#[server(endpoint = "admin/overview")]
pub async fn get_admin_overview() -> Result<AdminOverview, AppError> {
    use crate::ssr::{Access, admin, serve};
    serve(Access::Admin, async |state, _| admin::overview(state).await).await
}

#[server(endpoint = "admin/audit")]
pub async fn list_audit(query: AuditQuery) -> Result<AuditList, AppError> {
    use crate::ssr::{Access, admin, serve};
    serve(Access::Admin, async |state, _| {
        admin::audit(state, query).await
    })
    .await
}
