//! The orchestrator with the real Docker engine (tiny runtime image) and a real PostgreSQL.

use clawloops_driver::docker::{DockerDriver, managed_volumes};
use clawloops_driver::{ContainerState, Limits, RuntimeDriver};
use clawloops_orchestrator::{
    Action, DesiredState, ObservedState, Orchestrator, RuntimeSettings, StopKind, TaskStatus,
    UserRef, repo,
};
use sqlx::PgPool;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

struct Harness {
    orchestrator: Orchestrator,
    driver: Arc<DockerDriver>,
    pool: PgPool,
    instance: String,
    config_root: tempfile::TempDir,
}

fn settings() -> RuntimeSettings {
    RuntimeSettings {
        profile_name: "stub".into(),
        image: std::env::var("CLAWLOOPS_TEST_STUB_IMAGE")
            .unwrap_or_else(|_| format!("clawloops/runtime-stub:{}", env!("CARGO_PKG_VERSION"))),
        profile: RuntimeSettings::stub_profile(),
        limits: Limits {
            memory_mb: 64,
            cpus: 0.5,
            pids: 64,
            disk_mb: None,
        },
        concurrency: 4,
        ready_timeout: Duration::from_secs(20),
        stop_grace: Duration::from_secs(5),
        reconcile_every: Duration::from_secs(3600),
        disk_check_every: Duration::from_secs(3600),
        model_base_url: "http://gateway.invalid/v1".into(),
        models: vec!["fake-model".into()],
        browser_url_template: Some("http://{user}.localhost:8080/".into()),
        idle_stop_minutes: 0,
        max_lifetime_minutes: None,
        egress: Default::default(),
    }
}

impl Harness {
    async fn new(pool: PgPool) -> Harness {
        let instance = format!("test-{}", Uuid::new_v4().simple());
        let config_root = tempfile::tempdir().expect("tempdir");
        Self::with(pool, instance, config_root).await
    }

    async fn with(pool: PgPool, instance: String, config_root: tempfile::TempDir) -> Harness {
        let driver = DockerDriver::connect(&instance, config_root.path())
            .await
            .expect("Docker engine");
        Self::with_driver(pool, instance, config_root, driver, settings())
    }

    fn with_driver(
        pool: PgPool,
        instance: String,
        config_root: tempfile::TempDir,
        driver: DockerDriver,
        settings: RuntimeSettings,
    ) -> Harness {
        let driver = Arc::new(driver);
        let orchestrator = Orchestrator::new(pool.clone(), driver.clone(), settings, &instance);
        Harness {
            orchestrator,
            driver,
            pool,
            instance,
            config_root,
        }
    }

    /// The same installation after a control-plane restart.
    async fn restarted(self) -> Harness {
        let Harness {
            pool,
            instance,
            config_root,
            ..
        } = self;
        Self::with(pool, instance, config_root).await
    }

    async fn request(&self, user: (Uuid, &str), action: Action) -> repo::TaskRow {
        self.orchestrator
            .request(
                UserRef {
                    id: user.0,
                    username: user.1,
                },
                action,
                false,
                "test",
            )
            .await
            .expect("request")
    }

    /// Where the driver writes a runtime's configuration.
    fn config_dir(&self, runtime_id: &str) -> std::path::PathBuf {
        let prefix = clawloops_driver::spec::name_prefix(&self.instance);
        self.config_root
            .path()
            .join(format!("{prefix}-{runtime_id}"))
    }

    /// Runs queued tasks until none is left.
    async fn drain(&self) {
        while self.orchestrator.run_next().await.expect("worker") {}
    }

    async fn binding(&self, user: Uuid) -> repo::RuntimeRow {
        let mut conn = self.pool.acquire().await.expect("conn");
        repo::get(&mut conn, user)
            .await
            .expect("get")
            .expect("binding")
    }

    async fn task(&self, id: Uuid) -> repo::TaskRow {
        let mut conn = self.pool.acquire().await.expect("conn");
        repo::get_task(&mut conn, id)
            .await
            .expect("get")
            .expect("task")
    }

    async fn containers(&self) -> Vec<clawloops_driver::ContainerInfo> {
        self.driver.list().await.expect("list")
    }

    async fn cleanup(&self) {
        for c in self.containers().await {
            let _ = self.driver.remove(&c.id).await;
        }
        for volume in managed_volumes(&self.driver).await.unwrap_or_default() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &volume])
                .output();
        }
        let out = Command::new("docker")
            .args([
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=org.clawloops.instance={}", self.instance),
            ])
            .output()
            .expect("network ls");
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("docker").args(["network", "rm", id]).output();
        }
    }
}

