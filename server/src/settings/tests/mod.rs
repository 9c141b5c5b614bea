#![expect(
    clippy::result_large_err,
    reason = "figment::Jail closures must return figment::Error, which is large; tests only"
)]

use super::*;
use figment::Jail;

mod derived;
mod engine;
mod kubernetes;
mod sso;

/// A figment jail without any inherited `CLAWLOOPS_*` variables (the test script sets some).
fn jailed(f: impl FnOnce(&mut Jail) -> figment::Result<()>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        f(jail)
    });
}

fn load_in(jail: &Jail, file: Option<&str>) -> Result<Settings, SettingsError> {
    let path = file.map(|f| jail.directory().join(f));
    Settings::load(path.as_deref())
}

/// Asserts that settings made by `base` and then `adjust` are refused, naming `key` and saying
/// `words`.
fn refused(base: fn(&mut Jail), adjust: &dyn Fn(&mut Jail), key: &str, words: &str) {
    jailed(|jail| {
        base(jail);
        adjust(jail);
        let text = match load_in(jail, None) {
            Ok(_) => panic!("{key} was not refused"),
            Err(e) => e.to_string(),
        };
        assert!(text.contains(key) && text.contains(words), "{text}");
        Ok(())
    });
}

#[test]
fn defaults_need_no_file() {
    jailed(|jail| {
        let settings = load_in(jail, None).expect("defaults load");
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(settings.public_url.as_str(), "http://127.0.0.1:3000/");
        assert!(settings.database_url.is_none());
        assert_eq!(settings.log_format, LogFormat::Text);
        assert!(!settings.cookie_secure, "plain http: no Secure flag");
        assert_eq!(settings.session_idle_hours, 24);
        Ok(())
    });
}

#[test]
fn a_good_file_is_read_and_env_wins() {
    jailed(|jail| {
        jail.create_file(
            "clawloops.toml",
            r#"
            listen_addr = "0.0.0.0:8080"
            public_url = "https://claw.example.com"
            data_dir = "/srv/claw"
            database_url = "postgres://claw:hunter2@db/claw"
            database_max_connections = 20
            log_format = "json"
            "#,
        )?;
        jail.set_env("CLAWLOOPS_DATABASE_MAX_CONNECTIONS", "7");
        let settings = load_in(jail, Some("clawloops.toml")).expect("file loads");
        assert_eq!(settings.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.public_url.as_str(), "https://claw.example.com/");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/claw"));
        assert_eq!(settings.database_max_connections, 7, "env beats file");
        assert_eq!(settings.log_format, LogFormat::Json);
        assert!(settings.cookie_secure, "https public URL: Secure cookie");
        assert_eq!(
            settings.database_url_redacted().as_deref(),
            Some("postgres://claw:***@db/claw")
        );
        Ok(())
    });
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    jailed(|jail| {
        jail.set_env("CLAWLOOPS_DATABASE_URL", "postgres://claw:hunter2@db/claw");
        let settings = load_in(jail, None).expect("loads");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
        Ok(())
    });
}

#[test]
fn split_mode_needs_the_shared_secret_and_keeps_it_out_of_debug_output() {
    jailed(|jail| {
        jail.set_env("CLAWLOOPS_RUNTIME_MANAGER_URL", "http://10.0.0.5:3001/");
        let err = load_in(jail, None).expect_err("no secret");
        assert_eq!(err.setting, "runtime_manager_secret", "{err}");
        assert!(err.message.contains("required"), "{err}");
        jail.set_env(
            "CLAWLOOPS_RUNTIME_MANAGER_SECRET",
            "s3cret-s3cret-s3cret-s3cret-s3cret-42",
        );
        let settings = load_in(jail, None).expect("loads");
        let manager = &settings.runtime.manager;
        assert_eq!(
            manager.url.as_ref().map(url::Url::as_str),
            Some("http://10.0.0.5:3001/")
        );
        assert_eq!(manager.listen.to_string(), "127.0.0.1:3001");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        Ok(())
    });
}

#[test]
fn a_bad_env_value_names_the_setting_and_the_variable() {
    jailed(|jail| {
        jail.set_env("CLAWLOOPS_LISTEN_ADDR", "not-an-address");
        let err = load_in(jail, None).expect_err("must fail");
        assert_eq!(err.setting, "listen_addr");
        let text = err.to_string();
        assert!(text.contains("CLAWLOOPS_LISTEN_ADDR"), "{text}");
        Ok(())
    });
}

