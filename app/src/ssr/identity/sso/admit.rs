//! Who may come in through a provider, and as which account. Our rules decide, at every
//! sign-in: the provider's domain and group rules, a disabled account stays out, the role
//! follows the admin groups (never taking the last admin away), a new identity becomes a new
//! account only as the admission allows, and an existing account with the same e-mail address
//! is linked only by its own password — never silently.

use super::{ProviderConfig, internal};
use crate::model::{Role, UserStatus};
use crate::ssr::audit::action;
use crate::ssr::audit::repo::{self as audit, NewAuditEvent};
use crate::ssr::identity::auth::{ClientInfo, password, tokens};
use crate::ssr::identity::repo::sso::{self as repo, NewIdentity, NewPendingLink};
use crate::ssr::identity::repo::{invitations, users};
use sqlx::{PgPool, Postgres, Transaction};

pub use crate::api::sso::Refusal;

/// The person the provider vouched for (verified token, userinfo merged in).
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The configured username claim's value.
    pub username: Option<String>,
    pub groups: Vec<String>,
}

impl Person {
    /// The e-mail address, when the provider verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

/// Where admission leads.
#[derive(Debug)]
pub enum Outcome {
    /// The account to sign in (its role already in step with the groups).
    Account {
        user: users::UserRow,
        /// Its role changed just now (cached access elsewhere must be forgotten).
        role_changed: bool,
    },
    /// An account with this address exists: its password must confirm the link.
    LinkNeeded { token: String },
}

/// The provider's rules: each configured list must be met.
fn check_rules(config: &ProviderConfig, person: &Person) -> Result<(), Refusal> {
    if !config.allowed_domains.is_empty() {
        let domain = person
            .verified_email()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let allowed = domain.is_some_and(|d| {
            config
                .allowed_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&d))
        });
        if !allowed {
            return Err(Refusal::NotAllowed);
        }
    }
    if !config.allowed_groups.is_empty() && !in_any(&person.groups, &config.allowed_groups) {
        return Err(Refusal::NotAllowed);
    }
    Ok(())
}

fn in_any(groups: &[String], wanted: &[String]) -> bool {
    groups.iter().any(|g| wanted.contains(g))
}

/// The role the admin groups give, when they are configured.
fn group_role(config: &ProviderConfig, person: &Person) -> Option<Role> {
    (!config.admin_groups.is_empty()).then(|| {
        if in_any(&person.groups, &config.admin_groups) {
            Role::Admin
        } else {
            Role::User
        }
    })
}

/// Decides whether and as whom `person` comes in; writes the account, link or pending link in
/// one transaction (nothing half-made on refusal).
pub async fn admit(
    pool: &PgPool,
    config: &ProviderConfig,
    person: &Person,
    client: &ClientInfo,
) -> Result<Outcome, Refusal> {
    check_rules(config, person)?;
    let mut tx = pool.begin().await.map_err(internal)?;
    let outcome = match repo::find_identity(&mut *tx, &config.id, &person.subject)
        .await
        .map_err(internal)?
    {
        Some(identity) => {
            let user = users::find_for_update(&mut *tx, identity.user_id)
                .await
                .map_err(internal)?
                .ok_or(Refusal::Internal)?;
            if user.status == UserStatus::Disabled {
                return Err(Refusal::Disabled);
            }
            let before = user.role;
            let user = sync_role(&mut tx, config, person, user, client).await?;
            repo::touch_identity(
                &mut *tx,
                &config.id,
                &person.subject,
                person.verified_email(),
            )
            .await
            .map_err(internal)?;
            Outcome::Account {
                role_changed: user.role != before,
                user,
            }
        }
        None => first_sign_in(&mut tx, config, person, client).await?,
    };
    tx.commit().await.map_err(internal)?;
    Ok(outcome)
}