fn user(name: &str) -> (Uuid, String) {
    (Uuid::new_v4(), name.to_owned())
}

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
    h.cleanup().await;
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
    h.cleanup().await;
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
    let stopped = h.driver.find("rt-cy").await.expect("find").expect("kept");
    assert!(matches!(
        stopped.state,
        clawloops_driver::ContainerState::Exited(_)
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
    h.cleanup().await;
}

fn docker_kill(container: &str) {
    let status = Command::new("docker")
        .args(["kill", container])
        .status()
        .expect("docker kill");
    assert!(status.success());
}

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
    assert!(
        binding
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("stopped unexpectedly")),
        "{:?}",
        binding.last_error
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
    h.cleanup().await;
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
    assert!(
        binding
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("5 times in 10 minutes")),
        "{:?}",
        binding.last_error
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
    h.cleanup().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn after_a_control_plane_restart_running_runtimes_are_reattached_untouched(pool: PgPool) {
    let h = Harness::new(pool).await;
    let (a, b) = (user("gil"), user("hu"));
    for (id, name) in [&a, &b] {
        h.request((*id, name), Action::Start).await;
    }
    h.drain().await;
    let before: Vec<_> = h.containers().await.into_iter().map(|c| c.id).collect();
    // The control plane lost track (as if the row had been written by a crashed process).
    sqlx::query("UPDATE runtimes SET observed_state = 'starting', container_id = NULL")
        .execute(&h.pool)
        .await
        .expect("forget");

    let h = h.restarted().await;
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.attached, 2, "{report:?}");
    assert_eq!(report.crashes, 0);
    let mut after: Vec<_> = h.containers().await.into_iter().map(|c| c.id).collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "same containers, none restarted");
    assert_eq!(h.binding(a.0).await.observed(), ObservedState::Running);
    h.cleanup().await;
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
    while h.driver.find("rt-ivo").await.expect("find").is_none() {
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
    h.cleanup().await;
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
    h.cleanup().await;
}

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
    let error = binding.last_error.expect("error");
    assert!(
        error.contains("clawloops/no-such-image:0") && error.contains("not available"),
        "{error}"
    );
    let mut conn = pool.acquire().await.expect("conn");
    let task = repo::latest_task(&mut conn, id)
        .await
        .expect("q")
        .expect("task");
    assert_eq!(task.status(), TaskStatus::Failed);
    assert_eq!(task.error.as_deref(), Some(error.as_str()));
    h.cleanup().await;
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
    h.cleanup().await;
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
    h.cleanup().await;
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
    let error = binding.last_error.expect("error");
    assert!(
        error.contains("Docker engine cannot be reached")
            && error.contains("Check that Docker is running"),
        "{error}"
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
    let error = binding.last_error.expect("error");
    assert!(
        error.contains("out of disk space") && error.contains("Free disk space"),
        "{error}"
    );
    assert!(h.containers().await.is_empty(), "nothing half-made");

    // Space is back: the next start succeeds.
    std::fs::remove_file(dir.join(".openclaw.json.tmp")).expect("rm");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn unused_runtimes_are_stopped_after_the_idle_time_and_say_why(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine");
    let settings = RuntimeSettings {
        idle_stop_minutes: 60,
        max_lifetime_minutes: Some(8 * 60),
        ..settings()
    };
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, settings);
    let (ana, ana_name) = user("ana");
    let (bob, bob_name) = user("bob");
    let (cy, cy_name) = user("cy");
    for u in [(ana, &ana_name), (bob, &bob_name), (cy, &cy_name)] {
        h.request((u.0, u.1.as_str()), Action::Start).await;
    }
    h.drain().await;
    // ana: used 2 hours ago; bob: used a minute ago but running for 9 hours; cy: in use.
    sqlx::query(
        "UPDATE runtimes SET ready_at = now() - interval '3 hours',
                last_active_at = now() - interval '2 hours' WHERE user_id = $1",
    )
    .bind(ana)
    .execute(&pool)
    .await
    .expect("age ana");
    sqlx::query(
        "UPDATE runtimes SET ready_at = now() - interval '9 hours',
                last_active_at = now() - interval '1 minute' WHERE user_id = $1",
    )
    .bind(bob)
    .execute(&pool)
    .await
    .expect("age bob");
    // Planned stops are known before they happen (the dashboard shows them).
    let planned = h
        .orchestrator
        .planned_stop(&h.binding(cy).await)
        .expect("planned");
    assert!(matches!(planned.kind, StopKind::Idle(60)), "{planned:?}");

    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.stopped_idle, 2, "{report:?}");
    h.drain().await;
    let ana_row = h.binding(ana).await;
    assert_eq!(
        (ana_row.desired(), ana_row.observed()),
        (DesiredState::Stopped, ObservedState::Stopped)
    );
    assert_eq!(
        ana_row.stop_reason.as_deref(),
        Some("Stopped after 1 hour without workspace use.")
    );
    let bob_row = h.binding(bob).await;
    assert_eq!(bob_row.observed(), ObservedState::Stopped);
    assert!(
        bob_row
            .stop_reason
            .as_deref()
            .is_some_and(|r| r.contains("8 hours")),
        "{:?}",
        bob_row.stop_reason
    );
    assert_eq!(h.binding(cy).await.observed(), ObservedState::Running);
    let running: Vec<_> = h
        .containers()
        .await
        .into_iter()
        .filter(|c| c.state == ContainerState::Running)
        .map(|c| c.runtime_id)
        .collect();
    assert_eq!(running, ["rt-cy"]);

    // A user's own setting wins (0 = never), and starting again clears the reason.
    h.orchestrator
        .set_idle_stop(cy, Some(0))
        .await
        .expect("override");
    sqlx::query(
        "UPDATE runtimes SET last_active_at = now() - interval '5 hours' WHERE user_id = $1",
    )
    .bind(cy)
    .execute(&pool)
    .await
    .expect("age cy");
    assert_eq!(
        h.orchestrator.reconcile().await.expect("pass").stopped_idle,
        0
    );
    h.request((ana, &ana_name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(ana).await.stop_reason, None);
    // Activity from forward-auth restarts the idle clock (and never moves it backwards).
    let later = time::OffsetDateTime::now_utc();
    let earlier = later - time::Duration::hours(1);
    h.orchestrator
        .touch_activity(&[(ana, later)])
        .await
        .expect("touch");
    h.orchestrator
        .touch_activity(&[(ana, earlier)])
        .await
        .expect("touch");
    let seen = h.binding(ana).await.last_active_at.expect("seen");
    assert!((seen - later).abs() < time::Duration::seconds(1));
    h.cleanup().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn with_an_entry_proxy_the_runtime_trusts_only_its_address(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    // Any container can play the proxy here; the real Traefik is in the server's entry tests.
    let proxy = format!("clawloops-test-proxy-{}", &instance[5..17]);
    let image = settings().image;
    let out = Command::new("docker")
        .args(["run", "-d", "--name", &proxy, &image])
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine")
        .with_entry_proxy(Some(proxy.clone()));
    let h = Harness::with_driver(pool, instance, config_root, driver, settings());
    let (id, name) = user("ana");
    let task = h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(task.id).await.status(), TaskStatus::Succeeded);

    // The proxy sits at the second address of the runtime's /28; the config trusts it alone
    // and names the owner; no token is rendered.
    let binding = h.binding(id).await;
    let inspect = |format: &str, what: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, what])
            .output()
            .expect("inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let network = format!(
        "{}-net",
        inspect("{{.Name}}", binding.container_id.as_deref().expect("id")).trim_start_matches('/')
    );
    let proxy_ip = inspect(
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        &proxy,
    );
    let subnet = inspect("{{range .IPAM.Config}}{{.Subnet}}{{end}}", &network);
    let base: std::net::Ipv4Addr = subnet.split('/').next().expect("net").parse().expect("ip");
    assert_eq!(
        proxy_ip,
        std::net::Ipv4Addr::from(u32::from(base) + 2).to_string()
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.config_dir("rt-ana").join("openclaw.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["gateway"]["auth"]["mode"], "trusted-proxy");
    assert_eq!(
        config["gateway"]["trustedProxies"],
        serde_json::json!([proxy_ip])
    );
    assert_eq!(
        config["gateway"]["auth"]["trustedProxy"]["allowUsers"],
        serde_json::json!(["ana"])
    );
    assert!(!config.to_string().contains(&binding.gateway_token));

    // Taken off the network by hand (or recreated): the reconciler joins it again.
    let out = Command::new("docker")
        .args(["network", "disconnect", &network, &proxy])
        .output()
        .expect("disconnect");
    assert!(out.status.success());
    h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(
        inspect(
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            &proxy
        ),
        proxy_ip
    );

    // Deleting the runtime disconnects the proxy and removes the network.
    h.request((id, &name), Action::Delete).await;
    h.drain().await;
    let out = Command::new("docker")
        .args(["network", "inspect", &network])
        .output()
        .expect("inspect");
    assert!(!out.status.success(), "network removed");
    let _ = Command::new("docker").args(["rm", "-f", &proxy]).output();
    h.cleanup().await;
}

/// Writes `bytes` of data into a runtime's workspace volume from a throwaway container (as a
/// user of the workspace would from inside it).
fn fill_workspace(volume: &str, bytes: usize) {
    let status = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{volume}:/ws"))
        .args(["clawloops/debian:bookworm-min", "bash", "-c"])
        .arg(format!("head -c {bytes} /dev/urandom > /ws/blob && sync"))
        .status()
        .expect("docker run");
    assert!(status.success(), "filling {volume}");
}

/// On an engine that cannot hold a volume to a size (this machine's: ext4 and a kernel without
/// quota support), the limit is measured: a running workspace over its limit is stopped with
/// the reason in words, may not start again until the limit is raised, and starts once it is.
/// A user with no limit (0) is measured and left alone.
#[sqlx::test(migrations = "../../migrations")]
async fn a_workspace_over_its_disk_limit_is_stopped_and_may_not_start_until_raised(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine");
    let engine_enforced = driver.volume_quotas().await.expect("quota probe");
    let mut settings = settings();
    settings.limits.disk_mb = Some(2);
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, settings);
    let (ana, ana_name) = user("ana");
    let (bo, bo_name) = user("bo");
    h.request((ana, &ana_name), Action::Start).await;
    h.request((bo, &bo_name), Action::Start).await;
    h.drain().await;
    h.orchestrator
        .set_limits(
            bo,
            clawloops_orchestrator::LimitOverride {
                disk_mb: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("no limit for bo");

    // Under the limit: measured, nothing stopped.
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!((report.measured, report.stopped), (2, 0), "{report:?}");
    assert_eq!(report.engine_enforced, engine_enforced);
    let small = h.binding(ana).await.disk_used_bytes.expect("measured");
    assert!(small < 1024 * 1024, "a new workspace is small: {small}");

    let volume = |name: &str| {
        let prefix = clawloops_driver::spec::name_prefix(&h.instance);
        format!("{prefix}-rt-{name}-workspace")
    };
    if engine_enforced {
        // Where the engine enforces the limit, the write itself fails past it; nothing more
        // to test here (this machine's kernel has no quota support: see the doc).
        return h.cleanup().await;
    }
    fill_workspace(&volume("ana"), 3 * 1024 * 1024);
    fill_workspace(&volume("bo"), 3 * 1024 * 1024);
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!(report.stopped, 1, "only ana has a limit: {report:?}");
    h.drain().await;
    let row = h.binding(ana).await;
    assert_eq!(
        (row.desired(), row.observed()),
        (DesiredState::Stopped, ObservedState::Stopped)
    );
    let used = row.disk_used_bytes.expect("measured") as u64;
    assert!(used >= 3 * 1024 * 1024, "{used}");
    let reason = row.stop_reason.expect("a reason");
    assert!(
        reason.contains("more than its limit of 2 MiB"),
        "the reason says why: {reason}"
    );
    assert_eq!(h.binding(bo).await.observed(), ObservedState::Running);

    // A start is refused while over the limit, with words for the user.
    let refused = h
        .orchestrator
        .request(
            UserRef {
                id: ana,
                username: &ana_name,
            },
            Action::Start,
            false,
            "test",
        )
        .await;
    match refused {
        Err(clawloops_orchestrator::OrchestratorError::WorkspaceFull(message)) => {
            assert!(message.contains("cannot start"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.binding(ana).await.desired(), DesiredState::Stopped);

    // Raised: it starts, and the next measurement leaves it running.
    h.orchestrator
        .set_limits(
            ana,
            clawloops_orchestrator::LimitOverride {
                disk_mb: Some(64),
                ..Default::default()
            },
        )
        .await
        .expect("raise");
    let task = h.request((ana, &ana_name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(task.id).await.status(), TaskStatus::Succeeded);
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!(report.stopped, 0, "{report:?}");
    assert_eq!(h.binding(ana).await.observed(), ObservedState::Running);
    h.cleanup().await;
}
