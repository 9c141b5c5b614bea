//! What a request may ask: bad input and bad upstreams get clear errors, and the gateway decides what
//! reaches the upstream and reserves all it may spend.

use super::*;

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
