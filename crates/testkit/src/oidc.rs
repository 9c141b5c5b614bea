//! A real OpenID provider for the single sign-on tests: the OpenID-certified npm package
//! `oidc-provider` (end2end/oidc/provider.mjs) on 127.0.0.1, with the people the test gives
//! it, its own sign-in form, and test controls (a client added late, key rotation, id token
//! faults). Stopped when dropped.

use serde_json::{Value, json};
use std::path::Path;
use tokio::io::AsyncBufReadExt;

/// A running provider.
pub struct OidcProvider {
    pub issuer: String,
    child: Option<tokio::process::Child>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The password every provider account gets.
pub const SECRET: &str = "provider secret 1";

/// One account at the provider.
pub fn person(username: &str, email: &str, verified: bool, groups: &[&str]) -> Value {
    json!({
        "sub": format!("sub-{username}"),
        "username": username,
        "password": SECRET,
        "email": email,
        "email_verified": verified,
        "groups": groups,
    })
}

impl OidcProvider {
    /// Starts the provider with `people`; `id_token_claims` puts the profile claims in the id
    /// token too (else only userinfo has them).
    pub async fn start(people: Vec<Value>, id_token_claims: bool) -> OidcProvider {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("provider.json");
        let body = json!({ "users": people, "clients": [], "id_token_claims": id_token_claims });
        std::fs::write(&config, body.to_string()).expect("config");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../end2end/oidc/provider.mjs");
        let log = std::fs::File::create(dir.path().join("provider.log")).expect("log");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("node runs end2end/oidc/provider.mjs (scripts/test.sh installs its packages)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .expect("read")
            .expect("the provider prints its issuer");
        let started: Value = serde_json::from_str(&first).expect("a JSON line");
        OidcProvider {
            issuer: started["issuer"].as_str().expect("issuer").to_owned(),
            child: Some(child),
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, what: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/__test/{what}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("control request");
        assert!(
            res.status().is_success(),
            "control {what}: {}",
            res.status()
        );
        res.json().await.expect("control answer")
    }

    /// Registers a confidential client returning to `redirect_uri`.
    pub async fn add_client(&self, client_id: &str, secret: &str, redirect_uri: &str) {
        self.control(
            "client",
            json!({
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }),
        )
        .await;
    }

    /// `username`'s groups at the provider are now `groups`.
    pub async fn set_groups(&self, username: &str, groups: &[&str]) {
        self.control("groups", json!({ "username": username, "groups": groups }))
            .await;
    }

    /// A new signing key, used from now on; the old ones stay published. Returns the kids.
    pub async fn rotate(&self) -> Vec<String> {
        kids(self.control("rotate", json!({})).await)
    }

    /// Only the newest key stays published.
    pub async fn retire_old_keys(&self) -> Vec<String> {
        kids(self.control("retire", json!({})).await)
    }

    /// The next token response's id token is altered: `tamper`, `none`, `aud`, `iss`,
    /// `expired`, `nonce`, `skew` (within tolerance) or `old_key`.
    pub async fn fault(&self, kind: &str) {
        self.control("fault", json!({ "kind": kind })).await;
    }

    /// Stops the provider now (the "provider down" case).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

fn kids(answer: Value) -> Vec<String> {
    answer["kids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
