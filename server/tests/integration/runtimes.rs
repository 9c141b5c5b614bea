//! Runtimes through the app's server functions, with the real Docker engine (stub image).

use crate::support::{TestServer, code};
use serde_json::Value;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// Polls `runtime/mine` until `done` holds for the card (or fails after 40 s).
async fn wait_for(
    browser: &crate::support::Browser,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, card) = browser.call("runtime/mine", &[]).await;
        assert_eq!(status, 200, "{card}");
        if done(&card) {
            return card;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {card}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    server.remove_docker_objects().await;
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
    server.remove_docker_objects().await;
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
    server.remove_docker_objects().await;
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

async fn spawn_runtime_manager() -> ManagerProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = tempfile::tempdir().expect("tempdir");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_clawloops"))
        .arg("runtime-manager")
        .env(
            "CLAWLOOPS_RUNTIME_MANAGER_LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .env("CLAWLOOPS_RUNTIME_MANAGER_SECRET", MANAGER_SECRET)
        // The manager runs runtimes as its own settings say: the stub, as the control plane
        // of these tests asks for.
        .env("CLAWLOOPS_RUNTIME_PROFILE", "stub")
        .env("CLAWLOOPS_RUNTIME_IMAGE", clawloops_testkit::stub_image())
        .env("CLAWLOOPS_DATA_DIR", data.path())
        .env_remove("CLAWLOOPS_RUNTIME_MANAGER_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start clawloops runtime-manager");
    let manager = ManagerProcess {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}healthz", manager.url))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the runtime manager never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    manager
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn in_split_mode_the_control_plane_drives_runtimes_through_the_runtime_manager(pool: PgPool) {
    let manager = spawn_runtime_manager().await;
    let url: url::Url = manager.url.parse().expect("url");
    let manager_port = url.port().expect("port").to_string();
    let server = TestServer::start_with(pool.clone(), |settings| {
        crate::support::use_stub_runtimes(settings);
        settings.runtime.manager.url = Some(url);
        settings.runtime.manager.secret = Some(MANAGER_SECRET.to_owned().into());
    })
    .await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    bob.call("runtime/command", &[("command", "start")]).await;
    let card = wait_for(&bob, "running", |c| {
        c["observed"] == "running" && c["task_status"] == "succeeded"
    })
    .await;
    assert_eq!(card["desired"], "running");
    let bob_id = admin.user_id("bob").await;
    let (status, details) = admin
        .call("admin/runtimes/details", &[("user_id", &bob_id)])
        .await;
    assert_eq!(status, 200, "{details}");
    assert!(
        details["logs"]
            .to_string()
            .contains("listening on port 18789"),
        "logs come through the runtime manager: {details}"
    );

    // With the runtime manager gone, commands fail clearly instead of hanging.
    drop(manager);
    bob.call("runtime/command", &[("command", "stop")]).await;
    let card = wait_for(&bob, "a failed stop", |c| c["task_status"] == "failed").await;
    // Bob gets a code, a sentence and a reference; the connection error (with the manager's
    // address) is for admins only.
    assert_eq!(card["problem"]["code"], "MANAGER_UNREACHABLE", "{card}");
    assert_eq!(
        card["problem"]["message"], "The runtime manager is not answering.",
        "{card}"
    );
    let reference = card["problem"]["reference"].as_str().expect("reference");
    assert!(!card.to_string().contains(&manager_port), "{card}");
    let (status, list) = admin.call("admin/runtimes/list", &[]).await;
    assert_eq!(status, 200, "{list}");
    let row = list
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["username"] == "bob"))
        .expect("bob's runtime");
    assert_eq!(row["card"]["problem"]["reference"], reference);
    let detail = row["problem_detail"].as_str().expect("detail for admins");
    assert!(
        detail.contains("runtime manager cannot be reached") && detail.contains("Check that"),
        "{detail}"
    );
    server.remove_docker_objects().await;
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn admins_give_a_user_their_own_limits_and_the_next_start_applies_them(pool: PgPool) {
    let server = TestServer::with_stub_runtimes(pool.clone()).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    bob.call("runtime/command", &[("command", "start")]).await;
    wait_for(&bob, "running", |c| {
        c["observed"] == "running" && c["task_status"] == "succeeded"
    })
    .await;
    let bob_id = admin.user_id("bob").await;

    let (status, body) = bob
        .call(
            "admin/runtimes/limits",
            &[("user_id", &bob_id), ("memory_mb", "256")],
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (403, "ACCESS_DENIED"));
    let (status, body) = admin
        .call(
            "admin/runtimes/limits",
            &[("user_id", &bob_id), ("memory_mb", "10")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "VALIDATION"),
        "{body}"
    );
    assert!(body.to_string().contains("between 128 and 65536"), "{body}");
    let (status, body) = admin
        .call(
            "admin/runtimes/limits",
            &[("user_id", &bob_id), ("disk_mb", "10")],
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (422, "VALIDATION"));
    assert!(
        body.to_string()
            .contains("Workspace disk must be between 64 and 16777216 MiB (or 0 for no limit)"),
        "{body}"
    );
    let (status, body) = admin
        .call(
            "admin/runtimes/limits",
            &[
                ("user_id", &uuid::Uuid::new_v4().to_string()),
                ("pids", "100"),
            ],
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (404, "NOT_FOUND"), "{body}");

    let (status, limits) = admin
        .call(
            "admin/runtimes/limits",
            &[
                ("user_id", &bob_id),
                ("memory_mb", "256"),
                ("pids", "100"),
                ("disk_mb", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["memory_mb"], 256);
    assert_eq!(limits["disk_mb"], 0, "no workspace limit for bob");
    assert_eq!(limits["cpus"], Value::Null, "CPUs keep the default");
    assert_eq!(limits["default_memory_mb"], 128);
    let (_, list) = admin.call("admin/runtimes/list", &[]).await;
    assert_eq!(list[0]["limits"]["pids"], 100, "{list}");

    // The running container keeps its limits until the next start or recover.
    bob.call("runtime/command", &[("command", "recover")]).await;
    wait_for(&bob, "recovered", |c| {
        c["task_action"] == "recover" && c["task_status"] == "succeeded"
    })
    .await;
    let container: String =
        sqlx::query_scalar("SELECT container_id FROM runtimes WHERE username = 'bob'")
            .fetch_one(&pool)
            .await
            .expect("container");
    let (_, limits) = clawloops_testkit::docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
        &container,
    ]);
    assert_eq!(limits, format!("{} 100", 256 * 1024 * 1024));
    let (_, audit) = admin
        .call(
            "admin/audit",
            &[("query[action]", "runtime.limits"), ("query[page]", "1")],
        )
        .await;
    assert_eq!(audit["total"], 1, "{audit}");
    server.remove_docker_objects().await;
}

/// The user's runtime keys: (state, revoked reason) oldest first.
async fn runtime_keys(pool: &PgPool, username: &str) -> Vec<(bool, Option<String>)> {
    sqlx::query_as(
        "SELECT k.revoked_at IS NULL, k.revoked_reason FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE u.username = $1 AND k.kind = 'runtime' ORDER BY k.created_at",
    )
    .bind(username)
    .fetch_all(pool)
    .await
    .expect("keys")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn each_runtime_gets_its_own_key_rotated_on_recover_and_revoked_on_disable_and_delete(
    pool: PgPool,
) {
    let server = TestServer::with_stub_runtimes(pool.clone()).await;
    let admin = server.admin("root").await;
    let ann = server.user(&admin, "ann").await;
    ann.call("runtime/command", &[("command", "start")]).await;
    wait_for(&ann, "running", |c| c["observed"] == "running").await;
    assert_eq!(
        runtime_keys(&pool, "ann").await,
        vec![(true, None)],
        "one live key"
    );

    // Stop and start again: the same key (the configuration, and the container, stay).
    ann.call("runtime/command", &[("command", "stop")]).await;
    wait_for(&ann, "stopped", |c| c["observed"] == "stopped").await;
    ann.call("runtime/command", &[("command", "start")]).await;
    wait_for(&ann, "running", |c| c["observed"] == "running").await;
    assert_eq!(runtime_keys(&pool, "ann").await, vec![(true, None)]);

    // Recover: a new key, the old one revoked.
    ann.call("runtime/command", &[("command", "recover")]).await;
    wait_for(&ann, "recovered", |c| {
        c["observed"] == "running"
            && c["task_action"] == "recover"
            && c["task_status"] == "succeeded"
    })
    .await;
    assert_eq!(
        runtime_keys(&pool, "ann").await,
        vec![(false, Some("rotated".into())), (true, None)]
    );

    // Disabled: revoked at once, with the runtime stopping.
    let id = admin.user_id("ann").await;
    let (status, body) = admin
        .call("admin/users/status", &[("id", &id), ("status", "disabled")])
        .await;
    assert_eq!(status, 200, "{body}");
    let keys = runtime_keys(&pool, "ann").await;
    assert!(keys.iter().all(|(live, _)| !live), "{keys:?}");
    assert_eq!(keys[1].1.as_deref(), Some("account disabled"));

    // Enabled and started again (once the disable's stop is done): a fresh key; deleting the
    // runtime revokes it.
    wait_stopped(&pool, "ann").await;
    admin
        .call("admin/users/status", &[("id", &id), ("status", "active")])
        .await;
    ann.login_ok("ann", crate::support::PASSWORD).await;
    ann.call("runtime/command", &[("command", "start")]).await;
    wait_for(&ann, "started again", |c| {
        c["observed"] == "running" && c["task_action"] == "start" && c["task_status"] == "succeeded"
    })
    .await;
    assert_eq!(
        runtime_keys(&pool, "ann")
            .await
            .iter()
            .filter(|(live, _)| *live)
            .count(),
        1
    );
    let (status, body) = ann
        .call(
            "runtime/command",
            &[("command[delete][wipe_workspace]", "true")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while binding(&pool, "ann").await.is_some() {
        assert!(Instant::now() < deadline, "runtime not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = runtime_keys(&pool, "ann").await;
    assert!(keys.iter().all(|(live, _)| !live), "{keys:?}");
    assert_eq!(
        keys.last().and_then(|k| k.1.as_deref()),
        Some("runtime deleted")
    );
    server.remove_docker_objects().await;
}
