//! Invitations: how new people arrive. Admins create them; anyone with the link accepts one.

use super::auth::Me;
use crate::AppError;
use crate::model::{InvitationStatus, Role};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Invitations are valid for 1 to 720 hours.
pub const EXPIRY_HOURS: (i64, i64) = (1, 720);
/// Invitations per page in the admin list.
pub const PER_PAGE: i64 = 25;

/// What the invitee sees before accepting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationPreview {
    pub invited_by: Option<String>,
    pub role: Role,
    /// When set, the new account gets exactly this username.
    pub username: Option<String>,
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An invitation as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationSummary {
    pub id: String,
    pub status: InvitationStatus,
    pub role: Role,
    pub username: Option<String>,
    pub email: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub consumed_at: Option<OffsetDateTime>,
    /// The username of the account made with it.
    pub consumed_by: Option<String>,
}

/// A page of invitations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationList {
    pub rows: Vec<InvitationSummary>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// A link with its secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationLink {
    pub id: String,
    pub link: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What an admin fills in to invite someone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInvitationForm {
    pub role: Role,
    /// Empty: the invitee picks a username.
    pub username: String,
    pub email: String,
    pub note: String,
    pub expires_in_hours: i64,
}

/// Shows an invitation to whoever holds its link. Finished invitations answer with their
/// code (`INVITATION_EXPIRED`, `INVITATION_REVOKED`, `INVITATION_ALREADY_CONSUMED`).
#[server(endpoint = "invitations/preview")]
pub async fn preview_invitation(token: String) -> Result<InvitationPreview, AppError> {
    use crate::ssr::{app_state, identity::invitations, respond};
    respond(async {
        let state = app_state()?;
        invitations::preview(&state, &token).await
    })
    .await
}

/// Accepts an invitation: makes the account with the invitation's role and signs it in.
#[server(endpoint = "invitations/accept")]
pub async fn accept_invitation(
    token: String,
    username: String,
    password: String,
) -> Result<Me, AppError> {
    use crate::ssr::{app_state, identity::invitations, respond};
    respond(async {
        let state = app_state()?;
        invitations::accept(&state, &token, &username, password).await
    })
    .await
}

/// Creates an invitation (admins).
#[server(endpoint = "admin/invitations/create")]
pub async fn create_invitation(form: NewInvitationForm) -> Result<InvitationLink, AppError> {
    use crate::ssr::{Access, identity::invitations, serve};
    serve(Access::Admin, async |state, caller| {
        invitations::create(state, caller, form).await
    })
    .await
}

/// Lists invitations, optionally only one status (admins).
#[server(endpoint = "admin/invitations/list")]
pub async fn list_invitations(
    status: Option<InvitationStatus>,
    page: i64,
) -> Result<InvitationList, AppError> {
    use crate::ssr::{Access, identity::invitations, serve};
    serve(Access::Admin, async |state, _| {
        invitations::list(state, status, page).await
    })
    .await
}

/// One invitation (admins).
#[server(endpoint = "admin/invitations/get")]
pub async fn get_invitation(id: String) -> Result<InvitationSummary, AppError> {
    use crate::ssr::{Access, identity::invitations, serve};
    serve(Access::Admin, async |state, _| {
        invitations::get(state, &id).await
    })
    .await
}

/// Withdraws a pending invitation (admins).
#[server(endpoint = "admin/invitations/revoke")]
pub async fn revoke_invitation(id: String) -> Result<InvitationSummary, AppError> {
    use crate::ssr::{Access, identity::invitations, serve};
    serve(Access::Admin, async |state, caller| {
        invitations::revoke(state, caller, &id).await
    })
    .await
}

/// Makes a new link for a pending or expired invitation; the old link stops working (admins).
#[server(endpoint = "admin/invitations/reissue")]
pub async fn reissue_invitation(
    id: String,
    expires_in_hours: i64,
) -> Result<InvitationLink, AppError> {
    use crate::ssr::{Access, identity::invitations, serve};
    serve(Access::Admin, async |state, caller| {
        invitations::reissue(state, caller, &id, expires_in_hours).await
    })
    .await
}
