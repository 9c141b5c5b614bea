//! The real LiteLLM proxy as a registered upstream: a user's key → ClawLoops' gateway → LiteLLM
//! → the in-suite fake provider, streamed and not, with usage recorded. LiteLLM is installed by
//! `scripts/test.sh` (pinned in deploy/litellm/requirements.lock) and named by `LITELLM_BIN`.

use crate::support::TestServer;
use crate::support::litellm::LiteLlm;
use crate::support::upstream::{self, COMPLETION_TOKENS, PROMPT_TOKENS};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

const PROVIDER_KEY: &str = "sk-provider-behind-litellm-91ac";
const MASTER_KEY: &str = "sk-litellm-master-for-tests";

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_chat_goes_through_litellm_streamed_and_not_and_its_usage_is_recorded(pool: PgPool) {
    let provider = upstream::start(Some(PROVIDER_KEY)).await;
    let litellm = LiteLlm::start(&provider.base_url(), PROVIDER_KEY, MASTER_KEY, "127.0.0.1").await;
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let alice = server.user(&admin, "alice").await;

    let (status, cred) = admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "litellm"),
                ("secret", MASTER_KEY),
                ("verify_url", &litellm.base_url),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cred}");
    let (_, verified) = admin
        .call(
            "admin/credentials/verify",
            &[("id", cred["id"].as_str().expect("id"))],
        )
        .await;
    assert_eq!(
        verified["verify_ok"], true,
        "LiteLLM accepted the master key: {verified}"
    );
    // A ClawLoops model in front of one of LiteLLM's deployments.
    let save_model = |alias: &'static str, deployment: &'static str, default: &'static str| {
        let admin = &admin;
        let base_url = litellm.base_url.clone();
        let credential = cred["id"].as_str().expect("id").to_owned();
        async move {
            let (status, model) = admin
                .call(
                    "admin/models/save",
                    &[
                        ("form[alias]", alias),
                        ("form[upstream_kind]", "litellm"),
                        ("form[base_url]", &base_url),
                        ("form[upstream_model]", deployment),
                        ("form[credential_id]", &credential),
                        ("form[enabled]", "true"),
                        ("form[visibility]", "everyone"),
                        ("form[is_default]", default),
                        ("form[price_input]", "1"),
                        ("form[price_output]", "2"),
                    ],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{model}");
        }
    };
    save_model("team-chat", "fake-chat", "true").await;
    let (_, key) = alice.call("keys/create", &[("name", "tool")]).await;
    let key = key["secret"].as_str().expect("secret").to_owned();
    let chat = |stream: bool| {
        server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "team-chat", "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]}))
            .send()
    };

    // Not streamed.
    let res = chat(false).await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["choices"][0]["message"]["content"], "Hello there",
        "{body}"
    );

    // Streamed: the deltas arrive as SSE and end with [DONE].
    let res = chat(true).await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let text = res.text().await.expect("stream");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Hello thereünïcødé ✓", "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // The provider saw its own key only, never the master key or the user's.
    let seen = provider.fake.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
    }
    assert_eq!(
        seen[1].body["stream_options"]["include_usage"], true,
        "the gateway asked for the usage chunk through LiteLLM"
    );

    // Both requests are in the usage log with the provider's token counts.
    let mut rows: Vec<(bool, i32, i32, bool, i16, String)> = Vec::new();
    for _ in 0..100 {
        rows = sqlx::query_as("SELECT stream, prompt_tokens, completion_tokens, estimated, status, model_alias FROM usage_events ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = |stream| {
        (
            stream,
            i32::try_from(PROMPT_TOKENS).expect("small"),
            i32::try_from(COMPLETION_TOKENS).expect("small"),
            false,
            200,
            "team-chat".to_owned(),
        )
    };
    assert_eq!(rows, vec![expected(false), expected(true)]);

    // LiteLLM honours request-level routing for the credential it is called with: a client
    // naming fallbacks would, when its model fails, get an answer from a deployment no ClawLoops
    // model names (and no price covers). The gateway forwards only the endpoint's own fields.
    save_model("team-flaky", "flaky-chat", "false").await;
    let res = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "team-flaky", "messages": [{"role": "user", "content": "Say hello"}],
                      "fallbacks": ["pricey-chat"], "context_window_fallback_dict": {"flaky-chat": "pricey-chat"},
                      "metadata": {"tags": ["x"]}, "num_retries": 0}))
        .send()
        .await
        .expect("send");
    let status = res.status();
    let body = res.text().await.expect("body");
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "the model failed, nothing else answered: {body}"
    );
    let models: Vec<String> = provider
        .fake
        .seen()
        .iter()
        .map(|s| s.body["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(models.contains(&"fail500".to_owned()), "{models:?}");
    assert!(
        !models.contains(&"pricey".to_owned()),
        "a client-side fallback was honoured: {models:?}"
    );
}
