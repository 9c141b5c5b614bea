//! The OpenClaw configuration ClawLoops renders for each runtime (`openclaw.json`), and the
//! hash that tells whether a running container still matches it.
//!
//! OpenClaw reads it from `OPENCLAW_CONFIG_PATH` in a read-only mounted directory (checked with
//! OpenClaw 2026.9.6: it applies the file without writing it back), so the platform-owned keys
//! cannot drift.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `openclaw.json` into `dir` atomically (temporary file, fsync, rename), readable by the
/// runtime's user through the read-only bind mount. `root` (the parent of every runtime's
/// directory) can be traversed but not listed, so no runtime learns another's directory name.
///
/// With `owner` (the runtime's `uid:gid`) the directory (0700) and the file (0600) belong to the
/// runtime's user and nobody else on the host can read the keys inside. Changing owners needs
/// root; a manager that isn't falls back to a file everyone on the host may read, and says so.
pub fn write_atomically(
    root: &std::path::Path,
    dir: &std::path::Path,
    text: &str,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let tmp = dir.join(".openclaw.json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    let owned = match owner {
        Some((uid, gid)) => match std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
            .and_then(|()| std::os::unix::fs::chown(dir, Some(uid), Some(gid)))
        {
            Ok(()) => true,
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(dir = %dir.display(), "cannot give the runtime's configuration to its user (the runtime manager is not root): it stays readable by every user on this host");
                false
            }
            Err(err) => return Err(err),
        },
        None => false,
    };
    let (dir_mode, file_mode) = if owned {
        (0o700, 0o600)
    } else {
        (0o755, 0o644)
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file_mode))?;
    std::fs::rename(&tmp, dir.join("openclaw.json"))
}

/// The numeric `uid:gid` of a container user setting, when it is one.
pub fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys in a runtime's configuration are for its user alone: owner-only modes and the
    /// runtime's uid:gid (as root); without the right to change owners, the old readable modes.
    #[test]
    fn the_configuration_belongs_to_the_runtimes_user() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("clawloops-rt-alice");
        write_atomically(root.path(), &dir, "{}", numeric_owner("1000:1001")).expect("written");
        let file = std::fs::metadata(dir.join("openclaw.json")).expect("file");
        let folder = std::fs::metadata(&dir).expect("dir");
        let root_mode = std::fs::metadata(root.path())
            .expect("root")
            .permissions()
            .mode();
        assert_eq!(
            root_mode & 0o777,
            0o711,
            "the root is traversable, not listable"
        );
        // Only root may give files away.
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_root {
            assert_eq!((file.uid(), file.gid()), (1000, 1001));
            assert_eq!((folder.uid(), folder.gid()), (1000, 1001));
            assert_eq!(file.permissions().mode() & 0o777, 0o600);
            assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        } else {
            assert_eq!(file.permissions().mode() & 0o777, 0o644);
        }
        assert_eq!(numeric_owner("node"), None);
        assert_eq!(numeric_owner("65534:65534"), Some((65534, 65534)));
    }

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
