//! Single sign-on as pages see it: the providers' buttons, why a sign-in was refused (in words),
//! and confirming a link to an existing account with its password.

use crate::AppError;
use crate::api::auth::Me;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Why a single sign-on attempt did not sign anyone in. The code travels in the sign-in page's
/// address (`?sso_error=`), so it never carries the provider's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The provider did not answer (down, refused, timed out, 5xx).
    Unreachable,
    /// The provider answered, but not as the settings expect.
    Misconfigured,
    /// No sign-in under way matches (missing, wrong, used or expired `state`).
    State,
    /// The provider said no (the person cancelled, or it refused the request).
    ProviderError,
    /// The provider would not exchange the code (used before, expired, or not ours).
    CodeRejected,
    /// The id token failed a check: signature, issuer, audience, expiry or nonce.
    Token,
    /// Outside the allowed e-mail domains or groups.
    NotAllowed,
    /// Admission by invitation, and no pending invitation for this address.
    NotInvited,
    /// The account is disabled here.
    Disabled,
    /// An existing account uses the address, but the provider has not verified it.
    UnverifiedEmail,
    /// Too many sign-ins under way from this address (or in all): each one is stored.
    Busy,
    /// Something failed on our side.
    Internal,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::Unreachable,
        Refusal::Misconfigured,
        Refusal::State,
        Refusal::ProviderError,
        Refusal::CodeRejected,
        Refusal::Token,
        Refusal::NotAllowed,
        Refusal::NotInvited,
        Refusal::Disabled,
        Refusal::UnverifiedEmail,
        Refusal::Busy,
        Refusal::Internal,
    ];

    /// The stable code (also the audit log's `code`).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unreachable => "unreachable",
            Refusal::Misconfigured => "misconfigured",
            Refusal::State => "state",
            Refusal::ProviderError => "provider_error",
            Refusal::CodeRejected => "code_rejected",
            Refusal::Token => "token",
            Refusal::NotAllowed => "not_allowed",
            Refusal::NotInvited => "not_invited",
            Refusal::Disabled => "disabled",
            Refusal::UnverifiedEmail => "unverified_email",
            Refusal::Busy => "busy",
            Refusal::Internal => "internal",
        }
    }

    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What the sign-in page says; `provider` is the provider's display name.
    pub fn message(self, provider: &str) -> String {
        match self {
            Refusal::Unreachable => format!(
                "{provider} can't be reached right now, so single sign-on is unavailable. Try again later, or sign in with your password."
            ),
            Refusal::Misconfigured => format!(
                "Sign-in with {provider} is not set up correctly. Ask your administrator to check the provider settings; you can still sign in with your password."
            ),
            Refusal::State => "This sign-in had expired or was already used. Start again.".into(),
            Refusal::ProviderError => format!("{provider} did not sign you in. Start again."),
            Refusal::CodeRejected => {
                format!(
                    "{provider} did not accept this sign-in (it may have been used already). Start again."
                )
            }
            Refusal::Token => {
                format!("{provider}'s answer could not be verified, so nobody was signed in.")
            }
            Refusal::NotAllowed => format!(
                "Your {provider} account is not allowed here (its e-mail domain or groups). Ask your administrator for access."
            ),
            Refusal::NotInvited => {
                "There is no invitation for your e-mail address. Ask your administrator for one."
                    .into()
            }
            Refusal::Disabled => {
                "This account is disabled. Ask an administrator to enable it.".into()
            }
            Refusal::UnverifiedEmail => format!(
                "{provider} has not verified your e-mail address, so it can't be linked to the account here that uses it."
            ),
            Refusal::Busy => "Too many sign-ins are under way from your network. Wait a few minutes, then start again.".into(),
            Refusal::Internal => "Something went wrong on our side. Try again in a moment.".into(),
        }
    }
}

/// A provider's button on the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoButton {
    pub id: String,
    pub name: String,
}

