//! Invitation rules: creation, preview, the exactly-once accept, revoke and re-issue.

use crate::AppError;
use crate::api::auth::Me;
use crate::api::invitations::{
    EXPIRY_HOURS, InvitationLink, InvitationList, InvitationPreview, InvitationSummary,
    NewInvitationForm, PER_PAGE,
};
use crate::model::{InvitationStatus, check_password, normalize_email, normalize_username};
use crate::ssr::audit::repo as audit_repo;
use crate::ssr::audit::{self, Subject, action};
use crate::ssr::identity::auth::{SessionUser, gate, password, tokens};
use crate::ssr::identity::repo::invitations::{self as repo, InvitationRow, NewInvitation};
use crate::ssr::identity::repo::users;
use crate::ssr::parse_id;
use crate::ssr::{AppState, Caller};
use time::{Duration, OffsetDateTime};

const NOTE_MAX: usize = 500;

fn summary(row: InvitationRow, now: OffsetDateTime) -> InvitationSummary {
    InvitationSummary {
        id: row.id.to_string(),
        status: row.status(now),
        role: row.role,
        username: row.username,
        email: row.email,
        note: row.note,
        created_by: row.created_by_name,
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        consumed_at: row.consumed_at,
        consumed_by: row.consumed_by_name,
    }
}

/// The error an unusable invitation answers with, or `Ok` when it can be accepted.
fn usable(row: &InvitationRow, now: OffsetDateTime) -> Result<(), AppError> {
    match row.status(now) {
        InvitationStatus::Pending => Ok(()),
        InvitationStatus::Expired => Err(AppError::InvitationExpired),
        InvitationStatus::Revoked => Err(AppError::InvitationRevoked),
        InvitationStatus::Consumed => Err(AppError::InvitationAlreadyConsumed),
    }
}

fn expiry(hours: i64) -> Result<OffsetDateTime, AppError> {
    let (min, max) = EXPIRY_HOURS;
    if !(min..=max).contains(&hours) {
        return Err(AppError::field(
            "expires_in_hours",
            format!("Choose between {min} and {max} hours."),
        ));
    }
    Ok(OffsetDateTime::now_utc() + Duration::hours(hours))
}

fn link(state: &AppState, token: &str) -> String {
    format!("{}/invite/{token}", state.public_url())
}

/// See [`crate::api::invitations::preview_invitation`].
pub async fn preview(state: &AppState, token: &str) -> Result<InvitationPreview, AppError> {
    let row = repo::find_by_token(state.pool(), &tokens::hash_token(token.trim()))
        .await?
        .ok_or(AppError::InvitationNotFound)?;
    usable(&row, OffsetDateTime::now_utc())?;
    Ok(InvitationPreview {
        invited_by: row.created_by_name,
        role: row.role,
        username: row.username,
        email: row.email,
        expires_at: row.expires_at,
    })
}

/// See [`crate::api::invitations::accept_invitation`].
pub async fn accept(
    state: &AppState,
    token: &str,
    username: &str,
    password: String,
) -> Result<Me, AppError> {
    let pool = state.pool();
    let token_hash = tokens::hash_token(token.trim());

    // Cheap checks first, so a dead link is reported before anyone waits for a hash.
    let row = repo::find_by_token(pool, &token_hash)
        .await?
        .ok_or(AppError::InvitationNotFound)?;
    usable(&row, OffsetDateTime::now_utc())?;
    let name = match &row.username {
        Some(pinned) => pinned.clone(),
        None => normalize_username(username).map_err(|m| AppError::field("username", m))?,
    };
    check_password(&password, &name).map_err(|m| AppError::field("password", m))?;
    let hash = password::hash(password).await?;

    let mut tx = pool.begin().await?;
    // The row lock makes accept exactly-once: a second accept waits here, then sees it used.
    let row = repo::lock_by_token(&mut *tx, &token_hash)
        .await?
        .ok_or(AppError::InvitationNotFound)?;
    usable(&row, OffsetDateTime::now_utc())?;
    let created = users::insert(
        &mut *tx,
        users::NewUser {
            username: &name,
            email: row.email.as_deref(),
            role: row.role,
            password_hash: &hash,
            must_change_password: false,
        },
    )
    .await
    .map_err(|err| unique_to_field(err, &name))?;
    repo::consume(&mut *tx, row.id, created.id).await?;
    let client = gate::client_info().await;
    let user_id = created.id.to_string();
    let invitation_id = row.id.to_string();
    for (act, subject) in [
        (
            action::INVITATION_ACCEPTED,
            Subject::invitation(&invitation_id),
        ),
        (
            action::USER_CREATED,
            Subject::user(&user_id, &created.username),
        ),
    ] {
        audit_repo::record(
            &mut *tx,
            audit_repo::NewAuditEvent {
                action: act,
                actor_id: Some(created.id),
                actor_name: Some(&created.username),
                subject_type: Some(subject.kind),
                subject_id: Some(subject.id.to_owned()),
                subject_name: subject.name,
                client_addr: client.addr.as_deref(),
                details: Some(
                    serde_json::json!({ "role": created.role.as_str(), "via": "invitation" }),
                ),
            },
        )
        .await?;
    }
    tx.commit().await?;

    let user = SessionUser::from(created);
    let mut auth = gate::auth_session().await?;
    gate::start_session(&mut auth, &user, &client).await?;
    users::touch_login(pool, user.id).await?;
    Ok(Me::from(user))
}

