//! `[[sso_providers]]`: a provider from the settings file (its secret from a file), one from
//! the environment, and what is refused by name.

use super::*;

const KEYCLOAK: &str = r#"
[[sso_providers]]
id = "keycloak"
name = "Keycloak"
issuer = "https://sso.example.com/realms/team"
client_id = "clawloops"
client_secret_file = "client-secret"
admission = "open"
allowed_domains = ["@Example.com"]
admin_groups = ["/clawloops-admins"]
"#;

#[test]
fn a_provider_from_the_file_gets_its_secret_from_a_file_and_defaults() {
    jailed(|jail| {
        jail.create_file("clawloops.toml", KEYCLOAK)?;
        jail.create_file("client-secret", "s3cret-from-a-file\n")?;
        let settings = load_in(jail, Some("clawloops.toml")).expect("loads");
        let [p] = settings.sso_providers.as_slice() else {
            panic!("one provider: {:?}", settings.sso_providers);
        };
        assert_eq!(p.id, "keycloak");
        assert_eq!(p.issuer, "https://sso.example.com/realms/team");
        assert_eq!(
            p.client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("s3cret-from-a-file".into())
        );
        assert_eq!(p.allowed_domains, ["example.com"], "lower-cased, without @");
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(p.groups_claim, "groups");
        assert_eq!(p.username_claim, "preferred_username");
        assert_eq!(p.metadata_max_age.as_secs(), 300);
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "the secret is never printed"
        );
        Ok(())
    });
}

#[test]
fn a_provider_from_the_environment_loads() {
    jailed(|jail| {
        jail.set_env(
            "CLAWLOOPS_SSO_PROVIDERS",
            r#"[{id="dex",name="Dex",issuer="http://127.0.0.1:5556/dex",client_id="c",admission="invited"}]"#,
        );
        let settings = load_in(jail, None).expect("loads");
        assert_eq!(settings.sso_providers.len(), 1);
        assert!(
            settings.sso_providers[0].client_secret.is_none(),
            "a public client"
        );
        Ok(())
    });
}

fn provider_env(jail: &mut Jail) {
    jail.set_env(
        "CLAWLOOPS_SSO_PROVIDERS",
        r#"[{id="corp",name="Corp",issuer="https://id.example.com",client_id="c",admission="open",allowed_domains=["example.com"]}]"#,
    );
}

#[test]
fn a_bad_provider_is_refused_by_name() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"id="Corp""#, "sso_providers.id", "lower-case"),
        (
            r#"issuer="http://id.example.com""#,
            "sso_providers.corp.issuer",
            "https",
        ),
        (
            r#"issuer="not a url""#,
            "sso_providers.corp.issuer",
            "not a URL",
        ),
        (r#"client_id=" ""#, "sso_providers.corp.client_id", "empty"),
        (
            r#"allowed_domains=[]"#,
            "sso_providers.corp.admission",
            "allowed_domains or allowed_groups",
        ),
        (
            r#"allowed_domains=["nodot"]"#,
            "sso_providers.corp.allowed_domains",
            "not a domain",
        ),
        (
            r#"client_secret="""#,
            "sso_providers.corp.client_secret",
            "public client",
        ),
        (
            r#"metadata_max_age_secs=0"#,
            "sso_providers.corp.metadata_max_age_secs",
            "between",
        ),
    ];
    for (change, key, words) in cases {
        let (field, _) = change.split_once('=').expect("a field");
        refused(
            provider_env,
            &|jail| {
                let base = r#"id="corp",name="Corp",issuer="https://id.example.com",client_id="c",admission="open",allowed_domains=["example.com"]"#;
                let kept: Vec<&str> = base
                    .split(',')
                    .filter(|part| !part.starts_with(&format!("{field}=")))
                    .collect();
                let text = format!("[{{{},{change}}}]", kept.join(","));
                jail.set_env("CLAWLOOPS_SSO_PROVIDERS", text);
            },
            key,
            words,
        );
    }
    // Two providers with one id.
    refused(
        provider_env,
        &|jail| {
            let one = r#"{id="corp",name="Corp",issuer="https://id.example.com",client_id="c",admission="invited"}"#;
            jail.set_env("CLAWLOOPS_SSO_PROVIDERS", format!("[{one},{one}]"));
        },
        "sso_providers",
        "two providers",
    );
}
