//! The runaway-agent breaker against the fake upstream and a real runtime container: an agent
//! looping on the gateway with its runtime key trips it; the key is refused and the container
//! frozen; the owner and admins see why (dashboard, audit log, webhook); the owner resumes after
//! the cooldown, an admin at once. A loop spread over two replicas trips once.

use super::*;
use crate::support::{card_until, use_stub_runtimes};
use std::process::Command;
use std::sync::Mutex;

/// Docker's own word on whether the container is frozen.
fn frozen(container: &str) -> bool {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Paused}}", container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim() == "true"
}

/// A webhook receiver on loopback: the bodies posted to it.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let seen = seen.clone();
            move |axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").push(body);
                    "ok"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// Saves the breaker's rules: the defaults with `fields` overridden.
async fn rules(admin: &Browser, fields: &[(&str, &str)]) -> Value {
    let defaults = [
        ("enabled", "true"),
        ("spend_per_minute", "0.50"),
        ("sustained_minutes", "5"),
        ("requests_per_minute", "120"),
        ("repeats", "20"),
        ("repeat_window_secs", "120"),
        ("errors", "30"),
        ("error_window_secs", "60"),
        ("cooldown_minutes", "10"),
    ];
    let (status, body) = admin
        .call_form("admin/breaker/save", &defaults, fields)
        .await;
    assert_eq!(status, StatusCode::OK, "save rules: {body}");
    body
}