#[test]
fn key_lookup_slots_are_bounded() {
    for bad in ["0", "257"] {
        jailed(|jail| {
            jail.set_env("CLAWLOOPS_GATEWAY_KEY_LOOKUPS", bad);
            let err = load_in(jail, None).expect_err("must fail");
            assert_eq!(err.setting, "gateway_key_lookups");
            Ok(())
        });
    }
    jailed(|jail| {
        jail.set_env("CLAWLOOPS_GATEWAY_KEY_LOOKUPS", "16");
        assert_eq!(load_in(jail, None).expect("valid").gateway.key_lookups, 16);
        Ok(())
    });
}

#[test]
fn a_bad_file_value_names_the_setting_and_the_file() {
    jailed(|jail| {
        jail.create_file("clawloops.toml", "log_format = \"xml\"\n")?;
        let err = load_in(jail, Some("clawloops.toml")).expect_err("must fail");
        assert_eq!(err.setting, "log_format");
        let text = err.to_string();
        assert!(text.contains("clawloops.toml"), "{text}");
        assert!(text.contains("xml"), "{text}");
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_the_file_is_refused() {
    jailed(|jail| {
        jail.create_file("clawloops.toml", "listen_adr = \"127.0.0.1:1\"\n")?;
        let err = load_in(jail, Some("clawloops.toml")).expect_err("typo must fail");
        assert!(err.to_string().contains("listen_adr"), "{err}");
        Ok(())
    });
}

#[test]
fn unrelated_clawloops_env_vars_are_ignored() {
    jailed(|jail| {
        jail.set_env("CLAWLOOPS_SOMETHING_ELSE", "x");
        assert!(load_in(jail, None).is_ok());
        Ok(())
    });
}

#[test]
fn a_missing_file_is_an_error() {
    jailed(|jail| {
        let err = load_in(jail, Some("nope.toml")).expect_err("must fail");
        assert!(err.to_string().contains("does not exist"), "{err}");
        Ok(())
    });
}

#[test]
fn semantic_checks_name_the_setting() {
    let cases = [
        ("CLAWLOOPS_PUBLIC_URL", "ftp://x", "public_url"),
        ("CLAWLOOPS_PUBLIC_URL", "https://x/sub", "public_url"),
        (
            "CLAWLOOPS_DATABASE_MAX_CONNECTIONS",
            "0",
            "database_max_connections",
        ),
        ("CLAWLOOPS_DATABASE_URL", "mysql://x", "database_url"),
        (
            "CLAWLOOPS_DATABASE_URL",
            "postgres://clawloops:CHANGE ME: openssl rand -hex 24@postgres:5432/clawloops",
            "database_url",
        ),
        (
            "CLAWLOOPS_RUNTIME_MANAGER_SECRET",
            "CHANGE ME: openssl rand -hex 32 (at least 32 characters)",
            "runtime_manager_secret",
        ),
        (
            "CLAWLOOPS_ENTRY_SESSION_LOOKUPS",
            "0",
            "entry_session_lookups",
        ),
        ("CLAWLOOPS_LOG_LEVEL", "info,[", "log_level"),
        ("CLAWLOOPS_SESSION_IDLE_HOURS", "0", "session_idle_hours"),
        (
            "CLAWLOOPS_SESSION_ABSOLUTE_HOURS",
            "1",
            "session_absolute_hours",
        ),
        (
            "CLAWLOOPS_TRUSTED_PROXIES",
            "[\"not-an-ip\"]",
            "trusted_proxies",
        ),
        (
            "CLAWLOOPS_INITIAL_ADMIN_PASSWORD_FILE",
            "/nonexistent",
            "initial_admin_password_file",
        ),
        (
            "CLAWLOOPS_RUNTIME_MANAGER_SECRET",
            "too-short",
            "runtime_manager_secret",
        ),
        (
            "CLAWLOOPS_RUNTIME_MANAGER_URL",
            "not a url",
            "runtime_manager_url",
        ),
        (
            "CLAWLOOPS_RUNTIME_NETWORK_POOL",
            "10.0.0.0/30",
            "runtime_network_pool",
        ),
        (
            "CLAWLOOPS_RUNTIME_MANAGER_ALLOWED_CLIENTS",
            "[\"everyone\"]",
            "runtime_manager_allowed_clients",
        ),
        ("CLAWLOOPS_SECRET_KEY", "c2hvcnQ=", "secret_key"),
        ("CLAWLOOPS_SHUTDOWN_GRACE_SECS", "0", "shutdown_grace_secs"),
        ("CLAWLOOPS_TASK_LEASE_SECS", "1", "task_lease_secs"),
    ];
    for (var, value, setting) in cases {
        jailed(|jail| {
            jail.set_env(var, value);
            let err = load_in(jail, None).expect_err(value);
            assert_eq!(err.setting, setting, "{var}={value}: {err}");
            Ok(())
        });
    }
}

#[test]
fn every_listed_key_is_a_real_setting() {
    // KEYS filters the environment; a key missing from the struct would be silently useless.
    let fields = [
        ("listen_addr", "\"127.0.0.1:1\""),
        ("public_url", "\"http://a\""),
        ("data_dir", "\"/tmp\""),
        ("database_url", "\"postgres://a\""),
        ("database_password_file", "\"/run/secrets/db\""),
        ("database_max_connections", "1"),
        ("postgres_bin_dir", "\"/usr/bin\""),
        ("site_root", "\"site\""),
        ("log_level", "\"info\""),
        ("log_format", "\"text\""),
        ("session_idle_hours", "2"),
        ("session_absolute_hours", "3"),
        ("cookie_secure", "true"),
        ("trusted_proxies", "[\"10.0.0.0/8\"]"),
        ("initial_admin_password_file", "\"/etc/hostname\""),
        ("runtime_profile", "\"stub\""),
        ("runtime_image", "\"img:1\""),
        ("runtime_memory_mb", "256"),
        ("runtime_cpus", "0.5"),
        ("runtime_pids", "64"),
        ("runtime_disk_mb", "0"),
        ("runtime_disk_check_secs", "30"),
        ("runtime_concurrency", "2"),
        ("runtime_ready_timeout_secs", "30"),
        ("runtime_browser_url", "\"http://{user}.localhost/\""),
        ("model_gateway_url", "\"http://gw/v1\""),
        ("runtime_network_pool", "\"10.99.0.0/20\""),
        ("runtime_egress", "\"public\""),
        ("runtime_firewall", "\"external\""),
        ("runtime_manager_url", "\"http://10.0.0.5:3001/\""),
        (
            "runtime_manager_secret",
            "\"0123456789abcdef0123456789abcdef\"",
        ),
        ("runtime_manager_secret_file", "\"/run/secrets/manager\""),
        ("runtime_manager_listen", "\"0.0.0.0:3001\""),
        ("runtime_manager_allowed_clients", "[\"10.0.0.0/8\"]"),
        ("runtime_engine", "\"swarm\""),
        ("swarm_manager", "\"unix:///var/run/docker.sock\""),
        ("swarm_nodes", "{ node-1 = \"tcp://10.0.0.5:2375\" }"),
        ("swarm_entry_node", "\"node-1\""),
        ("kubernetes_api_url", "\"http://127.0.0.1:8001\""),
        ("kubernetes_namespace", "\"runtimes\""),
        ("kubernetes_storage_class", "\"fast\""),
        ("kubernetes_ephemeral_storage_mb", "512"),
        ("kubernetes_entry_namespace", "\"edge\""),
        ("kubernetes_entry_labels", "{ app = \"traefik\" }"),
        ("kubernetes_entry_address", "\"10.96.0.80\""),
        ("kubernetes_entry_service", "\"entry\""),
        ("kubernetes_entry_sources", "[\"10.244.0.0/16\"]"),
        ("kubernetes_dns_labels", "{ k8s-app = \"kube-dns\" }"),
        ("workspace_domain", "\"ws.example.com\""),
        ("cookie_domain", "\"example.com\""),
        ("entry_proxy_container", "\"traefik\""),
        ("entry_session_lookups", "8"),
        ("runtime_idle_stop_minutes", "30"),
        ("runtime_max_lifetime_hours", "8"),
        ("secret_key_file", "\"/etc/clawloops/secret.key\""),
        (
            "secret_key",
            "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
        ),
        ("shutdown_grace_secs", "10"),
        ("shutdown_delay_secs", "1"),
        ("task_lease_secs", "20"),
        ("leader_lease_secs", "10"),
        ("gateway_max_body_bytes", "65536"),
        ("gateway_connect_timeout_secs", "3"),
        ("gateway_first_byte_timeout_secs", "60"),
        ("gateway_idle_timeout_secs", "30"),
        ("gateway_key_lookups", "8"),
        ("gateway_key_concurrency", "32"),
        (
            "sso_providers",
            r#"[{ id = "corp", name = "Corp", issuer = "https://id.example.com", client_id = "c", admission = "invited" }]"#,
        ),
    ];
    assert_eq!(fields.len(), KEYS.len());
    let toml: String = fields
        .iter()
        .flat_map(|(k, v)| [k, " = ", v, "\n"])
        .collect();
    let raw: RawSettings = Figment::from(Toml::string(&toml))
        .extract()
        .expect("all keys known");
    assert_eq!(raw.database_max_connections, 1);
    for (key, _) in fields {
        assert!(KEYS.contains(&key), "{key} missing from KEYS");
    }
}
