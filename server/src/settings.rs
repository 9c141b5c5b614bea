//! Typed settings, loaded once at start from an optional TOML file and `CLAWLOOPS_*`
//! environment variables (which win), then validated. A bad value stops the program with a
//! message naming the setting and where it came from.

use clawloops_driver::firewall::{Egress, FirewallMode};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Prefix of every environment variable the settings read.
pub const ENV_PREFIX: &str = "CLAWLOOPS_";

/// Every setting name; environment variables outside this list are ignored.
pub const KEYS: &[&str] = &[
    "listen_addr",
    "public_url",
    "data_dir",
    "database_url",
    "database_password_file",
    "database_max_connections",
    "postgres_bin_dir",
    "site_root",
    "log_level",
    "log_format",
    "session_idle_hours",
    "session_absolute_hours",
    "cookie_secure",
    "trusted_proxies",
    "initial_admin_password_file",
    "runtime_profile",
    "runtime_image",
    "runtime_memory_mb",
    "runtime_cpus",
    "runtime_pids",
    "runtime_disk_mb",
    "runtime_disk_check_secs",
    "runtime_concurrency",
    "runtime_ready_timeout_secs",
    "runtime_browser_url",
    "model_gateway_url",
    "runtime_network_pool",
    "runtime_egress",
    "runtime_firewall",
    "runtime_manager_url",
    "runtime_manager_secret",
    "runtime_manager_secret_file",
    "runtime_manager_listen",
    "runtime_manager_allowed_clients",
    "workspace_domain",
    "cookie_domain",
    "entry_proxy_container",
    "entry_session_lookups",
    "runtime_idle_stop_minutes",
    "runtime_max_lifetime_hours",
    "secret_key_file",
    "gateway_max_body_bytes",
    "gateway_connect_timeout_secs",
    "gateway_first_byte_timeout_secs",
    "gateway_idle_timeout_secs",
    "gateway_key_lookups",
    "gateway_key_concurrency",
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The validated settings of one `clawloops` process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub listen_addr: SocketAddr,
    /// The address people use to reach ClawLoops (scheme, host, optional port).
    pub public_url: url::Url,
    /// Where ClawLoops keeps its data (the embedded database among it).
    pub data_dir: PathBuf,
    /// An external PostgreSQL; when absent, a private cluster under `data_dir` is used.
    pub database_url: Option<SecretString>,
    /// Upper bound of the database connection pool.
    pub database_max_connections: u32,
    /// Where `initdb`/`pg_ctl` live, when not in the usual Debian places.
    pub postgres_bin_dir: Option<PathBuf>,
    /// The built site (`pkg/` with WASM, JS, CSS) produced by cargo-leptos.
    pub site_root: PathBuf,
    /// A `tracing` filter, e.g. `info` or `clawloops_server=debug,info`.
    pub log_level: String,
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// A session unused this many hours ends.
    pub session_idle_hours: u32,
    /// A session ends this many hours after sign-in, however busy.
    pub session_absolute_hours: u32,
    /// Whether the session cookie is `Secure`: always when `public_url` is https.
    pub cookie_secure: bool,
    /// Proxies whose `X-Forwarded-For` is believed (Traefik); nobody's by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A file holding the first admin's password; without it a one-time password is logged.
    pub initial_admin_password_file: Option<PathBuf>,
    /// How runtimes are run.
    pub runtime: RuntimeSettings,
    /// The entry layer: workspace hosts behind Traefik.
    pub entry: EntrySettings,
    /// The installation's key for secrets at rest (made on first start when missing).
    pub secret_key_file: PathBuf,
    /// The model gateway's body limit and upstream timeouts.
    pub gateway: crate::gateway::GatewayConfig,
}

