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
    "runtime_engine",
    "swarm_manager",
    "swarm_nodes",
    "swarm_entry_node",
    "kubernetes_api_url",
    "kubernetes_namespace",
    "kubernetes_storage_class",
    "kubernetes_ephemeral_storage_mb",
    "kubernetes_entry_namespace",
    "kubernetes_entry_labels",
    "kubernetes_entry_address",
    "kubernetes_entry_service",
    "kubernetes_entry_sources",
    "kubernetes_dns_labels",
    "workspace_domain",
    "cookie_domain",
    "entry_proxy_container",
    "entry_session_lookups",
    "runtime_idle_stop_minutes",
    "runtime_max_lifetime_hours",
    "secret_key_file",
    "secret_key",
    "shutdown_grace_secs",
    "shutdown_delay_secs",
    "task_lease_secs",
    "leader_lease_secs",
    "gateway_max_body_bytes",
    "gateway_connect_timeout_secs",
    "gateway_first_byte_timeout_secs",
    "gateway_idle_timeout_secs",
    "gateway_key_lookups",
    "gateway_key_concurrency",
    "sso_providers",
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
    /// The key itself (base64), which wins over the file: replicas share it.
    pub secret_key: Option<SecretString>,
    /// Shutdown and the leases replicas share work by.
    pub replicas: ReplicaSettings,
    /// The model gateway's body limit and upstream timeouts.
    pub gateway: crate::gateway::GatewayConfig,
    /// Single sign-on providers (OpenID Connect), in the sign-in page's order.
    pub sso_providers: Vec<app::ssr::identity::sso::ProviderConfig>,
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
    runtime_engine: RuntimeEngine,
    swarm_manager: String,
    swarm_nodes: std::collections::BTreeMap<String, String>,
    swarm_entry_node: Option<String>,
    kubernetes_api_url: Option<String>,
    kubernetes_namespace: String,
    kubernetes_storage_class: Option<String>,
    kubernetes_ephemeral_storage_mb: u32,
    kubernetes_entry_namespace: String,
    kubernetes_entry_labels: std::collections::BTreeMap<String, String>,
    kubernetes_entry_address: Option<String>,
    kubernetes_entry_service: String,
    kubernetes_entry_sources: Vec<String>,
    kubernetes_dns_labels: std::collections::BTreeMap<String, String>,
    workspace_domain: Option<String>,
    cookie_domain: Option<String>,
    entry_proxy_container: Option<String>,
    entry_session_lookups: u32,
    runtime_idle_stop_minutes: u32,
    runtime_max_lifetime_hours: Option<u32>,
    secret_key_file: Option<PathBuf>,
    #[serde(skip_serializing)]
    secret_key: Option<SecretString>,
    shutdown_grace_secs: u64,
    shutdown_delay_secs: u64,
    task_lease_secs: u64,
    leader_lease_secs: u64,
    gateway_max_body_bytes: usize,
    gateway_connect_timeout_secs: u64,
    gateway_first_byte_timeout_secs: u64,
    gateway_idle_timeout_secs: u64,
    gateway_key_lookups: usize,
    gateway_key_concurrency: usize,
    sso_providers: Vec<sso::RawProvider>,
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
            runtime_engine: RuntimeEngine::Docker,
            swarm_manager: "unix:///var/run/docker.sock".into(),
            swarm_nodes: std::collections::BTreeMap::new(),
            swarm_entry_node: None,
            kubernetes_api_url: None,
            kubernetes_namespace: "clawloops-runtimes".into(),
            kubernetes_storage_class: None,
            kubernetes_ephemeral_storage_mb: 1024,
            kubernetes_entry_namespace: "clawloops".into(),
            kubernetes_entry_labels: kubernetes::default_entry_labels(),
            kubernetes_entry_address: None,
            kubernetes_entry_service: "clawloops-entry-runtime".into(),
            kubernetes_entry_sources: Vec::new(),
            kubernetes_dns_labels: kubernetes::default_dns_labels(),
            workspace_domain: None,
            cookie_domain: None,
            entry_proxy_container: None,
            entry_session_lookups: 4,
            runtime_idle_stop_minutes: 60,
            runtime_max_lifetime_hours: None,
            secret_key_file: None,
            secret_key: None,
            shutdown_grace_secs: 30,
            shutdown_delay_secs: 2,
            task_lease_secs: 30,
            leader_lease_secs: 15,
            gateway_max_body_bytes: 8 * 1024 * 1024,
            gateway_connect_timeout_secs: 5,
            gateway_first_byte_timeout_secs: 120,
            gateway_idle_timeout_secs: 120,
            gateway_key_lookups: 4,
            gateway_key_concurrency: 64,
            sso_providers: Vec::new(),
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

mod error;
mod kubernetes;
pub use kubernetes::KubernetesSettings;
mod replicas;
mod runtime;
pub use runtime::*;
mod sections;
mod sso;
#[cfg(test)]
mod tests;
mod validate;

pub use error::SettingsError;
pub use replicas::ReplicaSettings;
