//! The control plane stopped dead while runtimes are being started on the swarm, and started
//! again: every user ends with exactly one service, running.

use super::*;
use crate::support::swarm::{swarm, use_swarm};

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_control_plane_restarted_mid_start_leaves_one_service_per_user(pool: PgPool) {
    let swarm = swarm(false);
    let bridge = swarm.bridge_ip.parse().expect("bridge address");
    let settings = |s: &mut clawloops_server::settings::Settings| {
        use_swarm(s, &swarm, "", false);
        s.entry.proxy_container = None;
        s.replicas.task_lease = Duration::from_secs(3);
    };
    let first = TestServer::start_on(pool.clone(), bridge, settings).await;
    let instance = first.instance.to_string();
    let admin = first.admin("root").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(first.user(&admin, &format!("user{i}")).await);
    }
    for user in &users {
        request_start(user).await;
    }
    // Mid-start: a worker holds a start when the process dies.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runtime_tasks WHERE status = 'running'")
                .fetch_one(&pool)
                .await
                .expect("tasks");
        if running > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no start began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let up_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runtimes WHERE observed_state = 'running'")
            .fetch_one(&pool)
            .await
            .expect("runtimes");
    assert!(up_before < 5, "stopped before every start was done");
    drop(first);
    let second = TestServer::start_on(pool.clone(), bridge, settings).await;
    assert_eq!(second.instance.to_string(), instance);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtimes WHERE observed_state = 'running' AND desired_state = 'running'",
        )
        .fetch_one(&pool)
        .await
        .expect("runtimes");
        if up == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{up} of 5 running after the restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let filter = format!("label=org.clawloops.instance={instance}");
    let (_, services) = swarm.docker(
        ENTRY_NODE,
        &[
            "service",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}} {{.Replicas}}",
        ],
    );
    let mut names: Vec<&str> = services.lines().collect();
    names.sort_unstable();
    assert_eq!(names.len(), 5, "one service per user: {services}");
    assert!(
        names.iter().all(|l| l.ends_with(" 1/1")),
        "each running once: {services}"
    );
    let mut containers = 0;
    for node in swarm.nodes.keys() {
        let (_, ids) = swarm.docker(node, &["ps", "-q", "--filter", &filter]);
        containers += ids.lines().filter(|l| !l.is_empty()).count();
    }
    assert_eq!(containers, 5, "one running container per user");
    drop(second);
    swarm.remove_installation(&instance);
}