/// The entry layer (Traefik in front, forward-auth on workspace hosts).
#[derive(Debug, Clone, Default)]
pub struct EntrySettings {
    /// Workspaces are served at `<name>.<workspace_domain>`; unset = no workspace routing.
    pub workspace_domain: Option<String>,
    /// The session cookie's `Domain`: the public host's parent; covers every workspace host
    /// unless workspaces are a site of their own (`handoff`).
    pub cookie_domain: Option<String>,
    /// Workspaces are a site of their own (their domain is not under the session cookie's):
    /// each workspace host gets its own cookie by a handoff (docs/workspace-site.md).
    pub handoff: bool,
    /// The entry proxy's container (Traefik), joined to every runtime's network; runtimes then
    /// believe identity headers from it alone (OpenClaw's trusted-proxy mode).
    pub proxy_container: Option<String>,
    /// Connections of forward-auth's own pool for sessions not in its cache.
    pub session_lookups: u32,
}

/// Which kind of runtime image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeProfile {
    /// The OpenClaw gateway (production).
    Openclaw,
    /// The tiny stand-in (tests, benchmarks).
    Stub,
}

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub profile: RuntimeProfile,
    pub image: String,
    pub memory_mb: u32,
    pub cpus: f64,
    pub pids: u32,
    /// The most one workspace volume may hold, in MiB (None: no limit).
    pub disk_mb: Option<u32>,
    /// How often workspaces are measured against their limit.
    pub disk_check_secs: u64,
    pub concurrency: usize,
    pub ready_timeout_secs: u64,
    /// The workspace address with `{user}` for the username, once the entry layer routes it.
    pub browser_url: Option<String>,
    /// The model gateway as runtimes reach it (`…/v1`).
    pub model_gateway_url: String,
    /// The IPv4 range runtime networks take their /28 subnets from.
    pub network_pool: ipnet::Ipv4Net,
    /// What runtimes may reach beyond the entry proxy: `none` (default) or `public` internet
    /// addresses (private ranges and the host stay blocked either way).
    pub egress: Egress,
    /// Whether the runtime manager installs the host firewall that enforces it (`managed`,
    /// default) or someone else does (`external`).
    pub firewall: FirewallMode,
    /// Split mode: where `clawloops runtime-manager` listens, and who may call it.
    pub manager: ManagerSettings,
    /// Minutes without workspace traffic before a runtime is stopped (0 = never).
    pub idle_stop_minutes: u32,
    /// The longest a runtime runs at a time (None = no limit).
    pub max_lifetime_hours: Option<u32>,
}

/// Split mode. With `url` set the control plane drives runtimes through that runtime manager;
/// without it the driver runs in-process (embedded mode).
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// The runtime manager the control plane calls (split mode).
    pub url: Option<url::Url>,
    /// The secret both sides share (required in split mode, at least 32 characters).
    pub secret: Option<SecretString>,
    /// Where `clawloops runtime-manager` listens.
    pub listen: SocketAddr,
    /// Addresses or networks the runtime manager accepts calls from (the control plane).
    pub allowed_clients: Vec<ipnet::IpNet>,
}

/// The raw shape read from file and environment, before validation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen_addr: SocketAddr,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing)]
    database_url: Option<SecretString>,
    /// A file holding the database password, put into `database_url` (Docker and compose
    /// secrets): the password then appears in no environment.
    database_password_file: Option<PathBuf>,
    database_max_connections: u32,
    postgres_bin_dir: Option<PathBuf>,
    site_root: PathBuf,
    log_level: String,
    log_format: LogFormat,
    session_idle_hours: u32,
    session_absolute_hours: u32,
    cookie_secure: Option<bool>,
    trusted_proxies: Vec<String>,
    initial_admin_password_file: Option<PathBuf>,
    runtime_profile: RuntimeProfile,
    runtime_image: Option<String>,
    runtime_memory_mb: u32,
    runtime_cpus: f64,
    runtime_pids: u32,
    runtime_disk_mb: u32,
    runtime_disk_check_secs: u64,
    runtime_concurrency: usize,
    runtime_ready_timeout_secs: u64,
    runtime_browser_url: Option<String>,
    model_gateway_url: Option<String>,
    runtime_network_pool: String,
    runtime_egress: Egress,
    runtime_firewall: FirewallMode,
    runtime_manager_url: Option<String>,
    #[serde(skip_serializing)]
    runtime_manager_secret: Option<SecretString>,
    /// A file holding `runtime_manager_secret` (Docker and compose secrets).
    runtime_manager_secret_file: Option<PathBuf>,
    runtime_manager_listen: SocketAddr,
    runtime_manager_allowed_clients: Vec<String>,
    workspace_domain: Option<String>,
    cookie_domain: Option<String>,
    entry_proxy_container: Option<String>,
    entry_session_lookups: u32,
    runtime_idle_stop_minutes: u32,
    runtime_max_lifetime_hours: Option<u32>,
    secret_key_file: Option<PathBuf>,
    gateway_max_body_bytes: usize,
    gateway_connect_timeout_secs: u64,
    gateway_first_byte_timeout_secs: u64,
    gateway_idle_timeout_secs: u64,
    gateway_key_lookups: usize,
    gateway_key_concurrency: usize,
}

