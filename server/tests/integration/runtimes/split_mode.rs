//! The control plane driving runtimes through a separate runtime manager process.

use super::*;

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
    server.remove_docker_objects();
}
