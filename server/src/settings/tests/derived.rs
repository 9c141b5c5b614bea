//! What settings derive (workspace routing, cookie domain) and secrets read from files.

use super::*;

#[test]
fn workspace_routing_derives_the_cookie_domain_and_the_workspace_address() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CLAWLOOPS_PUBLIC_URL", "http://clawloops.localhost:8080/");
        jail.set_env("CLAWLOOPS_WORKSPACE_DOMAIN", "Clawloops.Localhost");
        let s = Settings::load(None).expect("valid");
        assert_eq!(
            s.entry.workspace_domain.as_deref(),
            Some("clawloops.localhost")
        );
        assert_eq!(
            s.entry.cookie_domain.as_deref(),
            Some("clawloops.localhost")
        );
        assert_eq!(
            s.runtime.browser_url.as_deref(),
            Some("http://{user}.clawloops.localhost:8080/")
        );
        assert_eq!(s.runtime.idle_stop_minutes, 60, "default idle stop");

        assert!(
            !s.entry.handoff,
            "the session cookie reaches the workspaces"
        );

        // Workspaces the session cookie cannot reach are a site of their own: a handoff.
        jail.set_env("CLAWLOOPS_PUBLIC_URL", "https://claw.example.com/");
        jail.set_env("CLAWLOOPS_WORKSPACE_DOMAIN", "claw-workspaces.net");
        let s = Settings::load(None).expect("a site of their own");
        assert_eq!(
            s.entry.cookie_domain, None,
            "the session cookie stays on the public host"
        );
        assert!(s.entry.handoff);
        jail.set_env("CLAWLOOPS_WORKSPACE_DOMAIN", "ws.example.com");
        assert!(
            Settings::load(None).expect("valid").entry.handoff,
            "no shared cookie domain set"
        );
        jail.set_env("CLAWLOOPS_COOKIE_DOMAIN", "example.com");
        let s = Settings::load(None).expect("valid with a cookie domain");
        assert_eq!(s.entry.cookie_domain.as_deref(), Some("example.com"));
        assert!(
            !s.entry.handoff,
            "a cookie domain covering both shares the session"
        );
        assert_eq!(
            s.runtime.browser_url.as_deref(),
            Some("https://{user}.ws.example.com/")
        );
        jail.set_env("CLAWLOOPS_COOKIE_DOMAIN", "other.org");
        assert_eq!(
            Settings::load(None).expect_err("foreign").setting,
            "cookie_domain"
        );
        jail.set_env("CLAWLOOPS_COOKIE_DOMAIN", "example.com");
        jail.set_env("CLAWLOOPS_WORKSPACE_DOMAIN", "bad_name!.example.com");
        assert_eq!(
            Settings::load(None).expect_err("not DNS").setting,
            "workspace_domain"
        );
        jail.set_env("CLAWLOOPS_WORKSPACE_DOMAIN", "ws.example.com");
        jail.set_env("CLAWLOOPS_RUNTIME_IDLE_STOP_MINUTES", "50000");
        assert_eq!(
            Settings::load(None).expect_err("too long").setting,
            "runtime_idle_stop_minutes"
        );
        jail.set_env("CLAWLOOPS_RUNTIME_IDLE_STOP_MINUTES", "0");
        jail.set_env("CLAWLOOPS_RUNTIME_MAX_LIFETIME_HOURS", "0");
        assert_eq!(
            Settings::load(None).expect_err("zero lifetime").setting,
            "runtime_max_lifetime_hours"
        );
        Ok(())
    });
}

/// Secrets as files (Docker and compose secrets): read, trailing newline dropped, put where
/// the plain setting would be; never both; the content never in an error.
#[test]
fn secrets_come_from_files() {
    let files = |jail: &mut Jail| -> figment::Result<()> {
        jail.create_file("db-password", "s3cr3t/with:odd@chars\n")?;
        jail.create_file("manager-secret", "0123456789abcdef0123456789abcdef\n")?;
        jail.create_file("two-lines", "first-line\nsecond-line\n")?;
        jail.set_env(
            "CLAWLOOPS_DATABASE_URL",
            "postgres://clawloops@db:5432/clawloops",
        );
        jail.set_env("CLAWLOOPS_DATABASE_PASSWORD_FILE", "db-password");
        jail.set_env("CLAWLOOPS_RUNTIME_MANAGER_SECRET_FILE", "manager-secret");
        Ok(())
    };
    jailed(|jail| {
        files(jail)?;
        let s = Settings::load(None).expect("valid");
        let url =
            url::Url::parse(s.database_url.as_ref().expect("url").expose_secret()).expect("a URL");
        assert_eq!(url.username(), "clawloops");
        assert_eq!(
            url.password(),
            Some("s3cr3t%2Fwith%3Aodd%40chars"),
            "encoded"
        );
        assert_eq!(url.host_str(), Some("db"));
        Ok(())
    });
    let refused = |adjust: &dyn Fn(&mut Jail), expect: &str| {
        jailed(|jail| {
            files(jail)?;
            adjust(jail);
            let err = Settings::load(None).expect_err(expect).to_string();
            assert!(err.contains(expect), "{err}");
            assert!(
                !err.contains("s3cr3t")
                    && !err.contains("first-line")
                    && !err.contains("0123456789"),
                "no secret in the message: {err}"
            );
            Ok(())
        });
    };
    refused(
        &|jail| {
            jail.set_env(
                "CLAWLOOPS_RUNTIME_MANAGER_SECRET",
                "fedcba9876543210fedcba9876543210",
            );
        },
        "not both",
    );
    refused(
        &|jail| {
            jail.set_env(
                "CLAWLOOPS_DATABASE_URL",
                "postgres://clawloops:pw@db/clawloops",
            );
        },
        "already has a password",
    );
    refused(
        &|jail| jail.set_env("CLAWLOOPS_DATABASE_PASSWORD_FILE", "nope"),
        "database_password_file",
    );
    refused(
        &|jail| jail.set_env("CLAWLOOPS_DATABASE_PASSWORD_FILE", "two-lines"),
        "one line",
    );
}