/// The OpenClaw image `scripts/build-images.sh` builds (and the version it pins).
pub const OPENCLAW_IMAGE: &str = "clawloops/openclaw:2026.9.6";

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            data_dir: None,
            database_url: None,
            database_password_file: None,
            database_max_connections: 10,
            postgres_bin_dir: None,
            site_root: PathBuf::from("target/site"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            session_idle_hours: 24,
            session_absolute_hours: 24 * 7,
            cookie_secure: None,
            trusted_proxies: Vec::new(),
            initial_admin_password_file: None,
            runtime_profile: RuntimeProfile::Openclaw,
            runtime_image: None,
            runtime_memory_mb: 2048,
            runtime_cpus: 1.0,
            runtime_pids: 512,
            runtime_disk_mb: 10240,
            runtime_disk_check_secs: 60,
            runtime_concurrency: 4,
            runtime_ready_timeout_secs: 180,
            runtime_browser_url: None,
            model_gateway_url: None,
            runtime_network_pool: "10.213.0.0/16".into(),
            runtime_egress: Egress::None,
            runtime_firewall: FirewallMode::Managed,
            runtime_manager_url: None,
            runtime_manager_secret: None,
            runtime_manager_secret_file: None,
            runtime_manager_listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            runtime_manager_allowed_clients: vec!["127.0.0.1".into(), "::1".into()],
            workspace_domain: None,
            cookie_domain: None,
            entry_proxy_container: None,
            entry_session_lookups: 4,
            runtime_idle_stop_minutes: 60,
            runtime_max_lifetime_hours: None,
            secret_key_file: None,
            gateway_max_body_bytes: 8 * 1024 * 1024,
            gateway_connect_timeout_secs: 5,
            gateway_first_byte_timeout_secs: 120,
            gateway_idle_timeout_secs: 120,
            gateway_key_lookups: 4,
            gateway_key_concurrency: 64,
        }
    }
}

/// A setting that could not be accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`{origin}: {message}")]
pub struct SettingsError {
    /// The setting's name (as in the TOML file; the env variable is `CLAWLOOPS_` + upper case).
    pub setting: String,
    /// Where the bad value came from, as ` (from …)`, or empty.
    origin: String,
    /// What is wrong with it.
    pub message: String,
}

impl SettingsError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.to_owned(),
            origin: String::new(),
            message: message.into(),
        }
    }
}

impl From<figment::Error> for SettingsError {
    fn from(err: figment::Error) -> Self {
        let setting = err.path.join(".");
        let origin = match (&err.metadata, &err.profile) {
            (Some(md), _) if md.name.contains("environment") => format!(
                " (from environment variable {ENV_PREFIX}{})",
                setting.to_uppercase()
            ),
            (Some(md), _) => match &md.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", md.name),
            },
            _ => String::new(),
        };
        SettingsError {
            setting: if setting.is_empty() {
                "settings file".into()
            } else {
                setting
            },
            origin,
            message: err.kind.to_string(),
        }
    }
}

