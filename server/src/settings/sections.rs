//! The settings of each part, checked: the model gateway, runtimes, the entry layer and the
//! runtime manager.

use super::validate::parse_net;
use super::*;

impl RawSettings {
    pub(super) fn gateway_settings(&self) -> Result<crate::gateway::GatewayConfig, SettingsError> {
        use std::time::Duration;
        if !(1024..=1024 * 1024 * 1024).contains(&self.gateway_max_body_bytes) {
            return Err(SettingsError::new(
                "gateway_max_body_bytes",
                "must be between 1024 and 1073741824",
            ));
        }
        for (name, value) in [
            (
                "gateway_connect_timeout_secs",
                self.gateway_connect_timeout_secs,
            ),
            (
                "gateway_first_byte_timeout_secs",
                self.gateway_first_byte_timeout_secs,
            ),
            ("gateway_idle_timeout_secs", self.gateway_idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(SettingsError::new(
                    name,
                    "must be between 1 and 3600 seconds",
                ));
            }
        }
        if !(1..=256).contains(&self.gateway_key_lookups) {
            return Err(SettingsError::new(
                "gateway_key_lookups",
                "must be between 1 and 256",
            ));
        }
        if !(1..=100_000).contains(&self.gateway_key_concurrency) {
            return Err(SettingsError::new(
                "gateway_key_concurrency",
                "must be between 1 and 100000",
            ));
        }
        Ok(crate::gateway::GatewayConfig {
            max_body_bytes: self.gateway_max_body_bytes,
            key_lookups: self.gateway_key_lookups,
            key_concurrency: self.gateway_key_concurrency,
            connect_timeout: Duration::from_secs(self.gateway_connect_timeout_secs),
            first_byte_timeout: Duration::from_secs(self.gateway_first_byte_timeout_secs),
            idle_timeout: Duration::from_secs(self.gateway_idle_timeout_secs),
        })
    }

    pub(super) fn runtime_settings(
        &self,
        public_url: &url::Url,
    ) -> Result<RuntimeSettings, SettingsError> {
        let range = |name: &str, ok: bool, rule: &str| {
            if ok {
                Ok(())
            } else {
                Err(SettingsError::new(name, rule.to_owned()))
            }
        };
        range(
            "runtime_memory_mb",
            (128..=65536).contains(&self.runtime_memory_mb),
            "must be between 128 and 65536",
        )?;
        range(
            "runtime_cpus",
            (0.1..=64.0).contains(&self.runtime_cpus),
            "must be between 0.1 and 64",
        )?;
        range(
            "runtime_pids",
            (32..=65536).contains(&self.runtime_pids),
            "must be between 32 and 65536",
        )?;
        range(
            "runtime_disk_mb",
            self.runtime_disk_mb == 0
                || (64..=clawloops_driver::spec::MAX_DISK_MB).contains(&self.runtime_disk_mb),
            "must be 0 (no limit) or between 64 and 16777216 (16 TiB)",
        )?;
        range(
            "runtime_disk_check_secs",
            (5..=86400).contains(&self.runtime_disk_check_secs),
            "must be between 5 and 86400",
        )?;
        range(
            "runtime_concurrency",
            (1..=64).contains(&self.runtime_concurrency),
            "must be between 1 and 64",
        )?;
        range(
            "runtime_idle_stop_minutes",
            self.runtime_idle_stop_minutes <= 43200,
            "must be between 0 (never) and 43200 (30 days)",
        )?;
        range(
            "runtime_max_lifetime_hours",
            self.runtime_max_lifetime_hours
                .is_none_or(|h| (1..=8760).contains(&h)),
            "must be between 1 and 8760",
        )?;
        range(
            "runtime_ready_timeout_secs",
            (5..=3600).contains(&self.runtime_ready_timeout_secs),
            "must be between 5 and 3600",
        )?;
        if let Some(template) = &self.runtime_browser_url
            && (!template.contains("{user}")
                || url::Url::parse(&template.replace("{user}", "u")).is_err())
        {
            return Err(SettingsError::new(
                "runtime_browser_url",
                format!(
                    "`{template}` must be a URL containing {{user}}, like http://{{user}}.claw.example.com/"
                ),
            ));
        }
        let image = self
            .runtime_image
            .clone()
            .unwrap_or_else(|| match self.runtime_profile {
                RuntimeProfile::Openclaw => OPENCLAW_IMAGE.to_owned(),
                RuntimeProfile::Stub => {
                    format!("clawloops/runtime-stub:{}", env!("CARGO_PKG_VERSION"))
                }
            });
        let model_gateway_url = self
            .model_gateway_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}v1"));
        let manager = self.manager_settings()?;
        let network_pool = self
            .runtime_network_pool
            .trim()
            .parse::<ipnet::Ipv4Net>()
            .ok()
            .filter(|net| net.prefix_len() <= 26)
            .ok_or_else(|| {
                SettingsError::new(
                    "runtime_network_pool",
                    format!(
                        "`{}` must be an IPv4 network of /26 or wider, like 10.213.0.0/16",
                        self.runtime_network_pool
                    ),
                )
            })?;
        Ok(RuntimeSettings {
            manager,
            engine: self.engine()?,
            network_pool,
            egress: self.runtime_egress,
            firewall: self.runtime_firewall,
            profile: self.runtime_profile,
            image,
            memory_mb: self.runtime_memory_mb,
            cpus: self.runtime_cpus,
            pids: self.runtime_pids,
            disk_mb: (self.runtime_disk_mb > 0).then_some(self.runtime_disk_mb),
            disk_check_secs: self.runtime_disk_check_secs,
            concurrency: self.runtime_concurrency,
            ready_timeout_secs: self.runtime_ready_timeout_secs,
            browser_url: self.runtime_browser_url.clone(),
            model_gateway_url,
            idle_stop_minutes: self.runtime_idle_stop_minutes,
            max_lifetime_hours: self.runtime_max_lifetime_hours,
        })
    }
}

