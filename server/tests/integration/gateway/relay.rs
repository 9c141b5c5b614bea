//! A request's way through: relayed with the provider key, streams byte for byte, fallback, and a client
//! that goes away.

use super::*;

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
            i32::try_from(PROMPT_TOKENS).expect("small"),
            i32::try_from(COMPLETION_TOKENS).expect("small"),
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
            i32::try_from(PROMPT_TOKENS).expect("small"),
            i32::try_from(COMPLETION_TOKENS).expect("small"),
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
