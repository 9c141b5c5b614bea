//! Failures the user is told about clearly: a missing image, an unreachable engine, a full
//! disk.

use super::harness::*;
use clawloops_driver::docker::DockerDriver;
use clawloops_orchestrator::{Action, ObservedState, Problem, TaskStatus, repo};
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrations = "../../migrations")]
async fn a_missing_image_fails_the_task_with_a_clear_error(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("kai");
    h.request((id, &name), Action::Start).await;
    sqlx::query("UPDATE runtimes SET image = 'clawloops/no-such-image:0' WHERE user_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("bad image");
    h.drain().await;
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Error);
    // The owner is told in words; the engine's detail (the image name) is for admins, and the
    // task that failed is the reference both quote.
    let fault = binding.fault().expect("a problem");
    assert_eq!(fault.problem, Problem::ImageMissing);
    assert!(!fault.problem.message().contains("clawloops/"), "{fault:?}");
    assert!(
        fault.detail.contains("clawloops/no-such-image:0")
            && fault.detail.contains("not available"),
        "{fault:?}"
    );
    let mut conn = pool.acquire().await.expect("conn");
    let task = repo::latest_task(&mut conn, id)
        .await
        .expect("q")
        .expect("task");
    assert_eq!(task.status(), TaskStatus::Failed);
    assert_eq!(fault.reference, task.id);
    assert_eq!(
        task.error.as_deref(),
        Some(format!("IMAGE_MISSING: {}", fault.detail).as_str())
    );
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]

async fn an_unreachable_docker_engine_fails_the_task_clearly(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    // The socket of an engine that has died: the file is there, nobody answers.
    let dead = config_root.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    let driver =
        DockerDriver::connect_socket(&dead.display().to_string(), &instance, config_root.path())
            .await
            .expect("a driver even while the engine is down");
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, settings());
    let (id, name) = user("nodock");
    let task = h.request((id, &name), Action::Start).await;
    h.drain().await;
    let task = h.task(task.id).await;
    assert_eq!(task.status(), TaskStatus::Failed);
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Error);
    let fault = binding.fault().expect("a problem");
    assert_eq!(fault.problem, Problem::EngineUnreachable);
    assert!(
        fault.detail.contains("Docker engine cannot be reached"),
        "{fault:?}"
    );
    assert!(
        fault
            .problem
            .remedy()
            .contains("Check that Docker is running")
    );
    // The reconciler reports the outage instead of panicking or touching the bindings.
    let err = h.orchestrator.reconcile().await.expect_err("engine down");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    assert_eq!(h.binding(id).await.observed(), ObservedState::Error);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_full_disk_fails_the_task_clearly_and_a_later_start_works(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (id, name) = user("full");
    h.request((id, &name), Action::Start).await;
    let runtime_id = h.binding(id).await.runtime_id;
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    let dir = h.config_dir(&runtime_id);
    std::fs::create_dir_all(&dir).expect("dir");
    std::os::unix::fs::symlink("/dev/full", dir.join(".openclaw.json.tmp")).expect("symlink");
    h.drain().await;
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Error);
    let fault = binding.fault().expect("a problem");
    assert_eq!(fault.problem, Problem::HostDiskFull);
    assert!(fault.detail.contains("out of disk space"), "{fault:?}");
    assert!(fault.problem.remedy().contains("Free disk space"));
    assert!(h.containers().await.is_empty(), "nothing half-made");

    // Space is back: the next start succeeds.
    std::fs::remove_file(dir.join(".openclaw.json.tmp")).expect("rm");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}
