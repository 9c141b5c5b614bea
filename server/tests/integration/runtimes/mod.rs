//! Runtimes through the app's server functions, with the real Docker engine (stub image).

use crate::support::{TestServer, code};
use serde_json::Value;
use sqlx::PgPool;
use std::time::{Duration, Instant};

mod keys_and_limits;
mod split_mode;

/// Polls `runtime/mine` until `done` holds for the card (or fails after 40 s).
async fn wait_for(
    browser: &crate::support::Browser,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    crate::support::card_until(browser, what, Duration::from_secs(40), done).await
}

/// Waits (at most 40 s) until `username`'s runtime is wanted and seen stopped.
async fn wait_stopped(pool: &PgPool, username: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while binding(pool, username).await != Some(("stopped".into(), "stopped".into())) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            binding(pool, username).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn binding(pool: &PgPool, username: &str) -> Option<(String, String)> {
    sqlx::query_as("SELECT desired_state, observed_state FROM runtimes WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await
        .expect("query")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_user_starts_and_stops_their_runtime_and_admins_see_it(pool: PgPool) {
    let server = TestServer::with_stub_runtimes(pool.clone()).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;

    let (status, card) = bob.call("runtime/mine", &[]).await;
    assert_eq!(
        (status.as_u16(), card.clone()),
        (200, Value::Null),
        "no runtime before the first start"
    );
    let (status, card) = bob.call("runtime/command", &[("command", "start")]).await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["desired"], "running");
    let card = wait_for(&bob, "running", |c| {
        c["observed"] == "running" && c["task_status"] == "succeeded"
    })
    .await;
    let stages: Vec<&str> = card["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(stages.last(), Some(&"healthy"), "{card}");
    assert!(
        card.to_string().find("gateway_token").is_none(),
        "no secret in the card"
    );

    let (status, list) = admin.call("admin/runtimes/list", &[]).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["username"], "bob");
    let bob_id = list[0]["user_id"].as_str().expect("id").to_owned();
    let (status, details) = admin
        .call("admin/runtimes/details", &[("user_id", &bob_id)])
        .await;
    assert_eq!(status, 200, "{details}");
    assert!(
        details["logs"]
            .to_string()
            .contains("listening on port 18789"),
        "{details}"
    );
    assert!(
        details["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{details}"
    );

    let (status, _) = bob.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(status, 200);
    wait_for(&bob, "stopped", |c| c["observed"] == "stopped").await;
    let (_, audit) = admin
        .call(
            "admin/audit",
            &[("query[action]", "runtime"), ("query[page]", "1")],
        )
        .await;
    assert_eq!(audit["total"], 2, "start and stop audited: {audit}");
    server.remove_docker_objects();
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn disabling_a_user_stops_their_runtime_and_deleting_removes_it(pool: PgPool) {
    let server = TestServer::with_stub_runtimes(pool.clone()).await;
    let admin = server.admin("root").await;
    let eve = server.user(&admin, "eve").await;
    eve.call("runtime/command", &[("command", "start")]).await;
    wait_for(&eve, "running", |c| c["observed"] == "running").await;
    let eve_id = admin.user_id("eve").await;

    let (status, body) = admin
        .call(
            "admin/users/status",
            &[("id", &eve_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_stopped(&pool, "eve").await;

    let (status, body) = admin.call("admin/users/delete", &[("id", &eve_id)]).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while binding(&pool, "eve").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "runtime not removed: {:?}",
            binding(&pool, "eve").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let volumes = clawloops_testkit::labelled(
        &["volume", "ls"],
        &server.instance.to_string(),
        Some("org.clawloops.runtime=rt-eve"),
    );
    assert_eq!(
        volumes,
        Vec::<String>::new(),
        "workspace wiped with the account"
    );
    server.remove_docker_objects();
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn runtime_calls_check_access_and_input(pool: PgPool) {
    let server = TestServer::with_stub_runtimes(pool).await;
    let (status, body) = server.browser().call("runtime/mine", &[]).await;
    assert_eq!((status.as_u16(), code(&body)), (401, "UNAUTHENTICATED"));
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let (status, body) = bob.call("admin/runtimes/list", &[]).await;
    assert_eq!((status.as_u16(), code(&body)), (403, "ACCESS_DENIED"));
    let (status, _) = bob.call("runtime/command", &[("command", "explode")]).await;
    assert_eq!(status, 422, "unknown command");
    let (status, body) = bob.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (404, "NOT_FOUND"),
        "nothing to stop: {body}"
    );
    let (status, body) = admin
        .call(
            "admin/runtimes/command",
            &[
                ("user_id", &uuid::Uuid::new_v4().to_string()),
                ("command", "start"),
            ],
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (404, "NOT_FOUND"), "{body}");
    server.remove_docker_objects();
}

/// A `clawloops runtime-manager` process, stopped when dropped.
struct ManagerProcess {
    child: std::process::Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MANAGER_SECRET: &str = "split-mode-secret-0123456789abcdef0123";
