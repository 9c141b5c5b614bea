//! Start, stop and delete through every stage; concurrent starts; the global start queue.

use super::harness::*;
use clawloops_driver::RuntimeDriver;
use clawloops_driver::docker::{DockerDriver, managed_volumes};
use clawloops_orchestrator::{Action, ObservedState, Orchestrator, TaskStatus, UserRef, repo};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

#[sqlx::test(migrations = "../../migrations")]
async fn start_becomes_healthy_through_every_stage_and_a_second_start_changes_nothing(
    pool: PgPool,
) {
    let h = Harness::new(pool).await;
    let (id, name) = user("ana");
    let task = h.request((id, &name), Action::Start).await;
    h.drain().await;
    let task = h.task(task.id).await;
    assert_eq!(task.status(), TaskStatus::Succeeded, "{:?}", task.error);
    let stages: Vec<String> = task
        .stages
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["stage"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        stages,
        [
            "queued",
            "config_rendered",
            "image_ready",
            "container_created",
            "started",
            "healthy"
        ]
    );
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Running);
    assert_eq!(
        binding.browser_url.as_deref(),
        Some("http://ana.localhost:8080/")
    );
    assert!(
        binding
            .internal_endpoint
            .as_deref()
            .is_some_and(|e| e.ends_with(":18789"))
    );
    let first = binding.container_id.clone().expect("container");

    // The rendered configuration carries this runtime's own token.
    let config =
        std::fs::read_to_string(h.config_dir("rt-ana").join("openclaw.json")).expect("config");
    assert!(
        config.contains(&binding.gateway_token),
        "own token in the config"
    );

    let again = h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(again.id).await.status(), TaskStatus::Succeeded);
    let binding = h.binding(id).await;
    assert_eq!(
        binding.container_id.as_deref(),
        Some(first.as_str()),
        "same container: a no-op"
    );
    assert_eq!(h.containers().await.len(), 1);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn twenty_concurrent_starts_make_one_container(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (id, name) = user("bo");
    let requests = (0..20).map(|_| h.request((id, &name), Action::Start));
    let tasks = futures_util::future::join_all(requests).await;
    let distinct: std::collections::HashSet<_> = tasks.iter().map(|t| t.id).collect();
    assert!(
        distinct.len() <= 2,
        "twenty clicks, at most one running and one queued task: {}",
        distinct.len()
    );
    // Several workers at once, as in production.
    let workers =
        (0..4).map(|_| async { while h.orchestrator.run_next().await.expect("worker") {} });
    futures_util::future::join_all(workers).await;
    let containers = h.containers().await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn stop_stops_and_delete_keeps_or_wipes_the_workspace(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (keep_id, keep) = user("cy");
    let (wipe_id, wipe) = user("di");
    for u in [(keep_id, keep.as_str()), (wipe_id, wipe.as_str())] {
        h.request(u, Action::Start).await;
    }
    h.drain().await;

    h.request((keep_id, &keep), Action::Stop).await;
    h.drain().await;
    assert_eq!(h.binding(keep_id).await.observed(), ObservedState::Stopped);
    let stopped = h
        .driver
        .observe("rt-cy")
        .await
        .expect("observe")
        .expect("kept");
    assert!(matches!(
        stopped.phase,
        clawloops_driver::Phase::Stopped { exit_code: Some(_) }
    ));

    h.request((keep_id, &keep), Action::Delete).await;
    h.orchestrator
        .request(
            UserRef {
                id: wipe_id,
                username: &wipe,
            },
            Action::Delete,
            true,
            "test",
        )
        .await
        .expect("delete wiping");
    h.drain().await;
    assert!(h.containers().await.is_empty());
    let volumes = managed_volumes(&h.driver).await.expect("volumes");
    assert!(
        volumes.iter().any(|v| v.ends_with("-rt-cy-workspace")),
        "kept: {volumes:?}"
    );
    assert!(
        !volumes.iter().any(|v| v.ends_with("-rt-di-workspace")),
        "wiped: {volumes:?}"
    );
    let mut conn = h.pool.acquire().await.expect("conn");
    assert!(
        repo::get(&mut conn, keep_id).await.expect("get").is_none(),
        "binding removed"
    );
    assert!(!h.config_dir("rt-di").exists(), "config removed");
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_start_requested_while_a_delete_is_queued_wins(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (id, name) = user("lu");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    let delete = h.request((id, &name), Action::Delete).await;
    let start = h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(delete.id).await.status(), TaskStatus::Canceled);
    assert_eq!(h.task(start.id).await.status(), TaskStatus::Succeeded);
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn starts_beyond_the_global_limit_wait_in_a_queue_and_users_see_their_place(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine");
    let mut limited = settings();
    limited.concurrency = 2;
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, limited);
    let users: Vec<_> = ["qa", "qb", "qc", "qd", "qe"].map(user).into();
    for (id, name) in &users {
        h.request((*id, name), Action::Start).await;
    }
    // Before any worker runs, everyone sees their place in the queue.
    let mut places = Vec::new();
    for (id, _) in &users {
        let view = h
            .orchestrator
            .view(*id)
            .await
            .expect("view")
            .expect("binding");
        places.push(view.queue_position.expect("queued"));
    }
    assert_eq!(places, vec![0, 1, 2, 3, 4]);

    // Two control-plane replicas' worth of workers: still at most two starts at once.
    let second = Orchestrator::new(
        pool.clone(),
        h.driver.clone(),
        {
            let mut s = settings();
            s.concurrency = 2;
            s
        },
        &h.instance,
    );
    let mut workers = h.orchestrator.spawn();
    workers.extend(second.spawn());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut most_running = 0;
    loop {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runtime_tasks WHERE status = 'running'")
                .fetch_one(&pool)
                .await
                .expect("count");
        most_running = most_running.max(running);
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runtime_tasks WHERE status = 'succeeded'")
                .fetch_one(&pool)
                .await
                .expect("count");
        if done == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "starts never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.abort();
    }
    assert!((1..=2).contains(&most_running), "{most_running} at once");
    assert_eq!(h.containers().await.len(), 5);
    h.cleanup();
}
