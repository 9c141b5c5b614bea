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
        let mut form: Vec<(String, String)> = [
            ("upstream_kind", "openai-compatible"),
            ("base_url", base.as_str()),
            ("credential_id", self.credential.as_str()),
            ("enabled", "true"),
            ("visibility", "everyone"),
            ("price_input", "2.50"),
            ("price_output", "10"),
            ("is_default", "false"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in fields {
            form.retain(|(key, _)| key != k);
            form.push(((*k).to_owned(), (*v).to_owned()));
        }
        let form: Vec<(String, String)> = form
            .into_iter()
            .map(|(k, v)| (format!("form[{k}]"), v))
            .collect();
        let borrowed: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.admin.call("admin/models/save", &borrowed).await
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

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_chat_completion_is_relayed_with_the_provider_key_and_its_usage_recorded(pool: PgPool) {
    let env = env(pool.clone()).await;
    let mut body = hello("chat");
    body["some_new_field"] = json!({"kept": true});
    let (status, answer) = env.chat(&env.key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        upstream::chat_answer("ok"),
        "the answer passes through unchanged"
    );

    let seen = env.upstream.fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(
        seen[0].body["model"], "ok",
        "the alias became the upstream's model name"
    );
    assert_eq!(
        seen[0].body.get("some_new_field"),
        None,
        "fields the endpoint does not define stay behind"
    );
    assert_eq!(seen[0].body["messages"][0]["content"], "Say hello");

    assert_eq!(
        eventually(&pool, "SELECT count(*) FROM usage_events", 1).await,
        1
    );
    let row: (String, i32, i32, bool, i64, i16, bool, String) = sqlx::query_as(
        "SELECT model_alias, prompt_tokens, completion_tokens, estimated, cost_nano, status, stream, username FROM usage_events",
    )
    .fetch_one(&pool)
    .await
    .expect("row");
    // 11 tokens at $2.50/M + 5 at $10/M = 27.5 + 50 micro-dollars = 77,500 nano-dollars.
    assert_eq!(
        row,
        (
            "chat".into(),
            PROMPT_TOKENS as i32,
            COMPLETION_TOKENS as i32,
            false,
            77_500,
            200,
            false,
            "alice".into()
        )
    );
    let daily: (i64, i64, i64) =
        sqlx::query_as("SELECT requests, prompt_tokens, completion_tokens FROM usage_daily")
            .fetch_one(&pool)
            .await
            .expect("daily");
    assert_eq!(daily, (1, PROMPT_TOKENS, COMPLETION_TOKENS));
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE kind = 'personal'")
            .fetch_one(&pool)
            .await
            .expect("key");
    assert!(used.is_some(), "the key's last use is recorded");
    let hashed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&env.key)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(hashed, 1, "the key is stored as its SHA-256 only");

    // The usage pages show it.
    let (status, mine) = env.alice.call("usage/mine", &[("days", "7")]).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["by_model"][0]["name"], "chat");
    assert_eq!(mine["by_model"][0]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(mine["days"][0]["tokens"], PROMPT_TOKENS + COMPLETION_TOKENS);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_stream_passes_through_byte_for_byte_and_its_usage_is_read_from_the_last_chunk(
    pool: PgPool,
) {
    let env = env(pool.clone()).await;
    let mut body = hello("chat");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = env.send_chat(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut chunks = 0;
    let mut received = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("chunk"));
        chunks += 1;
    }
    let expected: String = upstream::stream_events("ok", true).concat();
    assert_eq!(
        String::from_utf8(received).expect("utf-8"),
        expected,
        "byte-exact pass-through"
    );
    assert!(
        chunks >= 2,
        "the stream arrived in pieces, not as one buffered body ({chunks})"
    );

    assert_eq!(
        eventually(&pool, "SELECT count(*) FROM usage_events", 1).await,
        1
    );
    let row: (i32, i32, bool, bool, i16) = sqlx::query_as(
        "SELECT prompt_tokens, completion_tokens, estimated, stream, status FROM usage_events",
    )
    .fetch_one(&pool)
    .await
    .expect("row");
    assert_eq!(
        row,
        (
            PROMPT_TOKENS as i32,
            COMPLETION_TOKENS as i32,
            false,
            true,
            200
        )
    );

    // A client that did not ask for usage still gets it counted: the gateway asks the upstream.
    let mut plain = hello("chat");
    plain["stream"] = json!(true);
    let res = env.send_chat(&plain).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("text");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let seen = env.upstream.fake.seen();
    assert_eq!(seen[1].body["stream_options"]["include_usage"], true);
    assert_eq!(
        eventually(
            &pool,
            "SELECT count(*) FROM usage_events WHERE completion_tokens = 5",
            2
        )
        .await,
        2
    );

    // An upstream that reports nothing: the events are counted instead.
    env.model(&[("alias", "quiet"), ("upstream_model", "nousage")])
        .await;
    let mut quiet = hello("quiet");
    quiet["stream"] = json!(true);
    let res = env.send_chat(&quiet).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("text");
    // Five data events (four pieces and the finish) besides [DONE], about a token each.
    assert_eq!(eventually(&pool, "SELECT count(*) FROM usage_events WHERE model_alias = 'quiet' AND estimated AND completion_tokens = 5", 1).await, 1);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn models_are_listed_and_allowed_by_visibility(pool: PgPool) {
    let env = env(pool.clone()).await;
    let bob = env.server.user(&env.admin, "bob").await;
    let bob_key = create_key(&bob, "bob's", None).await;
    env.model(&[
        ("alias", "for-bob"),
        ("upstream_model", "ok"),
        ("visibility", "users"),
        ("visible_users", "bob"),
    ])
    .await;
    env.model(&[
        ("alias", "admins-only"),
        ("upstream_model", "ok"),
        ("visibility", "roles"),
        ("visible_roles", "admin"),
    ])
    .await;
    env.model(&[
        ("alias", "switched-off"),
        ("upstream_model", "ok"),
        ("enabled", "false"),
    ])
    .await;

    let list = |key: String| {
        let req = env
            .server
            .client
            .get(env.server.url("/v1/models"))
            .bearer_auth(key);
        async move {
            let body: Value = req.send().await.expect("send").json().await.expect("json");
            body["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(env.key.clone()).await, vec!["chat"]);
    assert_eq!(list(bob_key.clone()).await, vec!["chat", "for-bob"]);

    // A model the key may not use, one switched off and one that never existed get the same
    // answer (but for the name): a key learns nothing about other users' models.
    let answer = |alias: &'static str| {
        let env = &env;
        async move {
            let (status, body) = env.chat(&env.key, hello(alias)).await;
            let text = body.to_string().replace(alias, "<alias>");
            (status, text)
        }
    };
    let (status, unknown) = answer("no-such-model").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert!(unknown.contains("\"model_not_found\""), "{unknown}");
    for alias in ["for-bob", "admins-only", "switched-off"] {
        assert_eq!(
            answer(alias).await,
            (StatusCode::NOT_FOUND, unknown.clone()),
            "{alias}"
        );
    }
    let (status, _) = env.chat(&bob_key, hello("for-bob")).await;
    assert_eq!(status, StatusCode::OK);

    // The user's page shows the same list, default first.
    let (_, mine) = bob.call("models/mine", &[]).await;
    let aliases: Vec<&str> = mine["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["alias"].as_str().expect("alias"))
        .collect();
    assert_eq!(aliases, vec!["chat", "for-bob"]);
    assert_eq!(mine["models"][0]["is_default"], true);
    assert!(mine["gateway_url"].as_str().expect("url").ends_with("/v1"));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn revoked_expired_suspended_disabled_and_unknown_keys_get_401(pool: PgPool) {
    let env = env(pool.clone()).await;
    let expect_401 = |status: StatusCode, body: &Value| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    let (status, body) = env.chat("clk_not-a-real-key", hello("chat")).await;
    expect_401(status, &body);
    let res = env
        .server
        .client
        .post(env.server.url("/v1/chat/completions"))
        .json(&hello("chat"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Revoked by its owner.
    let (status, _) = env.chat(&env.key, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = env.alice.call("models/mine", &[]).await;
    let id = mine["keys"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(mine["keys"][0]["state"], "active");
    assert!(
        mine["keys"][0].get("secret").is_none() && !mine.to_string().contains(&env.key),
        "the secret is shown only once"
    );
    let (status, body) = env.alice.call("keys/revoke", &[("id", &id)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = env.chat(&env.key, hello("chat")).await;
    expect_401(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("revoked")
    );
    // Someone else cannot revoke it (or learn it exists).
    let other = create_key(&env.alice, "second", None).await;
    let bob = env.server.user(&env.admin, "bob").await;
    let (_, mine) = env.alice.call("models/mine", &[]).await;
    let second = mine["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "second")
        .expect("second")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = bob.call("keys/revoke", &[("id", &second)]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let (status, _) = env.chat(&other, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);

    // Expired.
    let expiring = create_key(&env.alice, "short", Some("1")).await;
    sqlx::query(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short'",
    )
    .execute(&pool)
    .await
    .expect("expire");
    env.server.state.gateway.invalidate();
    let (status, body) = env.chat(&expiring, hello("chat")).await;
    expect_401(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expired")
    );

    // Suspended by an admin, then allowed again.
    env.set_limits("alice", &[("keys_suspended", "true")]).await;
    let (status, body) = env.chat(&other, hello("chat")).await;
    expect_401(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("suspended")
    );
    env.set_limits("alice", &[("keys_suspended", "false")])
        .await;
    let (status, _) = env.chat(&other, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);

    // The account disabled.
    let alice_id = env.admin.user_id("alice").await;
    let (status, body) = env
        .admin
        .call(
            "admin/users/status",
            &[("id", &alice_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = env.chat(&other, hello("chat")).await;
    expect_401(status, &body);

    // Bad key-creation input gets a field error and creates nothing.
    let (status, body) = bob.call("keys/create", &[("name", "  ")]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION")
    );
    let (status, body) = bob
        .call("keys/create", &[("name", "x"), ("expires_days", "0")])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION")
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn concurrent_requests_on_two_replicas_never_overshoot_the_token_budget(pool: PgPool) {
    let env = env(pool.clone()).await;
    // A second control plane on the same database and key file: a second replica.
    let shared = std::env::temp_dir()
        .join(format!("clawloops-test-{}", env.server.addr.port()))
        .join("secret.key");
    let second = TestServer::start_with(pool.clone(), |s| s.secret_key_file = shared.clone()).await;

    // Each request reserves its body's bytes (the most prompt tokens it can hold) + max_tokens
    // (50) tokens and uses 16.
    let body = hello("chat");
    let reservation = (serde_json::to_vec(&body).expect("json").len() + 50) as i64;
    let budget = 1000;
    env.set_limits(
        "alice",
        &[
            ("budget_tokens", &budget.to_string()),
            ("budget_period", "day"),
        ],
    )
    .await;

    let mut tasks = Vec::new();
    for i in 0..120 {
        let url = if i % 2 == 0 {
            env.server.url("/v1/chat/completions")
        } else {
            second.url("/v1/chat/completions")
        };
        let req = env
            .server
            .client
            .post(url)
            .bearer_auth(&env.key)
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.expect("send");
            let status = res.status();
            let body: Value = res.json().await.expect("json");
            (status, body)
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                assert_eq!(body["error"]["type"], "insufficient_quota");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let used_per_request = PROMPT_TOKENS + COMPLETION_TOKENS;
    assert!(limited > 0, "the budget ran out");
    assert!(ok > 0);
    assert!(
        ok * used_per_request <= budget + reservation,
        "{ok} requests used {} of {budget}",
        ok * used_per_request
    );
    // Settled use reaches PostgreSQL and stays within the budget.
    let settled = eventually(
        &pool,
        "SELECT COALESCE(sum(used), 0)::bigint FROM quota_usage WHERE quota = 'tokens'",
        ok * used_per_request,
    )
    .await;
    assert_eq!(settled, ok * used_per_request);
    assert!(settled <= budget + reservation);
    // The page shows what is left.
    let (_, mine) = env.alice.call("usage/mine", &[("days", "1")]).await;
    assert_eq!(mine["budgets"][0]["kind"], "tokens");
    assert_eq!(mine["budgets"][0]["limit"], json!(1000.0));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_requests_per_minute_limit_answers_429_with_retry_after(pool: PgPool) {
    let env = env(pool.clone()).await;
    env.set_limits("alice", &[("rpm", "3")]).await;
    for _ in 0..3 {
        let (status, body) = env.chat(&env.key, hello("chat")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let res = env
        .gw(&env.key, "/v1/chat/completions")
        .json(&hello("chat"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        env.upstream.fake.seen().len(),
        3,
        "the refused request never reached the upstream"
    );
    // Another user is not affected.
    let bob = env.server.user(&env.admin, "bob").await;
    let bob_key = create_key(&bob, "k", None).await;
    let (status, _) = env.chat(&bob_key, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);
    // The refusal is in the log too.
    assert_eq!(
        eventually(
            &pool,
            "SELECT count(*) FROM usage_events WHERE status = 429",
            1
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_upstream_5xx_falls_back_and_without_a_fallback_is_a_clean_502(pool: PgPool) {
    let env = env(pool.clone()).await;
    let good = env
        .model(&[("alias", "backup"), ("upstream_model", "ok")])
        .await;
    let good_id = good["id"].as_str().expect("id");
    env.model(&[
        ("alias", "flaky"),
        ("upstream_model", "fail500"),
        ("fallback_id", good_id),
    ])
    .await;
    env.model(&[("alias", "broken"), ("upstream_model", "fail500")])
        .await;
    env.model(&[("alias", "refusing"), ("upstream_model", "unauth")])
        .await;
    // An upstream nobody listens on, falling back too.
    env.model(&[
        ("alias", "offline"),
        ("upstream_model", "ok"),
        ("base_url", "http://127.0.0.1:9/v1"),
        ("fallback_id", good_id),
    ])
    .await;

    let (status, body) = env.chat(&env.key, hello("flaky")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, upstream::chat_answer("ok"));
    let (status, body) = env.chat(&env.key, hello("offline")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = env.chat(&env.key, hello("broken")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["type"], "upstream_error");
    assert!(
        body.to_string().contains("[redacted]"),
        "the echoed key is scrubbed: {body}"
    );
    let (status, body) = env.chat(&env.key, hello("refusing")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("credential")
    );

    assert_eq!(
        eventually(&pool, "SELECT count(*) FROM usage_events", 4).await,
        4
    );
    let served: Vec<(String, i16)> =
        sqlx::query_as("SELECT model_alias, status FROM usage_events ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(
        served[0],
        ("backup".into(), 200),
        "usage is charged to the model that answered"
    );
    assert!(served.contains(&("broken".into(), 502)));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_client_that_disconnects_cancels_the_upstream_request(pool: PgPool) {
    let env = env(pool.clone()).await;
    env.model(&[("alias", "slow"), ("upstream_model", "slow")])
        .await;
    let mut body = hello("slow");
    body["stream"] = json!(true);
    let res = env.send_chat(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let first = stream.next().await.expect("a chunk").expect("bytes");
    assert!(String::from_utf8_lossy(&first).contains("t0"));
    drop(stream);
    let mut cancelled = 0;
    for _ in 0..60 {
        cancelled = env.upstream.fake.cancelled.load(Ordering::SeqCst);
        if cancelled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cancelled, 1,
        "the upstream saw the request go away (well before its 5 s end)"
    );
    assert_eq!(env.upstream.fake.finished.load(Ordering::SeqCst), 0);
    assert_eq!(
        eventually(
            &pool,
            "SELECT count(*) FROM usage_events WHERE status = 499 AND error_code = 'client_closed'",
            1
        )
        .await,
        1
    );
    // What was streamed before the disconnect is still counted.
    let completion: i32 = sqlx::query_scalar("SELECT completion_tokens FROM usage_events")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert!(completion >= 1);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn bad_input_and_bad_upstreams_get_clear_errors(pool: PgPool) {
    let env = env(pool.clone()).await;
    let raw = |body: Vec<u8>| {
        env.gw(&env.key, "/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let check = |res: reqwest::Response, want: StatusCode, code: &'static str| async move {
        assert_eq!(res.status(), want);
        let body: Value = res.json().await.expect("OpenAI-shaped JSON error");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(body["error"]["type"].is_string());
    };
    check(
        raw(b"{not json".to_vec()).await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    check(
        raw(b"[1,2]".to_vec()).await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    check(
        raw(b"{\"messages\":[]}".to_vec()).await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    check(
        raw(b"{\"model\":5}".to_vec()).await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    check(
        raw(b"{\"model\":\"chat\",\"messages\":[{\"content\":\"\xff\xfe\"}]}".to_vec())
            .await
            .expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let huge = format!(
        "{{\"model\":\"chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(9 * 1024 * 1024)
    );
    check(
        raw(huge.into_bytes()).await.expect("send"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
    )
    .await;
    let res = env
        .server
        .client
        .get(env.server.url("/v1/nope"))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("send");
    check(res, StatusCode::NOT_FOUND, "unknown_url").await;
    assert!(
        env.upstream.fake.seen().is_empty(),
        "nothing bad reached the upstream"
    );

    // An upstream that answers garbage: 502, and the reservation is settled (nothing used).
    env.set_limits("alice", &[("budget_tokens", "100000")])
        .await;
    env.model(&[("alias", "garbage"), ("upstream_model", "garbage")])
        .await;
    check(
        env.gw(&env.key, "/v1/chat/completions")
            .json(&hello("garbage"))
            .send()
            .await
            .expect("send"),
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
    )
    .await;

    // A stream that breaks off ends cleanly with an error event and [DONE].
    env.model(&[("alias", "cut"), ("upstream_model", "cut")])
        .await;
    let mut body = hello("cut");
    body["stream"] = json!(true);
    let res = env.send_chat(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("the stream ends cleanly");
    assert!(
        text.starts_with(&upstream::stream_events("cut", false)[0]),
        "{text}"
    );
    assert!(text.contains("\"upstream_error\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    assert_eq!(
        eventually(
            &pool,
            "SELECT count(*) FROM usage_events WHERE status = 502",
            2
        )
        .await,
        2
    );
    // Nothing stays reserved: after the flush, no lease is held beyond what was used.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let leased: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(amount), 0)::bigint FROM quota_leases")
            .fetch_one(&pool)
            .await
            .expect("leases");
    assert_eq!(leased, 0, "idle leases are returned");

    // Embeddings and legacy completions are relayed too.
    let res = env
        .gw(&env.key, "/v1/embeddings")
        .json(&json!({"model": "chat", "input": "hi"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let res = env
        .gw(&env.key, "/v1/completions")
        .json(&json!({"model": "chat", "prompt": "hi"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        env.upstream
            .fake
            .seen()
            .iter()
            .filter(|s| s.path == "/v1/embeddings")
            .count(),
        1
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn credentials_are_write_only_verified_and_not_deleted_while_in_use(pool: PgPool) {
    let env = env(pool.clone()).await;
    let (status, page) = env.admin.call("admin/models", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.to_string().contains(SECRET));
    assert_eq!(
        page["credentials"][0]["hint"],
        format!("…{}", &SECRET[SECRET.len() - 4..])
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM provider_credentials")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "sealed at rest"
    );

    let (status, verified) = env
        .admin
        .call("admin/credentials/verify", &[("id", &env.credential)])
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["verify_ok"], true, "{verified}");
    assert!(
        verified["verify_message"]
            .as_str()
            .expect("m")
            .contains("2 model")
    );
    // A wrong key is reported as refused.
    let (_, wrong) = env
        .admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "wrong"),
                ("secret", "sk-wrong-key-123"),
                ("verify_url", &env.upstream.base_url()),
            ],
        )
        .await;
    let (_, verified) = env
        .admin
        .call(
            "admin/credentials/verify",
            &[("id", wrong["id"].as_str().expect("id"))],
        )
        .await;
    assert_eq!(verified["verify_ok"], false);
    assert!(
        verified["verify_message"]
            .as_str()
            .expect("m")
            .contains("refused")
    );

    let (status, body) = env
        .admin
        .call("admin/credentials/delete", &[("id", &env.credential)])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{body}"
    );
    assert!(body["message"].as_str().expect("m").contains("chat"));
    let (status, _) = env
        .admin
        .call(
            "admin/credentials/delete",
            &[("id", wrong["id"].as_str().expect("id"))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Users cannot see or change any of it.
    let (status, body) = env.alice.call("admin/models", &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ACCESS_DENIED")
    );
    let (status, _) = env
        .alice
        .call(
            "admin/credentials/add",
            &[("name", "x"), ("secret", "y1234567890"), ("verify_url", "")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bad model input is refused with the field named.
    for (field, value, refused) in [
        ("alias", "chat", "alias"),
        ("alias", "x y", "alias"),
        ("base_url", "ftp://x", "base_url"),
        ("price_input", "-1", "price_input"),
        ("visible_users", "nobody", "visible_users"),
    ] {
        let form = [
            ("alias", "z"),
            ("upstream_model", "ok"),
            ("visibility", "users"),
            ("visible_users", "alice"),
            (field, value),
        ];
        let (status, body) = env.try_model(&form).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(refused)),
            "{field}={value}: {body}"
        );
    }
    let models: i64 = sqlx::query_scalar("SELECT count(*) FROM models")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(models, 1, "nothing half-saved");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_runtime_key_is_its_own_users_and_rotation_revokes_the_old_one(pool: PgPool) {
    let env = env(pool.clone()).await;
    let bob = env.server.user(&env.admin, "bob").await;
    drop(bob);
    env.model(&[
        ("alias", "for-bob"),
        ("upstream_model", "ok"),
        ("visibility", "users"),
        ("visible_users", "bob"),
    ])
    .await;
    let sealer = env.server.state.gateway.sealer().clone();
    let id = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE username = $1")
                .bind(name)
                .fetch_one(&pool)
                .await
                .expect("id")
        }
    };
    let (alice_id, bob_id) = (id("alice").await, id("bob").await);
    let mut conn = pool.acquire().await.expect("conn");
    let alice_rt = clawloops_models::keys::runtime_key(&mut conn, &sealer, alice_id, false)
        .await
        .expect("key");
    let again = clawloops_models::keys::runtime_key(&mut conn, &sealer, alice_id, false)
        .await
        .expect("key");
    assert_eq!(
        alice_rt, again,
        "the same key until rotated (the rendered config stays the same)"
    );
    let bob_rt = clawloops_models::keys::runtime_key(&mut conn, &sealer, bob_id, false)
        .await
        .expect("key");
    assert_ne!(alice_rt, bob_rt);
    assert_eq!(
        clawloops_models::registry::visible_aliases(&mut conn, bob_id)
            .await
            .expect("aliases"),
        vec!["chat", "for-bob"]
    );

    let (status, _) = env.chat(&alice_rt, hello("for-bob")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "alice's runtime cannot use bob's model (nor learn that it exists)"
    );
    let (status, _) = env.chat(&bob_rt, hello("for-bob")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.chat(&alice_rt, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        eventually(
            &pool,
            "SELECT count(*) FROM usage_events WHERE key_kind = 'runtime'",
            2
        )
        .await,
        2
    );
    let owners: Vec<(String, String)> = sqlx::query_as(
        "SELECT username, model_alias FROM usage_events WHERE status = 200 ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        owners,
        vec![
            ("bob".into(), "for-bob".into()),
            ("alice".into(), "chat".into())
        ]
    );

    let rotated = clawloops_models::keys::runtime_key(&mut conn, &sealer, alice_id, true)
        .await
        .expect("key");
    env.server.state.gateway.invalidate();
    let (status, body) = env.chat(&alice_rt, hello("chat")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = env.chat(&rotated, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);
    // Runtime keys are not the user's to revoke or see the secret of.
    let (_, mine) = env.alice.call("models/mine", &[]).await;
    assert!(!mine.to_string().contains(&rotated));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_provider_key_never_appears_in_a_response_or_a_log_line(pool: PgPool) {
    let env = env(pool.clone()).await;
    env.model(&[("alias", "broken"), ("upstream_model", "fail500")])
        .await;
    env.model(&[("alias", "refusing"), ("upstream_model", "unauth")])
        .await;
    let mut bodies = Vec::new();
    for model in ["chat", "broken", "refusing", "missing"] {
        for stream in [false, true] {
            let mut body = hello(model);
            body["stream"] = json!(stream);
            let res = env.send_chat(&body).await;
            let headers = format!("{:?}", res.headers());
            bodies.push(headers + &res.text().await.expect("text"));
        }
    }
    let (_, page) = env.admin.call("admin/models", &[]).await;
    bodies.push(page.to_string());
    let (_, verified) = env
        .admin
        .call("admin/credentials/verify", &[("id", &env.credential)])
        .await;
    bodies.push(verified.to_string());
    let csv = env
        .admin
        .client
        .get(format!(
            "{}/admin/usage.csv?from=2000-01-01&to=2100-01-01",
            env.admin.base
        ))
        .send()
        .await
        .expect("csv");
    bodies.push(csv.text().await.expect("text"));
    for body in &bodies {
        assert!(!body.contains(SECRET), "leaked in a response: {body}");
    }
    assert!(
        bodies.iter().any(|b| b.contains("[redacted]")),
        "the upstream did echo the key, and it was scrubbed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("lock")).into_owned();
    assert!(
        logs.len() > 1000,
        "the log was captured ({} bytes)",
        logs.len()
    );
    assert!(!logs.contains(SECRET), "the provider key is in a log line");
    assert!(!logs.contains(&env.key), "a gateway key is in a log line");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn shutting_down_writes_the_queued_usage_and_gives_leases_back(pool: PgPool) {
    let env = env(pool.clone()).await;
    env.set_limits("alice", &[("budget_tokens", "100000")])
        .await;
    for _ in 0..5 {
        let (status, _) = env.chat(&env.key, hello("chat")).await;
        assert_eq!(status, StatusCode::OK);
    }
    // At once, before the writer's next batch: nothing queued is lost.
    env.server.state.gateway.shutdown().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 5);
    let (used, leased): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(used), 0)::bigint FROM quota_usage WHERE quota = 'tokens'),
                (SELECT count(*) FROM quota_leases)",
    )
    .fetch_one(&pool)
    .await
    .expect("quota");
    assert_eq!(
        used,
        5 * (PROMPT_TOKENS + COMPLETION_TOKENS),
        "settled use written"
    );
    assert_eq!(leased, 0, "no lease left behind");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn prometheus_counts_requests_tokens_streams_and_refusals_by_model(pool: PgPool) {
    let env = env(pool.clone()).await;
    for _ in 0..2 {
        let (status, body) = env.chat(&env.key, hello("chat")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut body = hello("chat");
    body["stream"] = json!(true);
    let streamed = env.send_chat(&body).await;
    assert_eq!(streamed.status(), StatusCode::OK);
    streamed.bytes().await.expect("the whole stream");
    // Refused before a model is chosen: counted under model "-".
    let (status, _) = env.chat("clk_not-a-key", hello("chat")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.chat(&env.key, hello("no-such-model")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Every usage row is written before the counters are read.
    assert_eq!(
        eventually(&pool, "SELECT count(*) FROM usage_events", 3).await,
        3
    );

    let text = env.server.get("/metrics").await.text().await.expect("body");
    let has = |line: &str| assert!(text.contains(line), "missing `{line}` in:\n{text}");
    has(r#"clawloops_gateway_requests_total{model="chat",endpoint="chat",status="200"} 3"#);
    has(r#"clawloops_gateway_requests_total{model="-",endpoint="chat",status="401"} 1"#);
    has(r#"clawloops_gateway_requests_total{model="-",endpoint="chat",status="404"} 1"#);
    // The fake upstream reports its usage for each of the three answers.
    has(&format!(
        r#"clawloops_gateway_tokens_total{{model="chat",kind="prompt"}} {}"#,
        3 * upstream::PROMPT_TOKENS
    ));
    has(&format!(
        r#"clawloops_gateway_tokens_total{{model="chat",kind="completion"}} {}"#,
        3 * upstream::COMPLETION_TOKENS
    ));
    has(r#"clawloops_gateway_streams_total{model="chat",outcome="done"} 1"#);
    has(r#"clawloops_gateway_answer_seconds_count{model="chat"} 3"#);
    has(r#"clawloops_gateway_upstream_first_byte_seconds_count{model="chat"} 3"#);
    has("clawloops_gateway_usage_rows_written_total 3");
    has("clawloops_gateway_usage_write_failures_total 0");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_gateway_decides_what_reaches_the_upstream_and_reserves_all_it_may_spend(pool: PgPool) {
    let env = env(pool.clone()).await;
    env.set_limits(
        "alice",
        &[("budget_tokens", "20000"), ("budget_period", "day")],
    )
    .await;
    let refused = |body: Value| {
        let env = &env;
        async move {
            let (status, answer) = env.chat(&env.key, body).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
            assert_eq!(answer["error"]["code"], "budget_exceeded", "{answer}");
        }
    };
    // A max_tokens near i64::MAX must not wrap to a negative worst case (it did: the request
    // passed the budget check); neither may a u64 beyond it.
    for max in [json!(i64::MAX), json!(i64::MAX - 3), json!(u64::MAX)] {
        let mut body = hello("chat");
        body["max_tokens"] = max;
        refused(body).await;
    }
    // n answers cost n times the output: 128 × 200 tokens is over the budget.
    let mut body = hello("chat");
    body["max_tokens"] = json!(200);
    body["n"] = json!(128);
    refused(body).await;
    assert!(
        env.upstream.fake.seen().is_empty(),
        "nothing over the budget reached the upstream"
    );

    // Without a context window or a limit of its own, a request is limited to 4096 output
    // tokens, written into the body; `max_completion_tokens: null` is no limit.
    let (status, _) = env
        .chat(
            &env.key,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Routing, billing and unknown fields stay behind; the stream options are the gateway's.
    let (status, _) = env
        .chat(
            &env.key,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                   "max_completion_tokens": 77, "max_tokens": 9000, "temperature": 0.5,
                   "fallbacks": ["other"], "api_base": "http://127.0.0.1:1", "metadata": {"a": 1},
                   "mock_response": "free", "service_tier": "priority", "user": "alice-tool"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = env
        .send_chat(
            &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                           "stream": true, "stream_options": {"include_usage": false, "x": 1}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("stream");
    let seen = env.upstream.fake.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0].body,
        json!({"model": "ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096})
    );
    assert_eq!(
        seen[1].body,
        json!({"model": "ok", "messages": [{"role": "user", "content": "hi"}],
               "max_completion_tokens": 77, "max_tokens": 77, "temperature": 0.5, "user": "alice-tool"})
    );
    assert_eq!(
        seen[2].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(seen[2].body["max_tokens"], json!(4096));

    // With a context window, a larger limit is cut to it; without a limit none is written
    // (the upstream stops at the window) and the whole window is reserved per answer.
    env.model(&[
        ("alias", "windowed"),
        ("upstream_model", "ok"),
        ("context_window", "8192"),
    ])
    .await;
    let mut body = hello("windowed");
    body["max_tokens"] = json!(1_000_000);
    let (status, _) = env.chat(&env.key, body).await;
    assert_eq!(status, StatusCode::OK);
    let mut body = hello("windowed");
    body.as_object_mut().expect("object").remove("max_tokens");
    body["n"] = json!(2);
    let (status, _) = env.chat(&env.key, body).await;
    assert_eq!(status, StatusCode::OK);
    let mut body = hello("windowed");
    body.as_object_mut().expect("object").remove("max_tokens");
    body["n"] = json!(3);
    refused(body).await; // 3 × 8192 > 20000
    let seen = env.upstream.fake.seen();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[3].body["max_tokens"], json!(8192));
    assert_eq!(seen[4].body.get("max_tokens"), None);
    assert_eq!(seen[4].body["n"], json!(2));

    // Bad accounting fields are the client's mistake: 400 with a message, nothing forwarded.
    for (field, value) in [
        ("max_tokens", json!(-5)),
        ("max_tokens", json!(0)),
        ("max_tokens", json!("many")),
        ("n", json!(0)),
        ("n", json!(1000)),
        ("stream", json!("yes")),
    ] {
        let mut body = hello("chat");
        body[field] = value.clone();
        let (status, answer) = env.chat(&env.key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{answer}"
        );
    }
    assert_eq!(env.upstream.fake.seen().len(), 5);
}

/// The quota layer, as a property over random mixes of concurrent requests on two replicas
/// (real PostgreSQL; cases are generated by proptest, without shrinking, since each runs async):
/// settled use never exceeds the limit by more than what admitted requests used beyond their
/// reservations, every settlement reaches the database, and negative amounts are refused.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn quota_totals_stay_within_the_limit_for_any_mix_of_concurrent_requests(pool: PgPool) {
    use clawloops_server::gateway::catalog::Limits;
    use clawloops_server::gateway::quota::{Amount, QuotaError, Quotas};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    let replicas = [
        Arc::new(Quotas::new(pool.clone())),
        Arc::new(Quotas::new(pool.clone())),
    ];
    // (limit, requests: (worst, share of it used — above 1 is a request that used more than
    // it reserved —, replica))
    let strategy = (
        1i64..4000,
        proptest::collection::vec((1i64..700, 0u32..=120, 0usize..2), 1..48),
    );
    let mut runner = TestRunner::deterministic();
    for case in 0..20 {
        let (limit, requests) = strategy.new_tree(&mut runner).expect("case").current();
        let user = uuid::Uuid::new_v4();
        let limits = Limits {
            budget_tokens: Some(limit),
            monthly: false,
            ..Limits::default()
        };
        let mut tasks = Vec::new();
        for (i, (worst, share, replica)) in requests.iter().copied().enumerate() {
            let quotas = replicas[replica].clone();
            let limits = limits.clone();
            tasks.push(tokio::spawn(async move {
                let amount = Amount {
                    tokens: worst,
                    cost_nano: 0,
                };
                match quotas.reserve(user, &limits, amount).await {
                    Ok(reservation) => {
                        // Requests overlap: some settle at once, some a little later.
                        tokio::time::sleep(Duration::from_millis((i % 4) as u64)).await;
                        let used = worst * i64::from(share) / 100;
                        reservation.settle(Amount {
                            tokens: used,
                            cost_nano: 0,
                        });
                        Some((used, (used - worst).max(0)))
                    }
                    Err(QuotaError::Denied(_)) => None,
                    Err(err) => panic!("reserve: {err}"),
                }
            }));
        }
        let mut used = 0;
        let mut beyond = 0;
        for task in tasks {
            if let Some((u, b)) = task.await.expect("task") {
                used += u;
                beyond += b;
            }
        }
        for quotas in &replicas {
            quotas.flush().await.expect("flush");
        }
        let settled: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(used), 0)::bigint FROM quota_usage WHERE user_id = $1 AND quota = 'tokens'",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .expect("settled");
        let what = format!("case {case}: limit {limit}, {requests:?}");
        assert_eq!(settled, used, "every settlement is written: {what}");
        assert!(
            settled <= limit + beyond,
            "settled {settled} > limit {limit} + overuse {beyond}: {what}"
        );
    }
    let negative = Amount {
        tokens: -1,
        cost_nano: 0,
    };
    let limits = Limits {
        budget_tokens: Some(10),
        ..Limits::default()
    };
    assert!(matches!(
        replicas[0]
            .reserve(uuid::Uuid::new_v4(), &limits, negative)
            .await,
        Err(QuotaError::Negative)
    ));
}

/// Junk keys cost the database as little as possible: a key of the wrong shape none, the same
/// unknown key once (until keys change), and a key made meanwhile works at once.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn junk_keys_are_refused_with_at_most_one_query_each(pool: PgPool) {
    let env = env(pool.clone()).await;
    let count = |text: &str, outcome: &str| {
        let prefix = format!("clawloops_gateway_key_checks_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse::<u64>().expect("count"))
    };
    let metrics = || async { env.server.get("/metrics").await.text().await.expect("body") };
    // The setup's change notes reach the gateway a moment later and empty its caches. Wait
    // until it has read them all: it has refreshed after a change made now (the model renamed
    // in the database) and no further refresh follows.
    let refreshes = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("clawloops_gateway_change_refreshes_total "))
            .map_or(0, |n| n.parse::<u64>().expect("count"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The listener's own first refresh (when it connects) comes first.
    while refreshes(&metrics().await) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = refreshes(&metrics().await);
    sqlx::query("UPDATE models SET alias = 'chat-now' WHERE alias = 'chat'")
        .execute(&pool)
        .await
        .expect("rename");
    // Refreshed since, and then quiet for a while: no note of the setup is still on its way.
    loop {
        let now = refreshes(&metrics().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if now > seen && refreshes(&metrics().await) == now {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change note never arrived"
        );
    }
    // The user's key, looked up once after the refresh.
    let (status, _) = env.chat(&env.key, hello("chat-now")).await;
    assert_eq!(status, StatusCode::OK);
    let before = metrics().await;
    for junk in [
        "sk-not-ours",
        "clk_short",
        "clk_has spaces and is far too long to be any key",
    ] {
        let (status, body) = env.chat(junk, hello("chat")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    // The shape of a real key, but no such key: looked up once, then answered from memory.
    let unknown = format!("clk_{}", "A".repeat(43));
    for _ in 0..3 {
        let (status, _) = env.chat(&unknown, hello("chat")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The user's real key: looked up when the models were listed above, then cached.
    for _ in 0..2 {
        let (status, _) = env.chat(&env.key, hello("chat-now")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let text = metrics().await;
    let added = |outcome: &str| count(&text, outcome) - count(&before, outcome);
    assert_eq!(added("malformed"), 3, "{text}");
    assert_eq!(added("unknown"), 1, "{text}");
    assert_eq!(added("cached_unknown"), 2, "{text}");
    assert_eq!(added("looked_up"), 0, "{text}");
    assert_eq!(added("cached"), 2, "{text}");
    // A key made now works at once (a key change clears what was remembered).
    let fresh = create_key(&env.alice, "new", None).await;
    let (status, _) = env.chat(&fresh, hello("chat-now")).await;
    assert_eq!(status, StatusCode::OK);
}

/// Uncached key lookups take a slot each (`gateway_key_lookups`); with every slot held, a junk
/// key waits at most 2 s and is told to come back (503 with Retry-After) instead of queueing on
/// the database pool.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn key_lookups_beyond_their_slots_are_told_to_come_back(pool: PgPool) {
    let server = TestServer::start_with(pool.clone(), |s| s.gateway.key_lookups = 1).await;
    // Hold the keys table so that the one lookup in flight cannot finish.
    let mut lock = pool.begin().await.expect("tx");
    sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let ask = |key: String| {
        server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&hello("chat"))
            .send()
    };
    let first = tokio::spawn(ask(format!("clk_{}", "B".repeat(43))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let res = ask(format!("clk_{}", "C".repeat(43))).await.expect("send");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "gateway_busy", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after its wait"
    );
    // A key of the wrong shape needs no slot at all.
    let res = ask("sk-junk".into()).await.expect("send");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    lock.rollback().await.expect("unlock");
    let res = first.await.expect("task").expect("send");
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the held lookup ends normally"
    );
}

/// One key may have `gateway_key_concurrency` requests in flight (streams until they end); the
/// next gets 429 at once, and a place frees as soon as a request ends, however it ends.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_key_has_a_bounded_number_of_requests_in_flight(pool: PgPool) {
    let env = env_with(pool.clone(), |s| s.gateway.key_concurrency = 2).await;
    env.model(&[("alias", "slow"), ("upstream_model", "slow")])
        .await;
    let mut body = hello("slow");
    body["stream"] = json!(true);
    let first = env.send_chat(&body).await;
    let second = env.send_chat(&body).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let (status, answer) = env.chat(&env.key, hello("chat")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_concurrent_requests");
    // Another key of the same user is not held back by this one.
    let other = create_key(&env.alice, "other", None).await;
    let (status, _) = env.chat(&other, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);
    // A stream the client leaves frees its place.
    drop(first);
    let mut freed = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..60 {
        freed = env.chat(&env.key, hello("chat")).await.0;
        if freed == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        freed,
        StatusCode::OK,
        "the place of the stream that went away was freed"
    );
    drop(second);
}
