//! What the provider says about the person: the verified id token's claims, with what they
//! lack read from the userinfo endpoint (for the same subject only).

use super::Provider;
use super::admit::Person;
use super::provider::{ExtraClaims, IdTokenClaims, UserInfoClaims, chain};
use crate::api::sso::Refusal;
use openidconnect::core::{CoreGenderClaim, CoreProviderMetadata};
use openidconnect::{AccessToken, RedirectUrl};

pub(super) fn person_from_token(provider: &Provider, claims: &IdTokenClaims) -> Person {
    let config = &provider.config;
    let extra = &claims.additional_claims().0;
    Person {
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        username: match config.username_claim.as_str() {
            "preferred_username" => claims.preferred_username().map(|u| u.to_string()),
            "email" => claims.email().map(|e| e.to_string()),
            other => extra.get(other).and_then(|v| v.as_str()).map(str::to_owned),
        },
        groups: groups(extra.get(&config.groups_claim)),
    }
}

/// A groups claim: a list of names (or a single name).
fn groups(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The userinfo endpoint is asked when the id token lacks what the rules need.
pub(super) fn needs_userinfo(provider: &Provider, person: &Person) -> bool {
    let c = &provider.config;
    let wants_groups = !c.allowed_groups.is_empty() || !c.admin_groups.is_empty();
    person.email.is_none()
        || person.username.is_none()
        || (wants_groups && person.groups.is_empty())
}

/// Fills what the id token lacked from userinfo (for the same subject only).
pub(super) async fn merge_userinfo(
    provider: &Provider,
    metadata: &CoreProviderMetadata,
    access_token: &AccessToken,
    person: &mut Person,
) -> Result<(), Refusal> {
    if metadata.userinfo_endpoint().is_none() {
        return Ok(());
    }
    let redirect =
        RedirectUrl::new("http://127.0.0.1/unused".to_owned()).map_err(|_| Refusal::Internal)?;
    let client = provider.client(metadata.clone(), redirect);
    let subject = openidconnect::SubjectIdentifier::new(person.subject.clone());
    let info: UserInfoClaims = client
        .user_info(access_token.clone(), Some(subject))
        .map_err(|_| Refusal::Misconfigured)?
        .request_async::<ExtraClaims, _, CoreGenderClaim>(provider.http())
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.config.id, error = %chain(&e), "userinfo failed");
            match e {
                openidconnect::UserInfoError::Request(_) => Refusal::Unreachable,
                openidconnect::UserInfoError::ClaimsVerification(_) => Refusal::Token,
                _ => Refusal::Misconfigured,
            }
        })?;
    let extra = &info.additional_claims().0;
    if person.email.is_none() {
        person.email = info.email().map(|e| e.to_string());
        person.email_verified = info.email_verified().unwrap_or(false);
    }
    if person.username.is_none() {
        person.username = match provider.config.username_claim.as_str() {
            "preferred_username" => info.preferred_username().map(|u| u.to_string()),
            "email" => info.email().map(|e| e.to_string()),
            other => extra.get(other).and_then(|v| v.as_str()).map(str::to_owned),
        };
    }
    if person.groups.is_empty() {
        person.groups = groups(extra.get(&provider.config.groups_claim));
    }
    Ok(())
}
