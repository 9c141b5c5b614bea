//! Signing in: throttling (see [`throttle`]), constant-time refusal, the disabled check after
//! the password, a fresh session, and an audit record for every outcome.

use super::throttle::{self, Keys};
use super::{AuthSession, ClientInfo, SessionUser, gate, password};
use crate::AppError;
use crate::model::UserStatus;
use crate::ssr::audit::repo::{self as audit, NewAuditEvent};
use crate::ssr::audit::{Subject, action};
use crate::ssr::identity::repo::users;
use sqlx::PgPool;

/// Longest username or password accepted at the door (anything longer cannot match).
const MAX_INPUT: usize = 1024;

/// Signs in with a username and password.
pub async fn sign_in(
    pool: &PgPool,
    auth: &mut AuthSession,
    client: &ClientInfo,
    username: &str,
    password: String,
) -> Result<SessionUser, AppError> {
    let name = username.trim().to_lowercase();
    if name.is_empty() {
        return Err(AppError::field("username", "Enter your username."));
    }
    if password.is_empty() {
        return Err(AppError::field("password", "Enter your password."));
    }
    if name.len() > MAX_INPUT || password.len() > MAX_INPUT {
        return Err(AppError::InvalidCredentials);
    }

    let user = verify_password(pool, client, &name, password).await?;
    // After the password, so the refusal tells nothing to someone without it.
    if !crate::ssr::identity::sso::policy::password_allowed(pool, user.id).await? {
        return Err(AppError::PasswordSignInOff);
    }
    gate::start_session(auth, &user, client).await?;
    users::touch_login(pool, user.id).await?;
    let id = user.id.to_string();
    record_user(
        pool,
        action::LOGIN_SUCCEEDED,
        &user,
        Subject::user(&id, &user.username),
        client,
    )
    .await?;
    Ok(user)
}

/// The account `name` (lower-cased), when `password` is its own and the account is active:
/// throttled and audited like every sign-in. Also confirms a single sign-on link.
pub async fn verify_password(
    pool: &PgPool,
    client: &ClientInfo,
    name: &str,
    password: String,
) -> Result<SessionUser, AppError> {
    let keys = Keys::new(name, client.addr.as_deref());
    if let Some(lock) = throttle::locked(pool, name, &keys).await? {
        let details = lock_details(&lock, &keys);
        record(pool, action::LOGIN_THROTTLED, name, client, Some(details)).await?;
        return Err(AppError::TooManyAttempts {
            retry_after_secs: lock.retry_after_secs(),
        });
    }

    let row = users::find_by_username(pool, name).await?;
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    if !password::verify(password, stored).await? {
        record(pool, action::LOGIN_FAILED, name, client, None).await?;
        for lock in throttle::failed(pool, name, &keys).await? {
            let details = lock_details(&lock, &keys);
            record(pool, action::LOGIN_LOCKED, name, client, Some(details)).await?;
        }
        return Err(AppError::InvalidCredentials);
    }
    // The password was right, so saying the account is disabled reveals nothing new.
    let Some(row) = row else {
        return Err(AppError::InvalidCredentials);
    };
    throttle::succeeded(pool, name, &keys).await?;
    let user = SessionUser::from(row);
    if user.status == UserStatus::Disabled {
        let id = user.id.to_string();
        let subject = Subject::user(&id, &user.username);
        record_user(pool, action::LOGIN_DENIED, &user, subject, client).await?;
        return Err(AppError::UserDisabled);
    }

    Ok(user)
}

/// What the audit log says about a lock: its scope, why, and until when.
fn lock_details(lock: &throttle::Lock, keys: &Keys) -> serde_json::Value {
    serde_json::json!({
        "scope": lock.scope.as_str(),
        "reason": lock.scope.reason(&keys.group),
        "address_group": keys.group,
        "retry_after_secs": lock.retry_after_secs(),
    })
}

/// An event about a sign-in attempt for a name that may not exist.
async fn record(
    pool: &PgPool,
    action: &str,
    name: &str,
    client: &ClientInfo,
    details: Option<serde_json::Value>,
) -> Result<(), AppError> {
    audit::record(
        pool,
        NewAuditEvent {
            action,
            subject_type: Some("user"),
            subject_name: Some(name),
            client_addr: client.addr.as_deref(),
            details,
            ..NewAuditEvent::default()
        },
    )
    .await?;
    Ok(())
}

async fn record_user(
    pool: &PgPool,
    action: &str,
    user: &SessionUser,
    subject: Subject<'_>,
    client: &ClientInfo,
) -> Result<(), AppError> {
    audit::record(
        pool,
        NewAuditEvent {
            action,
            actor_id: Some(user.id),
            actor_name: Some(&user.username),
            subject_type: Some(subject.kind),
            subject_id: Some(subject.id.to_owned()),
            subject_name: subject.name,
            client_addr: client.addr.as_deref(),
            details: None,
        },
    )
    .await?;
    Ok(())
}
