//! Crashes and restarts: killed runtimes come back after a back-off, the crash-loop guard,
//! reattaching after a control-plane restart, interrupted starts, orphan containers.

use super::harness::*;
use clawloops_driver::RuntimeDriver;
use clawloops_orchestrator::{Action, ObservedState, Problem, TaskStatus};
use sqlx::PgPool;
use std::time::Duration;

#[sqlx::test(migrations = "../../migrations")]
async fn a_killed_runtime_is_recovered_after_a_back_off(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("ed");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    let before = h.binding(id).await.container_id.expect("container");
    docker_kill(&before);

    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.crashes, 1, "{report:?}");
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Error);
    // docker kill: SIGKILL, exit code 137; the first back-off is 5 s.
    let fault = binding.fault().expect("a problem");
    assert_eq!(
        fault.problem,
        Problem::Crashed {
            exit_code: Some(137),
            retry_in_secs: 5
        }
    );
    assert_eq!(
        fault.problem.message(),
        "The runtime stopped unexpectedly (exit code 137); recovering in 5 seconds."
    );

    // Skip the 5 s back-off.
    sqlx::query("UPDATE runtimes SET next_recover_at = now() WHERE user_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("due");
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.queued, 1, "{report:?}");
    h.drain().await;
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Running);
    assert_ne!(
        binding.container_id.as_deref(),
        Some(before.as_str()),
        "a fresh container"
    );
    assert_eq!(h.containers().await.len(), 1);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_crash_loop_guard_stops_retrying_after_five_crashes_in_ten_minutes(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("flo");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    sqlx::query(
        "UPDATE runtimes SET crash_count = 4, crash_window_start = now() WHERE user_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("four earlier crashes");
    docker_kill(&h.binding(id).await.container_id.expect("container"));
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.crash_looping, 1, "{report:?}");
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Error);
    let fault = binding.fault().expect("a problem");
    assert_eq!(
        fault.problem,
        Problem::CrashLoop {
            crashes: 5,
            exit_code: Some(137)
        }
    );
    assert!(
        fault.problem.message().contains("5 times in 10 minutes"),
        "{fault:?}"
    );
    sqlx::query(
        "UPDATE runtimes SET next_recover_at = now() - interval '1 hour' WHERE user_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("due");
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.queued, 0, "no more automatic retries: {report:?}");

    // A person asking to recover starts over.
    h.request((id, &name), Action::Recover).await;
    h.drain().await;
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    assert_eq!(h.binding(id).await.crash_count, 0);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn after_a_control_plane_restart_running_runtimes_are_reattached_untouched(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (a, b) = (user("gil"), user("hu"));
    for (id, name) in [&a, &b] {
        h.request((*id, name), Action::Start).await;
    }
    h.drain().await;
    let before: Vec<_> = h.containers().await.into_iter().map(|c| c.handle).collect();
    // The control plane lost track (as if the row had been written by a crashed process).
    sqlx::query("UPDATE runtimes SET observed_state = 'starting', container_id = NULL")
        .execute(&h.pool)
        .await
        .expect("forget");

    let h = h.restarted().await;
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.attached, 2, "{report:?}");
    assert_eq!(report.crashes, 0);
    let mut after: Vec<_> = h.containers().await.into_iter().map(|c| c.handle).collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "same containers, none restarted");
    assert_eq!(h.binding(a.0).await.observed(), ObservedState::Running);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_start_interrupted_by_a_crash_finishes_after_restart_with_one_container(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("ivo");
    let task = h.request((id, &name), Action::Start).await;
    // A worker gets as far as creating the container, then the process dies.
    let worker = {
        let orchestrator = h.orchestrator.clone();
        tokio::spawn(async move { orchestrator.run_next().await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.driver.observe("rt-ivo").await.expect("observe").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let _ = worker.await;
    assert_eq!(
        h.task(task.id).await.status(),
        TaskStatus::Running,
        "left running by the dead worker"
    );
    // Its lease runs out (30 s in production).
    sqlx::query("UPDATE runtime_tasks SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(task.id)
        .execute(&pool)
        .await
        .expect("lease ran out");

    let h = h.restarted().await;
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.tasks_resumed, 1, "{report:?}");
    h.drain().await;
    let task = h.task(task.id).await;
    assert_eq!(task.status(), TaskStatus::Succeeded, "{:?}", task.error);
    assert_eq!(task.attempts, 2, "resumed once");
    assert_eq!(h.containers().await.len(), 1, "exactly one container");
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn orphan_containers_are_removed(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("jo");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    // The binding disappears behind the orchestrator's back (e.g. restored database).
    sqlx::query("DELETE FROM runtimes WHERE user_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("forget");
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert!(h.containers().await.is_empty());
    h.cleanup();
}
