//! Reading the raw settings into [`Settings`]: secrets from files, then every value checked,
//! with the setting and its origin named in the error.

use super::sections::is_placeholder;
use super::*;

/// The first line of a secret file (a trailing newline is not part of the secret). Its
/// content never appears in an error.
pub(super) fn read_secret_file(setting: &str, path: &Path) -> Result<String, SettingsError> {
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
    pub(super) fn with_secret_files(mut self) -> Result<Self, SettingsError> {
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

    pub(super) fn validate(self) -> Result<Settings, SettingsError> {
        let this = self.with_secret_files()?;
        this.validate_values()
    }

    pub(super) fn validate_values(self) -> Result<Settings, SettingsError> {
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
        let replicas = self.replica_settings()?;
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        let sso_providers = sso::providers(self.sso_providers)?;
        Ok(Settings {
            sso_providers,
            runtime,
            entry,
            secret_key_file: self
                .secret_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("secret.key")),
            secret_key: self.secret_key,
            replicas,
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
pub(super) fn parse_net(setting: &str, text: &str) -> Result<ipnet::IpNet, SettingsError> {
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

pub(super) fn parse_public_url(text: &str) -> Result<url::Url, SettingsError> {
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
pub(super) fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/clawloops")
    } else {
        PathBuf::from("data")
    }
}
