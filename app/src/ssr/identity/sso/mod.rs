//! Single sign-on with OpenID Connect: the providers the admin configured (settings), each
//! provider's discovery document and keys (cached, refreshed on rotation), the sign-in flow
//! (authorization code with PKCE, `state` and `nonce`) and who may come in (admission).
//! Sessions stay ours: a successful sign-in starts the same server-side session a password does.

pub mod admin;
pub mod admit;
mod claims;
pub mod flow;
pub mod link;
pub mod policy;
mod provider;
mod username;

pub use crate::api::sso::Refusal;
pub use flow::{Callback, Finished, Started, finish, start};
pub use provider::Provider;

use crate::AppError;
use crate::ssr::AppState;
use crate::ssr::audit::action;
use crate::ssr::audit::repo::{self as audit, NewAuditEvent};
use crate::ssr::identity::auth::{ClientInfo, SessionUser};

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Who may get an account through a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// An account is made on first sign-in for people who pass the domain and group rules.
    Open,
    /// Only people with a pending invitation for their (verified) e-mail address get an account.
    Invited,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Open => "open",
            Admission::Invited => "invited",
        }
    }
}

/// One OpenID provider, as the admin configured it (validated by the settings).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Short name in URLs and the identities table (`[a-z0-9-]`).
    pub id: String,
    /// What the sign-in button says after "Sign in with".
    pub name: String,
    /// The issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Absent for a public client (PKCE alone).
    pub client_secret: Option<SecretString>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    pub admission: Admission,
    /// With entries, a (verified) e-mail address in one of these domains is required.
    pub allowed_domains: Vec<String>,
    /// With entries, membership of one of these groups is required.
    pub allowed_groups: Vec<String>,
    /// Members of these groups are admins here; with entries, the role follows the groups at
    /// every sign-in.
    pub admin_groups: Vec<String>,
    /// The claim that lists groups (id token, else userinfo).
    pub groups_claim: String,
    /// The claim a new account's username is made from (then the e-mail's local part).
    pub username_claim: String,
    /// How long the discovery document and keys are used before they are read again.
    pub metadata_max_age: Duration,
    /// How far the provider's clock may be from ours (token expiry and issue time).
    pub clock_skew: Duration,
}

/// Every configured provider.
#[derive(Clone, Default)]
pub struct Sso {
    providers: Arc<Vec<Arc<Provider>>>,
}

impl Sso {
    /// The providers of `configs`, each with its own HTTP client; nothing is fetched yet.
    pub fn new(configs: Vec<ProviderConfig>) -> Self {
        Sso {
            providers: Arc::new(
                configs
                    .into_iter()
                    .map(|c| Arc::new(Provider::new(c)))
                    .collect(),
            ),
        }
    }

    /// The provider called `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers.iter().find(|p| p.config.id == id).cloned()
    }

    /// Every provider's settings, in the sign-in page's order.
    pub fn configs(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.config)
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// Records an event about single sign-on: by `user` when one is known, else about `name`.
async fn record(
    db: impl sqlx::PgExecutor<'_>,
    act: &str,
    user: Option<&SessionUser>,
    name: &str,
    client: &ClientInfo,
    details: serde_json::Value,
) -> Result<(), AppError> {
    let id = user.map(|u| u.id.to_string());
    audit::record(
        db,
        NewAuditEvent {
            action: act,
            actor_id: user.map(|u| u.id),
            actor_name: user.map(|u| u.username.as_str()),
            subject_type: Some("user"),
            subject_id: id,
            subject_name: Some(name),
            client_addr: client.addr.as_deref(),
            details: Some(details),
        },
    )
    .await?;
    Ok(())
}

/// Records a refused sign-in (`who`: what the provider said the person was, when known).
async fn refused(
    state: &AppState,
    provider: &str,
    refusal: Refusal,
    who: Option<&str>,
    client: &ClientInfo,
) {
    let details = serde_json::json!({ "provider": provider, "code": refusal.code() });
    let name = who.unwrap_or("(unknown)");
    if let Err(err) = record(
        state.pool(),
        action::SSO_REFUSED,
        None,
        name,
        client,
        details,
    )
    .await
    {
        tracing::error!(error = %err, "could not record a refused single sign-on");
    }
}

fn internal(err: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %err, "single sign-on: database error");
    Refusal::Internal
}