impl Settings {
    /// Loads settings from `file` (if given; it must exist) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::from_figment(Self::figment(file)?)
    }

    fn figment(file: Option<&Path>) -> Result<Figment, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(SettingsError::new(
                    "config",
                    format!("the settings file {} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        Ok(figment.merge(Env::prefixed(ENV_PREFIX).only(KEYS)))
    }

    fn from_figment(figment: Figment) -> Result<Settings, SettingsError> {
        let raw: RawSettings = figment.extract()?;
        raw.validate()
    }

    /// The database URL without its password, for messages.
    pub fn database_url_redacted(&self) -> Option<String> {
        self.database_url
            .as_ref()
            .map(|url| redact_url(url.expose_secret()))
    }
}

/// The first line of a secret file (a trailing newline is not part of the secret). Its
/// content never appears in an error.
fn read_secret_file(setting: &str, path: &Path) -> Result<String, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(setting, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() || secret.contains('\n') {
        return Err(SettingsError::new(
            setting,
            format!("{} must hold the secret on one line", path.display()),
        ));
    }
    Ok(secret.to_owned())
}

impl RawSettings {
    /// Reads the secrets given as files into their settings.
    fn with_secret_files(mut self) -> Result<Self, SettingsError> {
        if let Some(path) = self.runtime_manager_secret_file.take() {
            if self.runtime_manager_secret.is_some() {
                return Err(SettingsError::new(
                    "runtime_manager_secret_file",
                    "set either runtime_manager_secret or runtime_manager_secret_file, not both",
                ));
            }
            let secret = read_secret_file("runtime_manager_secret_file", &path)?;
            self.runtime_manager_secret = Some(SecretString::from(secret));
        }
        if let Some(path) = self.database_password_file.take() {
            let Some(url) = &self.database_url else {
                return Err(SettingsError::new(
                    "database_password_file",
                    "needs database_url (without a password) to put the password into",
                ));
            };
            let mut parsed = url::Url::parse(url.expose_secret())
                .map_err(|_| SettingsError::new("database_url", "is not a URL"))?;
            if parsed.password().is_some() {
                return Err(SettingsError::new(
                    "database_password_file",
                    "database_url already has a password: set it in one place",
                ));
            }
            let password = read_secret_file("database_password_file", &path)?;
            if parsed.set_password(Some(&password)).is_err() {
                return Err(SettingsError::new(
                    "database_url",
                    "needs a user name and host to take a password",
                ));
            }
            self.database_url = Some(SecretString::from(parsed.to_string()));
        }
        Ok(self)
    }

    fn validate(self) -> Result<Settings, SettingsError> {
        let this = self.with_secret_files()?;
        this.validate_values()
    }

    fn validate_values(self) -> Result<Settings, SettingsError> {
        let public_url = match &self.public_url {
            Some(text) => parse_public_url(text)?,
            None => url::Url::parse(&format!("http://{}", self.listen_addr))
                .map_err(|e| SettingsError::new("listen_addr", e.to_string()))?,
        };
        if !(1..=500).contains(&self.database_max_connections) {
            return Err(SettingsError::new(
                "database_max_connections",
                format!(
                    "must be between 1 and 500, got {}",
                    self.database_max_connections
                ),
            ));
        }
        if let Some(url) = &self.database_url {
            let text = url.expose_secret();
            if is_placeholder(text) {
                return Err(SettingsError::new(
                    "database_url",
                    "still holds the example's placeholder (CHANGE ME): set the real password \
                     (compose: the file secrets/postgres_password, e.g. `openssl rand -hex 24`)",
                ));
            }
            if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                return Err(SettingsError::new(
                    "database_url",
                    "must start with postgres:// or postgresql://",
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(SettingsError::new(
                "log_level",
                format!(
                    "`{}` is not a log filter (try `info`, `debug` or `clawloops_server=debug,info`)",
                    self.log_level
                ),
            ));
        }
        if !(1..=24 * 30).contains(&self.session_idle_hours) {
            return Err(SettingsError::new(
                "session_idle_hours",
                format!("must be between 1 and 720, got {}", self.session_idle_hours),
            ));
        }
        if !(self.session_idle_hours..=24 * 365).contains(&self.session_absolute_hours) {
            return Err(SettingsError::new(
                "session_absolute_hours",
                format!(
                    "must be between session_idle_hours ({}) and 8760, got {}",
                    self.session_idle_hours, self.session_absolute_hours
                ),
            ));
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|text| parse_net("trusted_proxies", text))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(file) = &self.initial_admin_password_file
            && !file.is_file()
        {
            return Err(SettingsError::new(
                "initial_admin_password_file",
                format!("{} does not exist", file.display()),
            ));
        }
        let entry = self.entry_settings(&public_url)?;
        let mut runtime = self.runtime_settings(&public_url)?;
        if runtime.browser_url.is_none()
            && let Some(domain) = &entry.workspace_domain
        {
            let port = public_url
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            runtime.browser_url = Some(format!(
                "{}://{{user}}.{domain}{port}/",
                public_url.scheme()
            ));
        }
        let gateway = self.gateway_settings()?;
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        Ok(Settings {
            runtime,
            entry,
            secret_key_file: self
                .secret_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("secret.key")),
            gateway,
            // Always over https; `cookie_secure = true` also asks for it behind plain HTTP.
            cookie_secure: self.cookie_secure.unwrap_or(false) || public_url.scheme() == "https",
            session_idle_hours: self.session_idle_hours,
            session_absolute_hours: self.session_absolute_hours,
            trusted_proxies,
            initial_admin_password_file: self.initial_admin_password_file,
            listen_addr: self.listen_addr,
            public_url,
            data_dir,
            database_url: self.database_url,
            database_max_connections: self.database_max_connections,
            postgres_bin_dir: self.postgres_bin_dir,
            site_root: self.site_root,
            log_level: self.log_level,
            log_format: self.log_format,
        })
    }
}

/// An address (`10.0.0.7`) or network (`172.18.0.0/16`) for `setting`.
fn parse_net(setting: &str, text: &str) -> Result<ipnet::IpNet, SettingsError> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            SettingsError::new(
                setting,
                format!("`{text}` is not an IP address or network like 172.18.0.0/16"),
            )
        })
}

