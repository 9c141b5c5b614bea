//! The OpenClaw configuration ClawLoops renders for each runtime (`openclaw.json`), and the
//! hash that tells whether a running container still matches it. (The driver only installs the
//! text: `clawloops_driver::files`.)
//!
//! OpenClaw reads it from `OPENCLAW_CONFIG_PATH` in a read-only mounted directory (checked with
//! OpenClaw 2026.9.6: it applies the file without writing it back), so the platform-owned keys
//! cannot drift.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// How the gateway decides who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayAuth {
    /// A bearer token of this runtime's own (never shared between runtimes).
    Token(String),
    /// The entry proxy vouches for the user in a header; only these proxies are believed.
    TrustedProxy {
        user_header: String,
        allow_users: Vec<String>,
        proxies: Vec<String>,
    },
}

/// The model provider the runtime's agent uses: ClawLoops' own gateway, with the user's key.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProvider {
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: String,
    /// The user's key for the model gateway.
    pub api_key: String,
    /// Model ids the user may use; the first is the default.
    pub models: Vec<String>,
}

/// Everything that goes into one runtime's `openclaw.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub port: u16,
    pub auth: GatewayAuth,
    /// Browser origins allowed to open the Control UI.
    pub allowed_origins: Vec<String>,
    pub provider: ModelProvider,
}

impl RuntimeConfig {
    /// The configuration document.
    pub fn to_json(&self) -> Value {
        let auth = match &self.auth {
            GatewayAuth::Token(token) => json!({ "mode": "token", "token": token }),
            GatewayAuth::TrustedProxy {
                user_header,
                allow_users,
                ..
            } => json!({
                "mode": "trusted-proxy",
                "trustedProxy": {
                    "userHeader": user_header,
                    "allowUsers": allow_users,
                    "deviceAutoApprove": {
                        "enabled": true,
                        "scopes": ["operator.read", "operator.write", "operator.approvals"],
                    },
                },
                // The runtime is its owner's: they administer it.
                "identityScopes": allow_users
                    .iter()
                    .map(|u| (u.clone(), json!(["operator.admin"])))
                    .collect::<serde_json::Map<String, Value>>(),
            }),
        };
        let proxies = match &self.auth {
            GatewayAuth::TrustedProxy { proxies, .. } => proxies.clone(),
            GatewayAuth::Token(_) => Vec::new(),
        };
        let models: Vec<Value> = self
            .provider
            .models
            .iter()
            .map(|id| {
                json!({
                    "id": id, "name": id, "reasoning": false, "input": ["text"],
                    "cost": { "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0 },
                    "contextWindow": 32000, "maxTokens": 4096,
                })
            })
            .collect();
        let primary = self
            .provider
            .models
            .first()
            .map(|m| format!("clawloops/{m}"));
        json!({
            "gateway": {
                "mode": "local",
                "port": self.port,
                "bind": "lan",
                "auth": auth,
                "trustedProxies": proxies,
                "controlUi": { "allowedOrigins": self.allowed_origins },
                "http": { "endpoints": { "chatCompletions": { "enabled": true } } },
            },
            "models": {
                "mode": "replace",
                "providers": {
                    "clawloops": {
                        "baseUrl": self.provider.base_url,
                        "apiKey": self.provider.api_key,
                        "api": "openai-completions",
                        "request": { "allowPrivateNetwork": true },
                        "timeoutSeconds": 300,
                        "models": models,
                    },
                },
            },
            "agents": {
                "defaults": {
                    "model": { "primary": primary },
                    "workspace": "/home/node/.openclaw/workspace",
                },
            },
        })
    }

    /// The file's bytes (pretty JSON, keys in a fixed order, so equal configs hash equal).
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A short hash over everything that, when changed, means the container must be replaced.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: &str) -> RuntimeConfig {
        RuntimeConfig {
            port: 18789,
            auth: GatewayAuth::Token(token.into()),
            allowed_origins: vec!["http://alice.localhost:8080".into()],
            provider: ModelProvider {
                base_url: "http://gateway:3000/v1".into(),
                api_key: "key-alice".into(),
                models: vec!["fake-model".into()],
            },
        }
    }

    #[test]
    fn renders_a_lan_gateway_with_its_own_token_and_our_provider() {
        let doc = config("tok-1").to_json();
        assert_eq!(doc["gateway"]["bind"], "lan");
        assert_eq!(doc["gateway"]["mode"], "local");
        assert_eq!(doc["gateway"]["auth"]["token"], "tok-1");
        assert_eq!(
            doc["models"]["providers"]["clawloops"]["apiKey"],
            "key-alice"
        );
        assert_eq!(
            doc["agents"]["defaults"]["model"]["primary"],
            "clawloops/fake-model"
        );
        assert_eq!(
            doc["agents"]["defaults"]["workspace"], "/home/node/.openclaw/workspace",
            "the workspace lives in the state volume"
        );
    }

    #[test]
    fn trusted_proxy_mode_names_the_user_and_the_proxies() {
        let mut c = config("unused");
        c.auth = GatewayAuth::TrustedProxy {
            user_header: "x-forwarded-user".into(),
            allow_users: vec!["alice".into()],
            proxies: vec!["172.30.0.2".into()],
        };
        let doc = c.to_json();
        assert_eq!(doc["gateway"]["auth"]["mode"], "trusted-proxy");
        assert_eq!(
            doc["gateway"]["auth"]["trustedProxy"]["allowUsers"][0],
            "alice"
        );
        assert_eq!(doc["gateway"]["trustedProxies"][0], "172.30.0.2");
        assert_eq!(
            doc["gateway"]["auth"]["identityScopes"]["alice"][0],
            "operator.admin"
        );
        assert!(
            doc["gateway"]["auth"].get("token").is_none(),
            "no token to leak in trusted-proxy mode"
        );
    }

    #[test]
    fn equal_configs_render_and_hash_equal_and_any_change_shows() {
        assert_eq!(config("a").render(), config("a").render());
        let a = fingerprint(&[&config("a").render(), "image:1"]);
        assert_eq!(a, fingerprint(&[&config("a").render(), "image:1"]));
        assert_ne!(a, fingerprint(&[&config("b").render(), "image:1"]));
        assert_ne!(a, fingerprint(&[&config("a").render(), "image:2"]));
        assert_eq!(a.len(), 16);
    }
}
