//! Secrets and what is counted: credentials are write-only, the provider key never comes back out,
//! and Prometheus counts by model.

use super::*;

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
