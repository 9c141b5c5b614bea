//! Limits across replicas: token budgets, requests per minute, the quota property, and leases given
//! back at shutdown.

use super::*;

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
    let reservation =
        i64::try_from(serde_json::to_vec(&body).expect("json").len() + 50).expect("small");
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
            period: clawloops_models::budget::Period::Day,
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
