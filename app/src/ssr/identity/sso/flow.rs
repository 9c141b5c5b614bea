//! The sign-in itself: the redirect to the provider (PKCE, `state`, `nonce`, kept server-side
//! under the state's hash) and the return (state taken once and matched to the browser that
//! started it, code exchanged, id token verified, claims read, admission, our own session).

use super::admit::{self, Outcome};
use super::claims as said;
use super::provider::{IdToken, ProviderError, chain};
use super::{Provider, internal};
use crate::AppError;
use crate::api::sso::Refusal;
use crate::components::auth::safe_next;
use crate::ssr::AppState;
use crate::ssr::identity::auth::{AuthSession, ClientInfo, SessionUser, gate, tokens};
use crate::ssr::identity::repo::sso::{self as repo, NewFlow};
use crate::ssr::identity::repo::users;
use openidconnect::core::{CoreAuthenticationFlow, CoreErrorResponseType};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, CsrfToken, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, TokenResponse,
};
use std::str::FromStr;

/// Sign-ins one address may have under way (each is a stored row anyone can make)…
const FLOWS_PER_ADDRESS: i64 = 20;
/// …and all addresses together.
const FLOWS_IN_ALL: i64 = 20_000;

/// Where the provider sends the browser back.
pub fn callback_url(state: &AppState, provider: &str) -> String {
    format!("{}/auth/sso/{provider}/callback", state.public_url())
}

/// A sign-in on its way to the provider.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorization URL.
    pub authorize_url: String,
    /// The `state`, also kept in a cookie of the browser that started (login-CSRF guard).
    pub state: String,
}

/// Begins a sign-in with `provider`, to land on `return_to` (a local path) afterwards.
pub async fn start(
    state: &AppState,
    provider: &Provider,
    client: &ClientInfo,
    return_to: Option<String>,
) -> Result<Started, Refusal> {
    let result = authorize(state, provider, client, return_to).await;
    if let Err(refusal) = result {
        super::refused(state, &provider.config.id, refusal, None, client).await;
    }
    result
}

async fn authorize(
    state: &AppState,
    provider: &Provider,
    client: &ClientInfo,
    return_to: Option<String>,
) -> Result<Started, Refusal> {
    let metadata = provider
        .metadata()
        .await
        .map_err(|e| unusable(provider, e))?;
    let redirect = RedirectUrl::new(callback_url(state, &provider.config.id))
        .map_err(|_| Refusal::Misconfigured)?;
    let oidc = provider.client(metadata, redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in provider.config.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let pool = state.pool();
    repo::prune(pool).await.map_err(internal)?;
    let addr = client.addr.as_deref();
    let (from_addr, total) = repo::flows_under_way(pool, addr).await.map_err(internal)?;
    if from_addr >= FLOWS_PER_ADDRESS || total >= FLOWS_IN_ALL {
        return Err(Refusal::Busy);
    }
    repo::insert_flow(
        pool,
        NewFlow {
            state_hash: &tokens::hash_token(csrf.secret()),
            provider: &provider.config.id,
            nonce: nonce.secret(),
            pkce_verifier: verifier.secret(),
            return_to: &safe_next(return_to),
            client_addr: addr,
        },
    )
    .await
    .map_err(internal)?;
    Ok(Started {
        authorize_url: url.to_string(),
        state: csrf.secret().clone(),
    })
}

/// The provider's answer, as its query parameters.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207: which issuer answered (checked when present).
    pub iss: Option<String>,
}

/// Where a finished sign-in goes.
#[derive(Debug)]
pub enum Finished {
    /// Signed in; go to this local path.
    SignedIn { return_to: String },
    /// The identity needs the existing account's password: the link page's token.
    LinkNeeded { token: String },
}

/// Completes a sign-in. `browser_state` is the state cookie of the browser that came back.
/// A refusal is recorded in the audit log with who the provider said it was, when known.
pub async fn finish(
    state: &AppState,
    provider: &Provider,
    auth: &mut AuthSession,
    client: &ClientInfo,
    answer: Callback,
    browser_state: Option<String>,
) -> Result<Finished, Refusal> {
    let mut who = None;
    let result = complete(
        state,
        provider,
        auth,
        client,
        answer,
        browser_state,
        &mut who,
    )
    .await;
    if let Err(refusal) = result {
        super::refused(state, &provider.config.id, refusal, who.as_deref(), client).await;
    }
    result
}

