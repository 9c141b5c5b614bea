//! Who may call: models by visibility, keys that may not be used, runtime keys and their rotation.

use super::*;

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