/// The providers to offer on the sign-in page.
#[server(endpoint = "auth/sso/providers")]
pub async fn sso_providers() -> Result<Vec<SsoButton>, AppError> {
    use crate::ssr::{app_state, respond};
    respond(async {
        Ok(app_state()?
            .sso()
            .configs()
            .map(|p| SsoButton {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect())
    })
    .await
}

/// What the link page shows before the password is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPreview {
    pub provider: String,
    pub username: String,
    pub email: String,
}

/// The pending link behind `token`: `NOT_FOUND` once used or expired.
#[server(endpoint = "auth/sso/link/preview")]
pub async fn preview_sso_link(token: String) -> Result<LinkPreview, AppError> {
    use crate::ssr::{app_state, identity::sso, respond};
    respond(async { sso::link::preview(&app_state()?, &token).await }).await
}

/// Links the provider identity to the account, when `password` is that account's, and signs in.
#[server(endpoint = "auth/sso/link")]
pub async fn confirm_sso_link(token: String, password: String) -> Result<Me, AppError> {
    use crate::ssr::{app_state, identity::sso, respond};
    respond(async { sso::link::confirm(&app_state()?, &token, password).await }).await
}

/// Who may sign in with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordFor {
    /// Every account (the default).
    Everyone,
    /// Only the break-glass admin; everyone else uses single sign-on.
    BreakGlass,
}

/// A configured provider as the admin page shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// A client secret is set (confidential client); its value is never shown.
    pub has_secret: bool,
    /// `open` or `invited`.
    pub admission: String,
    pub allowed_domains: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    /// The redirect URI to register at the provider.
    pub callback_url: String,
}

/// The admin's sign-in page: providers (read-only, from the settings) and the password policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInSetup {
    pub providers: Vec<ProviderView>,
    pub password_for: PasswordFor,
    /// The break-glass admin's id and name, when one is named.
    pub break_glass: Option<String>,
    pub break_glass_name: Option<String>,
    /// Active admins `(id, username)`: the break-glass candidates.
    pub admins: Vec<(String, String)>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    pub updated_by: Option<String>,
}

/// The providers and the password policy (admins only).
#[server(endpoint = "admin/sign-in")]
pub async fn sign_in_settings() -> Result<SignInSetup, AppError> {
    use crate::ssr::{Access, identity::sso, serve};
    serve(Access::Admin, async |state, _caller| {
        sso::policy::settings(state).await
    })
    .await
}

/// Sets who may sign in with a password; `break_glass` (an active admin's id) is needed for
/// `break_glass`.
#[server(endpoint = "admin/sign-in/policy")]
pub async fn set_password_policy(
    password_for: PasswordFor,
    break_glass: String,
) -> Result<SignInSetup, AppError> {
    use crate::ssr::{Access, identity::sso, serve};
    serve(Access::Admin, async |state, caller| {
        sso::policy::set(state, caller, password_for, &break_glass).await
    })
    .await
}

/// A provider identity that signs an account in (admin's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    pub provider: String,
    pub provider_name: String,
    pub email: Option<String>,
    /// `created`, `invitation`, `password` or `admin`.
    pub linked_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub linked_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<time::OffsetDateTime>,
}

/// Someone who signed in with a provider vouching for the account's address and was asked for
/// the account's password (kept a day for an admin to link instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequestView {
    pub id: String,
    pub provider_name: String,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: time::OffsetDateTime,
}

/// An account's single sign-on links and link requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoLinks {
    pub identities: Vec<IdentityView>,
    pub requests: Vec<LinkRequestView>,
}

/// The provider identities of user `id`, and requests to link one.
#[server(endpoint = "admin/users/sso")]
pub async fn user_identities(id: String) -> Result<SsoLinks, AppError> {
    use crate::ssr::{Access, identity::sso, serve};
    serve(Access::Admin, async |state, _| {
        sso::admin::identities(state, &id).await
    })
    .await
}

/// Links the identity of link request `request` to user `id` (an admin's action, audited).
#[server(endpoint = "admin/users/sso/link")]
pub async fn link_identity(id: String, request: String) -> Result<SsoLinks, AppError> {
    use crate::ssr::{Access, identity::sso, serve};
    serve(Access::Admin, async |state, caller| {
        sso::admin::link(state, caller, &id, &request).await
    })
    .await
}

/// Removes user `id`'s link to `provider`: that identity is a stranger again.
#[server(endpoint = "admin/users/sso/unlink")]
pub async fn unlink_identity(id: String, provider: String) -> Result<SsoLinks, AppError> {
    use crate::ssr::{Access, identity::sso, serve};
    serve(Access::Admin, async |state, caller| {
        sso::admin::unlink(state, caller, &id, &provider).await
    })
    .await
}