/// A DNS name as a setting: lower-case labels of letters, digits and dashes.
pub(super) fn dns_name(setting: &str, text: &str) -> Result<String, SettingsError> {
    let name = text.trim().trim_start_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 200 || !name.split('.').all(label_ok) {
        return Err(SettingsError::new(
            setting,
            format!("`{text}` is not a DNS name like claw.example.com"),
        ));
    }
    Ok(name)
}

/// Whether a secret is still an example file's placeholder ("CHANGE ME: …", "changeme").
pub(super) fn is_placeholder(text: &str) -> bool {
    let squeezed: String = text
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    squeezed.contains("changeme")
}

/// Whether `host` is `domain` or below it.
pub(super) fn within(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

impl RawSettings {
    pub(super) fn entry_settings(
        &self,
        public_url: &url::Url,
    ) -> Result<EntrySettings, SettingsError> {
        let public_host = public_url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let workspace_domain = self
            .workspace_domain
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| dns_name("workspace_domain", d))
            .transpose()?;
        let cookie_domain = match (&self.cookie_domain, &workspace_domain) {
            (Some(text), _) => {
                let domain = dns_name("cookie_domain", text)?;
                if !within(&public_host, &domain) {
                    return Err(SettingsError::new(
                        "cookie_domain",
                        format!("must be the public host {public_host} or a parent of it"),
                    ));
                }
                Some(domain)
            }
            (None, Some(ws)) if within(&public_host, ws) => Some(ws.clone()),
            (None, Some(ws)) if within(ws, &public_host) => Some(public_host.clone()),
            // A site of its own: the session cookie stays on the public host.
            (None, Some(_) | None) => None,
        };
        // Workspaces the session cookie does not reach are entered by a handoff.
        let handoff = workspace_domain.as_ref().is_some_and(|ws| {
            cookie_domain
                .as_ref()
                .is_none_or(|cookie| !within(ws, cookie))
        });
        if !(1..=256).contains(&self.entry_session_lookups) {
            return Err(SettingsError::new(
                "entry_session_lookups",
                "must be between 1 and 256",
            ));
        }
        Ok(EntrySettings {
            session_lookups: self.entry_session_lookups,
            workspace_domain,
            cookie_domain,
            handoff,
            proxy_container: self
                .entry_proxy_container
                .clone()
                .filter(|c| !c.trim().is_empty()),
        })
    }

    pub(super) fn manager_settings(&self) -> Result<ManagerSettings, SettingsError> {
        let min = clawloops_driver::remote::MIN_SECRET_LEN;
        if let Some(secret) = &self.runtime_manager_secret
            && is_placeholder(secret.expose_secret())
        {
            return Err(SettingsError::new(
                "runtime_manager_secret",
                "still holds the example's placeholder (CHANGE ME): set a real secret \
                 (`openssl rand -hex 32`, the same on both sides)",
            ));
        }
        if let Some(secret) = &self.runtime_manager_secret
            && secret.expose_secret().trim().len() < min
        {
            return Err(SettingsError::new(
                "runtime_manager_secret",
                format!("must be at least {min} characters (try `openssl rand -hex 32`)"),
            ));
        }
        let url = match &self.runtime_manager_url {
            None => None,
            Some(text) => {
                let url = url::Url::parse(text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        SettingsError::new(
                            "runtime_manager_url",
                            format!("`{text}` must be an http:// or https:// address like http://10.0.0.5:3001/"),
                        )
                    })?;
                if self.runtime_manager_secret.is_none() {
                    return Err(SettingsError::new(
                        "runtime_manager_secret",
                        "is required when runtime_manager_url is set (the runtime manager refuses calls without it)",
                    ));
                }
                Some(url)
            }
        };
        let allowed_clients = self
            .runtime_manager_allowed_clients
            .iter()
            .map(|text| parse_net("runtime_manager_allowed_clients", text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ManagerSettings {
            url,
            secret: self.runtime_manager_secret.clone(),
            listen: self.runtime_manager_listen,
            allowed_clients,
        })
    }
}
