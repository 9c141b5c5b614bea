//! The model gateway end to end against the in-suite fake upstream: keys, visibility, limits,
//! streaming, fallback, cancellation, usage, bad input and secrecy.

use crate::support::upstream::{self, COMPLETION_TOKENS, PROMPT_TOKENS, Upstream};
use crate::support::{Browser, TestServer, captured_logs, code};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod access;
mod breaker;
mod budget;
mod input;
mod limits;
mod load;
mod relay;
mod secrets;

/// The provider credential the fake upstream demands; it must never come back out.
const SECRET: &str = "sk-provider-SECRET-7f3a9c1e5b";

struct Env {
    server: TestServer,
    upstream: Upstream,
    admin: Browser,
    alice: Browser,
    /// Alice's personal key.
    key: String,
    credential: String,
}

async fn env(pool: PgPool) -> Env {
    env_with(pool, |_| {}).await
}

/// As [`env`], with the server's settings adjusted by `adjust`.
async fn env_with(
    pool: PgPool,
    adjust: impl FnOnce(&mut clawloops_server::settings::Settings),
) -> Env {
    captured_logs();
    let upstream = upstream::start(Some(SECRET)).await;
    let server = TestServer::start_with(pool, adjust).await;
    let admin = server.admin("root").await;
    let alice = server.user(&admin, "alice").await;
    let (status, cred) = admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "fake provider"),
                ("secret", SECRET),
                ("verify_url", &upstream.base_url()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cred}");
    let credential = cred["id"].as_str().expect("id").to_owned();
    let env = Env {
        server,
        upstream,
        admin,
        alice,
        key: String::new(),
        credential,
    };
    env.model(&[
        ("alias", "chat"),
        ("upstream_model", "ok"),
        ("is_default", "true"),
    ])
    .await;
    let key = create_key(&env.alice, "my laptop", None).await;
    Env { key, ..env }
}

async fn create_key(user: &Browser, name: &str, days: Option<&str>) -> String {
    let mut form = vec![("name", name)];
    if let Some(d) = days {
        form.push(("expires_days", d));
    }
    let (status, created) = user.call("keys/create", &form).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["secret"].as_str().expect("secret").to_owned()
}

impl Env {
    /// Saves a model with defaults (everyone, this upstream, the credential) overridden.
    async fn model(&self, fields: &[(&str, &str)]) -> Value {
        let (status, body) = self.try_model(fields).await;
        assert_eq!(status, StatusCode::OK, "save model: {body}");
        body
    }

    async fn try_model(&self, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        let base = self.upstream.base_url();
        let defaults = [
            ("upstream_kind", "openai-compatible"),
            ("base_url", base.as_str()),
            ("credential_id", self.credential.as_str()),
            ("enabled", "true"),
            ("visibility", "everyone"),
            ("price_input", "2.50"),
            ("price_output", "10"),
            ("is_default", "false"),
        ];
        self.admin
            .call_form("admin/models/save", &defaults, fields)
            .await
    }

    fn gw(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.server
            .client
            .post(self.server.url(path))
            .bearer_auth(key)
    }

    /// Sends a chat completion with the usual key and hands back the raw response (streams).
    async fn send_chat(&self, body: &Value) -> reqwest::Response {
        self.gw(&self.key, "/v1/chat/completions")
            .json(body)
            .send()
            .await
            .expect("send")
    }

    async fn chat(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .gw(key, "/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = res.status();
        let text = res.text().await.expect("body");
        assert!(!text.contains(SECRET), "the provider key leaked: {text}");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn set_limits(&self, user: &str, fields: &[(&str, &str)]) {
        let id = self.admin.user_id(user).await;
        let mut form = vec![("form[user_id]".to_owned(), id)];
        for (k, v) in fields {
            form.push((format!("form[{k}]"), (*v).to_owned()));
        }
        let borrowed: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, body) = self.admin.call("admin/limits/set", &borrowed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Waits until `sql` (a count) reaches `n`; returns it.
async fn eventually(pool: &PgPool, sql: &str, n: i64) -> i64 {
    let mut last = 0;
    for _ in 0..100 {
        last = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .expect("count");
        if last >= n {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 50})
}