impl RawSettings {
    fn gateway_settings(&self) -> Result<crate::gateway::GatewayConfig, SettingsError> {
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

    fn runtime_settings(&self, public_url: &url::Url) -> Result<RuntimeSettings, SettingsError> {
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
            .unwrap_or_else(|| format!("{}v1", public_url));
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
fn dns_name(setting: &str, text: &str) -> Result<String, SettingsError> {
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
fn is_placeholder(text: &str) -> bool {
    let squeezed: String = text
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    squeezed.contains("changeme")
}

/// Whether `host` is `domain` or below it.
fn within(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

impl RawSettings {
    fn entry_settings(&self, public_url: &url::Url) -> Result<EntrySettings, SettingsError> {
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
            (None, Some(_)) | (None, None) => None,
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

    fn manager_settings(&self) -> Result<ManagerSettings, SettingsError> {
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

fn parse_public_url(text: &str) -> Result<url::Url, SettingsError> {
    let url = url::Url::parse(text)
        .map_err(|e| SettingsError::new("public_url", format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SettingsError::new(
            "public_url",
            format!("`{text}` must be an http:// or https:// address with a host"),
        ));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(SettingsError::new(
            "public_url",
            format!("`{text}` must not have a path or query (ClawLoops is served at the root)"),
        ));
    }
    Ok(url)
}

/// `./data` for a normal user. As root, PostgreSQL must run as the `postgres` user, which
/// usually cannot reach into `/root`, so the system-wide `/var/lib/clawloops` is used instead.
fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/clawloops")
    } else {
        PathBuf::from("data")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests;
