//! One provider: its discovery document and signing keys, read when first needed and kept for
//! `metadata_max_age`; the keys are read again at once when a token names a key we don't have
//! (the provider rotated), so a new key works from its first token and a removed key stops
//! working once the cached set ages out.

use super::ProviderConfig;
use openidconnect::core::{
    CoreClient, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, ClientId, ClientSecret, IdTokenVerifier, IssuerUrl, JsonWebKey,
    JsonWebKeySet, RedirectUrl,
};
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Claims beyond the standard ones (groups, under whatever name the provider uses).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExtraClaims(pub serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for ExtraClaims {}

/// An id token with [`ExtraClaims`].
pub type IdToken = openidconnect::IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
/// Its verified claims.
pub type IdTokenClaims = openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>;
/// Userinfo claims with [`ExtraClaims`].
pub type UserInfoClaims = openidconnect::UserInfoClaims<ExtraClaims, CoreGenderClaim>;

/// Keys are read again for an unknown key id at most this often (a stream of made-up key ids
/// costs the provider one request a second, not one each).
const MIN_KEY_REFRESH: Duration = Duration::from_secs(1);
/// The provider must answer within this.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the provider could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// No answer (down, refused, timed out, 5xx).
    Unreachable(String),
    /// An answer that doesn't fit the settings (wrong issuer, not OpenID Connect, bad client).
    Misconfigured(String),
}

struct Cached {
    metadata: CoreProviderMetadata,
    fetched_at: Instant,
    /// When the keys were last read again for an unknown key id.
    keys_refreshed_at: Option<Instant>,
}

/// A configured provider and what was learnt from it.
pub struct Provider {
    pub config: ProviderConfig,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// One discovery or key fetch at a time (the others wait for its result).
    fetching: Mutex<()>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Self {
        let http = reqwest::Client::builder()
            // Redirects are not followed (SSRF): the provider's endpoints answer directly.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(HTTP_TIMEOUT)
            .build()
            .unwrap_or_default();
        Provider {
            config,
            http,
            cache: RwLock::new(None),
            fetching: Mutex::new(()),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The discovery document with its keys: cached, or read now.
    pub async fn metadata(&self) -> Result<CoreProviderMetadata, ProviderError> {
        if let Some(fresh) = self.fresh().await {
            return Ok(fresh);
        }
        let _one = self.fetching.lock().await;
        if let Some(fresh) = self.fresh().await {
            return Ok(fresh);
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| ProviderError::Misconfigured(format!("issuer URL: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(discovery_error)?;
        *self.cache.write().await = Some(Cached {
            metadata: metadata.clone(),
            fetched_at: Instant::now(),
            keys_refreshed_at: None,
        });
        Ok(metadata)
    }

    async fn fresh(&self) -> Option<CoreProviderMetadata> {
        let cache = self.cache.read().await;
        cache
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < self.config.metadata_max_age)
            .map(|c| c.metadata.clone())
    }

    /// Reads the keys again (the provider rotated): unless another request just did.
    pub async fn refresh_keys(
        &self,
        seen: &CoreProviderMetadata,
    ) -> Result<CoreProviderMetadata, ProviderError> {
        let _one = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if let Some(c) = cache.as_ref() {
                let changed = c.metadata.jwks().keys().len() != seen.jwks().keys().len()
                    || c.metadata
                        .jwks()
                        .keys()
                        .iter()
                        .zip(seen.jwks().keys())
                        .any(|(a, b)| a.key_id() != b.key_id());
                let recently = c
                    .keys_refreshed_at
                    .is_some_and(|at| at.elapsed() < MIN_KEY_REFRESH);
                if changed || recently {
                    return Ok(c.metadata.clone());
                }
            }
        }
        let keys = JsonWebKeySet::<CoreJsonWebKey>::fetch_async(seen.jwks_uri(), &self.http)
            .await
            .map_err(discovery_error)?;
        let metadata = seen.clone().set_jwks(keys);
        let mut cache = self.cache.write().await;
        // The discovery document keeps its age; only the keys are new.
        let fetched_at = cache.as_ref().map_or_else(Instant::now, |c| c.fetched_at);
        *cache = Some(Cached {
            metadata: metadata.clone(),
            fetched_at,
            keys_refreshed_at: Some(Instant::now()),
        });
        Ok(metadata)
    }

    /// The OpenID client for `metadata`, returning to `redirect`.
    pub fn client(
        &self,
        metadata: CoreProviderMetadata,
        redirect: RedirectUrl,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect)
    }

    /// Checks an id token: signature (the provider's keys, never `none`), issuer, audience,
    /// expiry and issue time (with the allowed clock skew) and nonce.
    pub fn verify(
        &self,
        metadata: &CoreProviderMetadata,
        token: &IdToken,
        nonce: &openidconnect::Nonce,
    ) -> Result<IdTokenClaims, openidconnect::ClaimsVerificationError> {
        let skew = chrono::Duration::from_std(self.config.clock_skew).unwrap_or_default();
        let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = match &self.config.client_secret {
            Some(secret) => IdTokenVerifier::new_confidential_client(
                ClientId::new(self.config.client_id.clone()),
                ClientSecret::new(secret.expose_secret().to_owned()),
                metadata.issuer().clone(),
                metadata.jwks().clone(),
            ),
            None => IdTokenVerifier::new_public_client(
                ClientId::new(self.config.client_id.clone()),
                metadata.issuer().clone(),
                metadata.jwks().clone(),
            ),
        };
        let allowed = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect::<Vec<_>>();
        let verifier = verifier
            .set_allowed_algs(allowed)
            // Expiry is checked against a clock `skew` behind ours: a token the provider
            // thinks valid for a few seconds more is not refused for clocks apart.
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err(format!("issued in the future ({iat})"))
                } else {
                    Ok(())
                }
            });
        token.claims(&verifier, nonce).cloned()
    }
}

fn discovery_error<E: std::error::Error>(err: openidconnect::DiscoveryError<E>) -> ProviderError {
    use openidconnect::DiscoveryError as D;
    match err {
        D::Request(e) => ProviderError::Unreachable(chain(&e)),
        D::Response(status, _, message) if status.is_server_error() => {
            ProviderError::Unreachable(format!("{status}: {message}"))
        }
        D::Response(status, _, message) => {
            ProviderError::Misconfigured(format!("{status}: {message}"))
        }
        other => ProviderError::Misconfigured(chain(&other)),
    }
}

/// An error with its causes, one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
