//! Single sign-on providers: `[[sso_providers]]` tables in the settings file (or
//! `CLAWLOOPS_SSO_PROVIDERS` as an inline array), each checked before anything starts.

use super::validate::read_secret_file;
use super::*;
use app::ssr::identity::sso::{Admission, ProviderConfig};
use std::time::Duration;

/// One provider as written in the settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    #[serde(default, skip_serializing)]
    client_secret: Option<SecretString>,
    /// A file holding the client secret (Docker and compose secrets).
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    admission: Admission,
    #[serde(default)]
    allowed_domains: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default = "default_groups_claim")]
    groups_claim: String,
    #[serde(default = "default_username_claim")]
    username_claim: String,
    #[serde(default = "default_metadata_max_age")]
    metadata_max_age_secs: u64,
    #[serde(default = "default_clock_skew")]
    clock_skew_secs: u64,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_metadata_max_age() -> u64 {
    300
}
fn default_clock_skew() -> u64 {
    60
}

/// Checks every provider; the first problem names the provider and the field.
pub(super) fn providers(raw: Vec<RawProvider>) -> Result<Vec<ProviderConfig>, SettingsError> {
    let mut seen = std::collections::BTreeSet::new();
    raw.into_iter()
        .map(|p| {
            let config = provider(p)?;
            if !seen.insert(config.id.clone()) {
                return Err(SettingsError::new(
                    "sso_providers",
                    format!("two providers have the id `{}`", config.id),
                ));
            }
            Ok(config)
        })
        .collect()
}

fn provider(raw: RawProvider) -> Result<ProviderConfig, SettingsError> {
    let id = raw.id.trim().to_owned();
    let valid_id = (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let field = |name: &str| format!("sso_providers.{}.{name}", if valid_id { &id } else { "?" });
    if !valid_id {
        return Err(SettingsError::new(
            "sso_providers.id",
            format!(
                "`{id}` must be 1 to 32 lower-case letters, digits or dashes (it appears in URLs)"
            ),
        ));
    }
    if raw.name.trim().is_empty() || raw.name.chars().count() > 60 {
        return Err(SettingsError::new(
            &field("name"),
            "must be 1 to 60 characters (the button says \"Sign in with <name>\")",
        ));
    }
    let issuer = url::Url::parse(raw.issuer.trim())
        .map_err(|e| SettingsError::new(&field("issuer"), format!("is not a URL: {e}")))?;
    let loopback = issuer.host_str().is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || h == "[::1]"
    });
    if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
        return Err(SettingsError::new(
            &field("issuer"),
            "must be an https URL (plain http only for a provider on this machine's loopback)",
        ));
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(SettingsError::new(
            &field("issuer"),
            "must not have a query or fragment",
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(SettingsError::new(&field("client_id"), "must not be empty"));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::new(
                &field("client_secret_file"),
                "set either client_secret or client_secret_file, not both",
            ));
        }
        (Some(secret), None) if secret.expose_secret().is_empty() => {
            return Err(SettingsError::new(
                &field("client_secret"),
                "is empty: leave it out for a public client",
            ));
        }
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => Some(SecretString::from(read_secret_file(
            &field("client_secret_file"),
            &path,
        )?)),
        (None, None) => None,
    };
    if raw.admission == Admission::Open
        && raw.allowed_domains.is_empty()
        && raw.allowed_groups.is_empty()
    {
        return Err(SettingsError::new(
            &field("admission"),
            "`open` needs allowed_domains or allowed_groups (else anyone with an account at the \
             provider gets one here); use `invited` to admit only invited people",
        ));
    }
    let domains = raw
        .allowed_domains
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .collect::<Vec<_>>();
    if let Some(bad) = domains
        .iter()
        .find(|d| d.is_empty() || !d.contains('.') || d.contains(['@', '/', ' ']))
    {
        return Err(SettingsError::new(
            &field("allowed_domains"),
            format!("`{bad}` is not a domain like example.com"),
        ));
    }
    for (name, value) in [
        ("groups_claim", &raw.groups_claim),
        ("username_claim", &raw.username_claim),
    ] {
        if value.trim().is_empty() {
            return Err(SettingsError::new(&field(name), "must not be empty"));
        }
    }
    if !(1..=86_400).contains(&raw.metadata_max_age_secs) {
        return Err(SettingsError::new(
            &field("metadata_max_age_secs"),
            "must be between 1 and 86400 seconds",
        ));
    }
    if raw.clock_skew_secs > 600 {
        return Err(SettingsError::new(
            &field("clock_skew_secs"),
            "must be at most 600 seconds",
        ));
    }
    let mut scopes = raw.scopes;
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    Ok(ProviderConfig {
        id,
        name: raw.name.trim().to_owned(),
        // As written: discovery compares it with the provider's own, character for character.
        issuer: raw.issuer.trim().to_owned(),
        client_id: raw.client_id.trim().to_owned(),
        client_secret,
        scopes,
        admission: raw.admission,
        allowed_domains: domains,
        allowed_groups: raw.allowed_groups,
        admin_groups: raw.admin_groups,
        groups_claim: raw.groups_claim,
        username_claim: raw.username_claim,
        metadata_max_age: Duration::from_secs(raw.metadata_max_age_secs),
        clock_skew: Duration::from_secs(raw.clock_skew_secs),
    })
}
