//! Per-user runtime limits, and each runtime's own gateway key through its life.

use super::*;

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
    server.remove_docker_objects();
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
    server.remove_docker_objects();
}
