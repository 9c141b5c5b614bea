//! Keys under load: junk keys cost little, lookups beyond their slots come back later, and a key's
//! requests in flight are bounded.

use super::*;

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