async fn complete(
    state: &AppState,
    provider: &Provider,
    auth: &mut AuthSession,
    client: &ClientInfo,
    answer: Callback,
    browser_state: Option<String>,
    who: &mut Option<String>,
) -> Result<Finished, Refusal> {
    let pool = state.pool();
    let given = answer.state.as_deref().unwrap_or_default();
    if given.is_empty() {
        return Err(Refusal::State);
    }
    // Taken (deleted) whatever happens next: a state works once.
    let flow = repo::take_flow(pool, &tokens::hash_token(given))
        .await
        .map_err(internal)?
        .filter(|f| f.fresh && f.provider == provider.config.id)
        .ok_or(Refusal::State)?;
    // The browser that comes back must be the one that left (else someone else's code could
    // sign this browser in as them).
    if browser_state.as_deref() != Some(given) {
        return Err(Refusal::State);
    }
    if let Some(error) = &answer.error {
        tracing::info!(provider = %provider.config.id, %error,
            description = answer.error_description.as_deref().unwrap_or(""),
            "the provider refused the sign-in");
        return Err(Refusal::ProviderError);
    }
    let metadata = provider
        .metadata()
        .await
        .map_err(|e| unusable(provider, e))?;
    if let Some(iss) = &answer.iss
        && iss.as_str() != metadata.issuer().as_str()
    {
        return Err(rejected(provider, "the callback's iss is another issuer"));
    }
    let code = answer.code.ok_or(Refusal::ProviderError)?;
    let redirect = RedirectUrl::new(callback_url(state, &provider.config.id))
        .map_err(|_| Refusal::Misconfigured)?;
    let oidc = provider.client(metadata.clone(), redirect);
    let response = oidc
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| Refusal::Misconfigured)?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier))
        .request_async(provider.http())
        .await
        .map_err(|e| exchange_error(provider, e))?;
    let raw = response
        .id_token()
        .ok_or_else(|| rejected(provider, "the token response has no id_token"))?
        .to_string();
    let token = IdToken::from_str(&raw).map_err(|e| rejected(provider, &e.to_string()))?;
    let nonce = Nonce::new(flow.nonce);
    let (metadata, claims) = match provider.verify(&metadata, &token, &nonce) {
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            // A key we don't know: the provider may have rotated. Read its keys again, once.
            let fresh = provider
                .refresh_keys(&metadata)
                .await
                .map_err(|e| unusable(provider, e))?;
            let claims = provider.verify(&fresh, &token, &nonce);
            (fresh, claims)
        }
        other => (metadata, other),
    };
    let claims = claims.map_err(|e| rejected(provider, &chain(&e)))?;
    let mut person = said::person_from_token(provider, &claims);
    *who = Some(
        person
            .email
            .clone()
            .unwrap_or_else(|| person.subject.clone()),
    );
    if said::needs_userinfo(provider, &person) {
        said::merge_userinfo(provider, &metadata, response.access_token(), &mut person).await?;
        *who = Some(
            person
                .email
                .clone()
                .unwrap_or_else(|| person.subject.clone()),
        );
    }

    match admit::admit(pool, &provider.config, &person, client).await? {
        Outcome::LinkNeeded { token } => Ok(Finished::LinkNeeded { token }),
        Outcome::Account { user, role_changed } => {
            if role_changed {
                state.access_changed(user.id);
            }
            let user = SessionUser::from(user);
            signed_in(state, auth, client, &user, &provider.config.id)
                .await
                .map_err(|_| Refusal::Internal)?;
            Ok(Finished::SignedIn {
                return_to: flow.return_to,
            })
        }
    }
}

/// Starts our own session for `user` and records the sign-in.
pub async fn signed_in(
    state: &AppState,
    auth: &mut AuthSession,
    client: &ClientInfo,
    user: &SessionUser,
    provider: &str,
) -> Result<(), AppError> {
    gate::start_session(auth, user, client).await?;
    users::touch_login(state.pool(), user.id).await?;
    super::record(
        state.pool(),
        crate::ssr::audit::action::SSO_LOGIN,
        Some(user),
        user.username.as_str(),
        client,
        serde_json::json!({ "provider": provider }),
    )
    .await
}

fn unusable(provider: &Provider, err: ProviderError) -> Refusal {
    match err {
        ProviderError::Unreachable(why) => {
            tracing::warn!(provider = %provider.config.id, %why, "identity provider unreachable");
            Refusal::Unreachable
        }
        ProviderError::Misconfigured(why) => {
            tracing::error!(provider = %provider.config.id, %why, "identity provider misconfigured");
            Refusal::Misconfigured
        }
    }
}

fn rejected(provider: &Provider, why: &str) -> Refusal {
    tracing::warn!(provider = %provider.config.id, %why, "id token rejected");
    Refusal::Token
}

fn exchange_error<RE: std::error::Error + 'static>(
    provider: &Provider,
    err: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> Refusal {
    let why = chain(&err);
    match err {
        // The client itself is refused: the settings (id, secret, redirect URI) are wrong.
        RequestTokenError::ServerResponse(answer)
            if matches!(
                answer.error(),
                CoreErrorResponseType::InvalidClient | CoreErrorResponseType::UnauthorizedClient
            ) =>
        {
            tracing::error!(provider = %provider.config.id, %why, "the provider refused our client");
            Refusal::Misconfigured
        }
        RequestTokenError::ServerResponse(_) => {
            tracing::warn!(provider = %provider.config.id, %why, "the provider refused the code");
            Refusal::CodeRejected
        }
        RequestTokenError::Request(_) => {
            tracing::warn!(provider = %provider.config.id, %why, "token endpoint unreachable");
            Refusal::Unreachable
        }
        _ => {
            tracing::error!(provider = %provider.config.id, %why, "token response unreadable");
            Refusal::Misconfigured
        }
    }
}