/// Sends the same request until the gateway refuses it; how many were answered before.
async fn loop_until_refused(env: &Env, key: &str, most: usize) -> (usize, Value) {
    for sent in 0..most {
        let (status, body) = env.chat(key, hello("chat")).await;
        if status == StatusCode::FORBIDDEN {
            return (sent, body);
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    panic!("the breaker never tripped within {most} requests");
}

async fn audit_actions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'breaker.%' ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("audit")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_looping_agent_is_paused_at_once_and_resumed_by_its_owner_or_an_admin(pool: PgPool) {
    let env = env_with(pool.clone(), use_stub_runtimes).await;
    let (hook, posted) = webhook().await;
    // Bad rules are refused field by field, and nothing changes.
    let (status, body) = env
        .admin
        .call(
            "admin/breaker/save",
            &[
                ("form[sustained_minutes]", "0"),
                ("form[repeat_window_secs]", "120"),
                ("form[error_window_secs]", "60"),
                ("form[cooldown_minutes]", "10"),
            ],
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "VALIDATION"),
        "{body}"
    );
    assert!(body.to_string().contains("from 1 to 60"), "{body}");
    let (status, body) = env
        .admin
        .call("admin/breaker/save", &[("form[webhook_url]", "ftp://x")])
        .await;
    assert_eq!(status.as_u16(), 422, "{body}");
    let (_, overview) = env.admin.call("admin/breaker", &[]).await;
    assert_eq!(
        overview["rules"]["repeats"], "20",
        "defaults kept: {overview}"
    );
    let (status, _) = env.alice.call("admin/breaker", &[]).await;
    assert_eq!(status.as_u16(), 403, "rules are for admins");
    rules(&env.admin, &[("repeats", "10"), ("webhook_url", &hook)]).await;

    env.alice
        .call("runtime/command", &[("command", "start")])
        .await;
    let card = card_until(&env.alice, "running", Duration::from_secs(60), |c| {
        c["observed"] == "running"
    })
    .await;
    let alice_id = env.admin.user_id("alice").await;
    let runtime_key = {
        let mut conn = pool.acquire().await.expect("conn");
        clawloops_models::keys::runtime_key(
            &mut conn,
            env.server.state.app.sealer(),
            alice_id.parse().expect("id"),
            false,
        )
        .await
        .expect("runtime key")
    };
    let container: String = sqlx::query_scalar("SELECT container_id FROM runtimes")
        .fetch_one(&pool)
        .await
        .expect("container");
    assert!(!frozen(&container), "{card}");

    // The agent sends the same request again and again: the tenth trips the breaker, and the
    // key is refused from the next request on.
    let (answered, refused) = loop_until_refused(&env, &runtime_key, 15).await;
    assert_eq!(answered, 10, "refused right after the tripping request");
    assert_eq!(refused["error"]["code"], "agent_paused", "{refused}");
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("runaway-agent breaker") && message.contains("the same request 10 times"),
        "{message}"
    );
    // The container is frozen within moments; its owner's personal key still works.
    card_until(&env.alice, "paused", Duration::from_secs(5), |c| {
        c["observed"] == "paused"
    })
    .await;
    assert!(frozen(&container), "Docker froze the runtime");
    let (status, _) = env.chat(&env.key, hello("chat")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "personal keys are not counted by default"
    );
    let trips: i64 = sqlx::query_scalar("SELECT count(*) FROM breaker_trips")
        .fetch_one(&pool)
        .await
        .expect("trips");
    assert_eq!(trips, 1);

    // The owner sees why; a start is refused; the cooldown holds the owner back, not an admin.
    let (status, mine) = env.alice.call("breaker/mine", &[]).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["rule"], "repeats");
    assert_eq!(mine["key_kind"], "runtime");
    let (status, body) = env
        .alice
        .call("runtime/command", &[("command", "start")])
        .await;
    assert_eq!(status.as_u16(), 409, "{body}");
    assert!(body.to_string().contains("Resume it first"), "{body}");
    let (status, body) = env.alice.call("breaker/resume", &[]).await;
    assert_eq!((status.as_u16(), code(&body)), (409, "CONFLICT"), "{body}");
    assert!(body.to_string().contains("cooldown"), "{body}");
    let posted_now = posted.lock().expect("lock").clone();
    assert_eq!(posted_now.len(), 1, "one webhook post: {posted_now:?}");
    assert_eq!(posted_now[0]["user"], "alice");
    assert_eq!(posted_now[0]["rule"], "repeats");
    assert!(!posted_now[0].to_string().contains(&runtime_key));

    let (status, said) = env
        .admin
        .call("admin/breaker/resume", &[("user_id", &alice_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert!(
        said.as_str().is_some_and(|s| s.contains("runs again")),
        "{said}"
    );
    assert!(!frozen(&container), "thawed");
    card_until(&env.alice, "running", Duration::from_secs(5), |c| {
        c["observed"] == "running"
    })
    .await;
    let (status, _) = env.chat(&runtime_key, hello("chat")).await;
    assert_eq!(status, StatusCode::OK, "the key works again");
    let (_, mine) = env.alice.call("breaker/mine", &[]).await;
    assert_eq!(mine, Value::Null);

    // With no cooldown the owner resumes by themselves.
    rules(&env.admin, &[("repeats", "10"), ("cooldown_minutes", "0")]).await;
    let (answered, _) = loop_until_refused(&env, &runtime_key, 15).await;
    assert_eq!(answered, 9, "the request before the resume counts too");
    card_until(&env.alice, "paused", Duration::from_secs(5), |c| {
        c["observed"] == "paused"
    })
    .await;
    let (status, said) = env.alice.call("breaker/resume", &[]).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert!(!frozen(&container));
    assert_eq!(
        audit_actions(&pool).await,
        [
            "breaker.rules",
            "breaker.tripped",
            "breaker.resumed",
            "breaker.rules",
            "breaker.tripped",
            "breaker.resumed"
        ]
    );
    env.server.remove_docker_objects();
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_loop_spread_over_two_replicas_trips_once(pool: PgPool) {
    let env = env(pool.clone()).await;
    rules(
        &env.admin,
        &[
            ("requests_per_minute", "10"),
            ("include_personal_keys", "true"),
        ],
    )
    .await;
    // A second replica: the same database and key file.
    let shared = std::env::temp_dir()
        .join(format!("clawloops-test-{}", env.server.addr.port()))
        .join("secret.key");
    let other = TestServer::start_with(pool.clone(), |s| s.secret_key_file = shared.clone()).await;
    // Both replicas apply the rules before the loop starts.
    for server in [&env.server, &other] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !server
            .state
            .gateway
            .breaker
            .settings()
            .rules
            .include_personal_keys
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the rules never reached a replica"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let via = |server: &TestServer, n: usize| {
        let client = server.client.clone();
        let url = server.url("/v1/chat/completions");
        let key = env.key.clone();
        async move {
            let mut statuses = Vec::new();
            for i in 0..n {
                let body = json!({"model": "chat", "messages": [{"role": "user", "content": format!("step {i}")}]});
                let res = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .expect("send");
                statuses.push(res.status().as_u16());
            }
            statuses
        }
    };
    // Six on each replica: neither alone is over ten a minute, together they are.
    let (a, b) = tokio::join!(via(&env.server, 6), via(&other, 6));
    // Only an eleventh answered request can trip it (a share may land before the twelfth).
    let answered = a.iter().chain(&b).filter(|s| **s == 200).count();
    assert!(answered >= 11, "{a:?} {b:?}");
    // No further request: the replicas' shared seconds alone trip it, within about a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let trips = loop {
        let trips: Vec<(String, String)> =
            sqlx::query_as("SELECT rule, key_kind FROM breaker_trips")
                .fetch_all(&pool)
                .await
                .expect("trips");
        if !trips.is_empty() {
            break trips;
        }
        assert!(std::time::Instant::now() < deadline, "never tripped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(trips, [("request_rate".to_owned(), "personal".to_owned())]);
    // Each replica refuses the key once the change note reached it.
    for server in [&env.server, &other] {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let res = server
                .client
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&env.key)
                .json(&hello("chat"))
                .send()
                .await
                .expect("send");
            let status = res.status();
            let body: Value = res.json().await.expect("json");
            if status == StatusCode::FORBIDDEN {
                assert_eq!(body["error"]["code"], "agent_paused", "{body}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still answered: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