/// A provider identity seen for the first time.
async fn first_sign_in(
    tx: &mut Transaction<'static, Postgres>,
    config: &ProviderConfig,
    person: &Person,
    client: &ClientInfo,
) -> Result<Outcome, Refusal> {
    // An account that already uses the address: only its own password may link it.
    if let Some(email) = person.email.as_deref()
        && let Some(existing) = users::find_by_email(&mut **tx, email)
            .await
            .map_err(internal)?
    {
        if !person.email_verified {
            return Err(Refusal::UnverifiedEmail);
        }
        if existing.status == UserStatus::Disabled {
            return Err(Refusal::Disabled);
        }
        let (token, hash) = tokens::new_token();
        repo::insert_pending_link(
            tx,
            NewPendingLink {
                token_hash: &hash,
                provider: &config.id,
                subject: &person.subject,
                email,
                user_id: existing.id,
            },
        )
        .await
        .map_err(internal)?;
        return Ok(Outcome::LinkNeeded { token });
    }

    let (role, pinned, linked_by, invitation) = match config.admission {
        super::Admission::Open => (
            group_role(config, person).unwrap_or(Role::User),
            None,
            "created",
            None,
        ),
        super::Admission::Invited => {
            let email = person.verified_email().ok_or(if person.email.is_some() {
                Refusal::UnverifiedEmail
            } else {
                Refusal::NotInvited
            })?;
            let invitation = invitations::lock_pending_for_email(&mut **tx, email)
                .await
                .map_err(internal)?
                .ok_or(Refusal::NotInvited)?;
            (
                invitation.role,
                invitation.username.clone(),
                "invitation",
                Some(invitation.id),
            )
        }
    };
    // Nobody signs in with this password: a long random one, hashed like any other.
    let unusable = password::hash(tokens::one_time_password())
        .await
        .map_err(|_| Refusal::Internal)?;
    let user = insert_user(tx, person, pinned, role, &unusable).await?;
    if let Some(invitation) = invitation {
        invitations::consume(&mut **tx, invitation, user.id)
            .await
            .map_err(internal)?;
    }
    repo::insert_identity(
        &mut **tx,
        NewIdentity {
            provider: &config.id,
            subject: &person.subject,
            user_id: user.id,
            email: person.verified_email(),
            linked_by,
        },
    )
    .await
    .map_err(internal)?;
    let details = serde_json::json!({
        "role": user.role.as_str(),
        "via": "sso",
        "provider": config.id,
        "admission": config.admission.as_str(),
    });
    record(tx, action::USER_CREATED, &user, client, details).await?;
    Ok(Outcome::Account {
        user,
        role_changed: false,
    })
}

/// Makes the account under the first free username derived from the claims: `name`, then
/// `name-2`, `name-3`… — never an existing account's.
async fn insert_user(
    tx: &mut Transaction<'static, Postgres>,
    person: &Person,
    pinned: Option<String>,
    role: Role,
    password_hash: &str,
) -> Result<users::UserRow, Refusal> {
    let base = pinned.unwrap_or_else(|| super::username::from_claims(person));
    for n in 1..=50 {
        let name = if n == 1 {
            base.clone()
        } else {
            let suffix = format!("-{n}");
            let keep = base.len().min(crate::model::USERNAME_LEN.1 - suffix.len());
            format!("{}{suffix}", base[..keep].trim_end_matches(['-', '.', '_']))
        };
        let mut savepoint = sqlx::Acquire::begin(&mut **tx).await.map_err(internal)?;
        let inserted = users::insert(
            &mut *savepoint,
            users::NewUser {
                username: &name,
                email: person.verified_email(),
                role,
                password_hash,
                must_change_password: false,
            },
        )
        .await;
        match inserted {
            Ok(user) => {
                savepoint.commit().await.map_err(internal)?;
                return Ok(user);
            }
            Err(err) => {
                let constraint = err
                    .as_database_error()
                    .and_then(|e| e.constraint())
                    .map(str::to_owned);
                savepoint.rollback().await.map_err(internal)?;
                match constraint.as_deref() {
                    // Taken: the next suffix.
                    Some(users::USERNAME_KEY | users::WORKSPACE_NAME_KEY) => {}
                    // The address was taken between the check and now: start again.
                    Some(users::EMAIL_KEY) => return Err(Refusal::Internal),
                    _ => return Err(internal(err)),
                }
            }
        }
    }
    Err(Refusal::Internal)
}