/// Maps the username/e-mail unique indexes to form fields; anything else stays internal.
fn unique_to_field(err: sqlx::Error, name: &str) -> AppError {
    match err.as_database_error().and_then(|e| e.constraint()) {
        Some(users::USERNAME_KEY) => AppError::field(
            "username",
            format!("The username {name} is taken; choose another."),
        ),
        Some(users::WORKSPACE_NAME_KEY) => {
            AppError::field("username", users::workspace_name_taken(name))
        }
        Some(users::EMAIL_KEY) => AppError::field(
            "email",
            "An account with this e-mail address already exists.",
        ),
        _ => AppError::from(err),
    }
}

/// See [`crate::api::invitations::create_invitation`].
pub async fn create(
    state: &AppState,
    caller: &Caller,
    form: NewInvitationForm,
) -> Result<InvitationLink, AppError> {
    let username = match form.username.trim() {
        "" => None,
        given => Some(normalize_username(given).map_err(|m| AppError::field("username", m))?),
    };
    let email = normalize_email(&form.email).map_err(|m| AppError::field("email", m))?;
    let note = form.note.trim();
    if note.chars().count() > NOTE_MAX {
        return Err(AppError::field(
            "note",
            format!("Keep the note under {NOTE_MAX} characters."),
        ));
    }
    let expires_at = expiry(form.expires_in_hours)?;
    if let Some(name) = &username
        && users::find_by_username(state.pool(), name).await?.is_some()
    {
        return Err(AppError::field(
            "username",
            format!("The username {name} is taken."),
        ));
    }

    let (token, token_hash) = tokens::new_token();
    let mut tx = state.pool().begin().await?;
    let id = repo::insert(
        &mut *tx,
        NewInvitation {
            token_hash: &token_hash,
            role: form.role,
            username: username.as_deref(),
            email: email.as_deref(),
            note: (!note.is_empty()).then_some(note),
            created_by: caller.user.id,
            expires_at,
        },
    )
    .await?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::INVITATION_CREATED,
        Some(Subject::invitation(&id_text)),
        Some(serde_json::json!({
            "role": form.role.as_str(),
            "username": username,
            "expires_in_hours": form.expires_in_hours,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(InvitationLink {
        id: id_text,
        link: link(state, &token),
        expires_at,
    })
}

/// See [`crate::api::invitations::list_invitations`].
pub async fn list(
    state: &AppState,
    status: Option<InvitationStatus>,
    page: i64,
) -> Result<InvitationList, AppError> {
    let page = page.clamp(1, 100_000);
    let mut conn = state.pool().acquire().await?;
    let found = repo::list(&mut conn, status, (page - 1) * PER_PAGE, PER_PAGE).await?;
    let now = OffsetDateTime::now_utc();
    Ok(InvitationList {
        rows: found.rows.into_iter().map(|r| summary(r, now)).collect(),
        total: found.total,
        page,
        per_page: PER_PAGE,
    })
}

/// See [`crate::api::invitations::get_invitation`].
pub async fn get(state: &AppState, id: &str) -> Result<InvitationSummary, AppError> {
    let row = repo::find(state.pool(), parse_id(id, "Invitation")?)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "Invitation".into(),
        })?;
    Ok(summary(row, OffsetDateTime::now_utc()))
}

/// See [`crate::api::invitations::revoke_invitation`].
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<InvitationSummary, AppError> {
    let id = parse_id(id, "Invitation")?;
    let mut tx = state.pool().begin().await?;
    let row = repo::lock(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "Invitation".into(),
        })?;
    if row.status(OffsetDateTime::now_utc()) != InvitationStatus::Pending {
        return Err(AppError::Conflict {
            message: "Only a pending invitation can be revoked.".into(),
        });
    }
    repo::revoke(&mut *tx, id, caller.user.id).await?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::INVITATION_REVOKED,
        Some(Subject::invitation(&id_text)),
        None,
    )
    .await?;
    tx.commit().await?;
    get(state, &id_text).await
}

/// See [`crate::api::invitations::reissue_invitation`].
pub async fn reissue(
    state: &AppState,
    caller: &Caller,
    id: &str,
    hours: i64,
) -> Result<InvitationLink, AppError> {
    let id = parse_id(id, "Invitation")?;
    let expires_at = expiry(hours)?;
    let mut tx = state.pool().begin().await?;
    let row = repo::lock(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "Invitation".into(),
        })?;
    if !matches!(
        row.status(OffsetDateTime::now_utc()),
        InvitationStatus::Pending | InvitationStatus::Expired
    ) {
        return Err(AppError::Conflict {
            message: "A used or revoked invitation cannot get a new link; create a new invitation."
                .into(),
        });
    }
    let (token, token_hash) = tokens::new_token();
    repo::reissue(&mut *tx, id, &token_hash, expires_at).await?;
    let id_text = id.to_string();
    audit::by_caller(
        &mut *tx,
        caller,
        action::INVITATION_REISSUED,
        Some(Subject::invitation(&id_text)),
        Some(serde_json::json!({ "expires_in_hours": hours })),
    )
    .await?;
    tx.commit().await?;
    Ok(InvitationLink {
        id: id_text,
        link: link(state, &token),
        expires_at,
    })
}
