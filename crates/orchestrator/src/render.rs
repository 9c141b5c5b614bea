//! From a binding to what the driver needs: the rendered `openclaw.json` (which the driver writes
//! where the container mounts it) and the [`RuntimeSpec`].

use crate::openclaw::{GatewayAuth, ModelProvider, RuntimeConfig, fingerprint};
use crate::repo::RuntimeRow;
use crate::settings::RuntimeSettings;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use clawloops_driver::{Limits, RuntimeSpec};

/// A fresh gateway token for one runtime (256 random bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // Without the OS generator there is no safe token; an empty one would be refused by the
    // gateway rather than shared.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The browser address of a user's workspace, when the entry layer routes one: `{user}` in the
/// template becomes the user's workspace name (the runtime id without `rt-`, DNS-safe).
pub fn browser_url(settings: &RuntimeSettings, username: &str) -> Option<String> {
    settings
        .browser_url_template
        .as_ref()
        .map(|t| t.replace("{user}", &crate::Orchestrator::workspace_name(username)))
}

/// The header the entry proxy puts the user's name in (OpenClaw's trusted-proxy mode).
pub const USER_HEADER: &str = "x-forwarded-user";

/// What the runtime is given to reach models: its gateway key and the models its user may use.
#[derive(Debug, Clone, Default)]
pub struct ModelAccess {
    pub api_key: String,
    /// Aliases, the default first.
    pub models: Vec<String>,
}

/// The rendered configuration and the spec for a binding.
pub struct Rendered {
    pub spec: RuntimeSpec,
    pub config: String,
}

/// Renders a binding's configuration. With an entry proxy (`entry_ip`, its address on the
/// runtime's network) the runtime believes the user's name from that address only
/// (trusted-proxy mode); without one it takes its own bearer token.
pub fn render(
    settings: &RuntimeSettings,
    instance: &str,
    binding: &RuntimeRow,
    entry: &clawloops_driver::Prepared,
    access: &ModelAccess,
) -> Rendered {
    let entry_ip = entry.entry_ip;
    let origin = browser_url(settings, &binding.username)
        .and_then(|u| u.split('/').take(3).collect::<Vec<_>>().join("/").into());
    let auth = match entry_ip {
        Some(ip) => GatewayAuth::TrustedProxy {
            user_header: USER_HEADER.into(),
            allow_users: vec![binding.username.clone()],
            proxies: if entry.trusted_proxies.is_empty() {
                vec![ip.to_string()]
            } else {
                entry.trusted_proxies.clone()
            },
        },
        None => GatewayAuth::Token(binding.gateway_token.clone()),
    };
    let config = RuntimeConfig {
        port: settings.profile.port,
        auth,
        allowed_origins: origin.into_iter().collect(),
        provider: ModelProvider {
            // Runtimes reach nothing but the entry proxy: with one, the gateway is reached
            // through its runtime entry point (`/v1/` only), at its address on the runtime's
            // network.
            base_url: match entry_ip {
                Some(ip) => format!(
                    "http://{}/v1",
                    std::net::SocketAddr::new(ip, clawloops_driver::firewall::ENTRY_RUNTIME_PORT)
                ),
                None => settings.model_base_url.clone(),
            },
            api_key: access.api_key.clone(),
            models: if access.models.is_empty() {
                settings.models.clone()
            } else {
                access.models.clone()
            },
        },
    }
    .render();
    let limits = Limits {
        memory_mb: binding
            .memory_mb
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(settings.limits.memory_mb),
        cpus: binding.cpus.unwrap_or(settings.limits.cpus),
        pids: binding
            .pids
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(settings.limits.pids),
        // Not part of the hash: the limit is the volume's (or measured), not the container's.
        disk_mb: crate::disk::limit_mb(settings, binding),
    };
    let limits_text = format!("{}/{}/{}", limits.memory_mb, limits.cpus, limits.pids);
    let config_hash = fingerprint(&[
        &config,
        &binding.image,
        &limits_text,
        &settings.profile_name,
        settings.egress.as_str(),
    ]);
    Rendered {
        spec: RuntimeSpec {
            runtime_id: binding.runtime_id.clone(),
            owner: binding.user_id.to_string(),
            instance: instance.to_owned(),
            image: binding.image.clone(),
            profile: settings.profile.clone(),
            limits,
            config_hash,
            egress: settings.egress,
            placement: binding.node.clone(),
        },
        config,
    }
}