/// Keeps the role in step with the admin groups (when configured), but never takes the last
/// active admin's role away.
async fn sync_role(
    tx: &mut Transaction<'static, Postgres>,
    config: &ProviderConfig,
    person: &Person,
    mut user: users::UserRow,
    client: &ClientInfo,
) -> Result<users::UserRow, Refusal> {
    let Some(role) = group_role(config, person).filter(|r| *r != user.role) else {
        return Ok(user);
    };
    if user.role == Role::Admin
        && super::policy::is_break_glass(&mut **tx, user.id)
            .await
            .map_err(internal)?
    {
        tracing::warn!(user = %user.username, "kept the break-glass admin's role despite the groups");
        return Ok(user);
    }
    if user.role == Role::Admin {
        let admins = users::lock_active_admins(&mut **tx)
            .await
            .map_err(internal)?;
        if admins <= 1 {
            tracing::warn!(user = %user.username, "kept the last admin's role despite the groups");
            return Ok(user);
        }
    }
    users::set_role(&mut **tx, user.id, role)
        .await
        .map_err(internal)?;
    let details = serde_json::json!({
        "from": user.role.as_str(), "to": role.as_str(), "via": "sso", "provider": config.id,
    });
    user.role = role;
    record(tx, action::USER_ROLE_CHANGED, &user, client, details).await?;
    Ok(user)
}

async fn record(
    tx: &mut Transaction<'static, Postgres>,
    act: &str,
    user: &users::UserRow,
    client: &ClientInfo,
    details: serde_json::Value,
) -> Result<(), Refusal> {
    audit::record(
        &mut **tx,
        NewAuditEvent {
            action: act,
            actor_id: Some(user.id),
            actor_name: Some(&user.username),
            subject_type: Some("user"),
            subject_id: Some(user.id.to_string()),
            subject_name: Some(&user.username),
            client_addr: client.addr.as_deref(),
            details: Some(details),
        },
    )
    .await
    .map_err(internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::identity::sso::Admission;

    fn person(username: Option<&str>, email: Option<&str>, verified: bool) -> Person {
        Person {
            subject: "s".into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            username: username.map(str::to_owned),
            groups: vec!["staff".into()],
        }
    }

    #[test]
    fn domain_rules_need_a_verified_address_and_group_rules_a_group() {
        let config = ProviderConfig {
            id: "corp".into(),
            name: "Corp".into(),
            issuer: "https://id.example.com".into(),
            client_id: "c".into(),
            client_secret: None,
            scopes: vec![],
            admission: Admission::Open,
            allowed_domains: vec!["example.com".into()],
            allowed_groups: vec!["staff".into()],
            admin_groups: vec!["admins".into()],
            groups_claim: "groups".into(),
            username_claim: "preferred_username".into(),
            metadata_max_age: std::time::Duration::from_secs(1),
            clock_skew: std::time::Duration::from_secs(1),
        };
        assert_eq!(
            check_rules(&config, &person(None, Some("a@Example.COM"), true)),
            Ok(())
        );
        assert_eq!(
            check_rules(&config, &person(None, Some("a@example.com"), false)),
            Err(Refusal::NotAllowed),
            "an unverified address proves no domain"
        );
        assert_eq!(
            check_rules(&config, &person(None, Some("a@example.com.evil.org"), true)),
            Err(Refusal::NotAllowed)
        );
        let mut outsider = person(None, Some("a@example.com"), true);
        outsider.groups = vec!["contractors".into()];
        assert_eq!(check_rules(&config, &outsider), Err(Refusal::NotAllowed));
        assert_eq!(group_role(&config, &outsider), Some(Role::User));
        outsider.groups.push("admins".into());
        assert_eq!(group_role(&config, &outsider), Some(Role::Admin));
    }
}
