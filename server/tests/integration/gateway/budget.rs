//! One budget for model requests and runtime time: the default budget applies to everyone
//! without one, runtime time charged by the meter counts against it with requests, and an admin
//! can reset it or exempt a user; bad input is refused field by field.

use super::*;
use clawloops_models::budget::{self, Period};

/// Charges runtime time to `user` as the meter does.
async fn charge_runtime_time(pool: &PgPool, user: &str, nano: i64) {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .expect("user");
    let mut conn = pool.acquire().await.expect("conn");
    let period = budget::standing(&mut conn, id, time::OffsetDateTime::now_utc())
        .await
        .expect("standing")
        .map_or(Period::Month, |s| s.period);
    budget::charge_compute(&mut conn, id, period, time::OffsetDateTime::now_utc(), nano)
        .await
        .expect("charge");
}

/// Chats until the gateway answers `want` (a replica gives back an idle lease within seconds,
/// so a refusal may come a flush after the budget was used up elsewhere).
async fn chat_until(env: &Env, want: StatusCode) -> Value {
    let mut last = Value::Null;
    for _ in 0..40 {
        let (status, body) = env.chat(&env.key, hello("chat")).await;
        if status == want {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the gateway never answered {want}: {last}");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn runtime_time_and_requests_share_one_budget_that_admins_reset_and_exempt(pool: PgPool) {
    let env = env(pool.clone()).await;
    let (status, body) = env
        .admin
        .call(
            "admin/budget/default/set",
            &[("usd", "1"), ("period", "week")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"usd": "1", "period": "week"}));
    let (status, _) = env.chat(&env.key, hello("chat")).await;
    assert_eq!(status, StatusCode::OK);

    // Runtime time alone nearly uses up the default budget; the dashboard warns, then refuses.
    charge_runtime_time(&pool, "alice", 850_000_000).await;
    let (status, mine) = env.alice.call("budget/mine", &[]).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["period"], "week");
    assert_eq!(mine["limit_usd"], 1.0);
    assert_eq!(mine["from_default"], true);
    assert!(mine["compute_usd"].as_f64() == Some(0.85), "{mine}");
    assert!(
        mine["spent_usd"]
            .as_f64()
            .is_some_and(|s| (0.85..0.9).contains(&s)),
        "{mine}"
    );
    charge_runtime_time(&pool, "alice", 150_000_000).await;
    let refused = chat_until(&env, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(refused["error"]["code"], "budget_exceeded", "{refused}");
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("Budget used up: $1.00 per week for model requests and runtime time together. It renews in"),
        "{message}"
    );

    // The admin's list says what applies and what was spent, runtime time apart.
    let (status, limits) = env.admin.call("admin/limits", &[]).await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    let alice = limits
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["username"] == "alice"))
        .expect("alice");
    assert_eq!(alice["effective_usd"], 1.0, "{alice}");
    assert_eq!(alice["effective_period"], "week");
    assert_eq!(alice["from_default"], true);
    assert_eq!(alice["used_compute_usd"], 1.0);

    // A reset starts the period over: requests go through again; the audit log says who.
    let id = env.admin.user_id("alice").await;
    let (status, spent) = env
        .admin
        .call("admin/budget/reset", &[("user_id", &id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{spent}");
    assert!(spent.as_f64().is_some_and(|s| s >= 1.0), "{spent}");
    chat_until(&env, StatusCode::OK).await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'budget.reset' AND subject_name = 'alice'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);

    // Exempt: far over the budget, and still served.
    env.set_limits("alice", &[("budget_exempt", "true")]).await;
    charge_runtime_time(&pool, "alice", 5_000_000_000).await;
    chat_until(&env, StatusCode::OK).await;
    let (_, mine) = env.alice.call("budget/mine", &[]).await;
    assert_eq!(mine, Value::Null, "no budget applies to an exempt user");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn budget_and_price_forms_refuse_bad_input_field_by_field(pool: PgPool) {
    let env = env(pool.clone()).await;
    for (usd, period, field) in [
        ("-1", "week", "usd"),
        ("0", "week", "usd"),
        ("1", "fortnight", "period"),
    ] {
        let (status, body) = env
            .admin
            .call(
                "admin/budget/default/set",
                &[("usd", usd), ("period", period)],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{usd} {period}: {body}"
        );
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = env
        .admin
        .call(
            "admin/budget/reset",
            &[("user_id", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let class =
        |name: &'static str, memory: &'static str, cpus: &'static str, price: &'static str| {
            vec![
                ("form[name]", name),
                ("form[memory_mb]", memory),
                ("form[cpus]", cpus),
                ("form[price_per_hour]", price),
            ]
        };
    for (form, field) in [
        (class("Big GPU", "4096", "2", "1"), "name"),
        (class("gpu", "12", "2", "1"), "memory_mb"),
        (class("gpu", "4096", "NaN", "1"), "cpus"),
        (class("gpu", "4096", "2", ""), "price_per_hour"),
        (class("gpu", "4096", "2", "-1"), "price_per_hour"),
    ] {
        let (status, body) = env.admin.call("admin/compute/save", &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, prices) = env
        .admin
        .call("admin/compute/save", &class("gpu", "65536", "32", "2.40"))
        .await;
    assert_eq!(status, StatusCode::OK, "{prices}");
    let gpu = prices["classes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "gpu"))
        .expect("gpu");
    assert_eq!(gpu["price_per_hour"], "2.4");
    assert_eq!(prices["default_class"], "small", "{prices}");
    let (status, _) = env
        .alice
        .call("admin/compute/save", &class("x", "4096", "2", "1"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
    let (status, body) = env
        .admin
        .call("admin/compute/delete", &[("name", "nope")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
