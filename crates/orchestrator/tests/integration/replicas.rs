//! Several replicas of the orchestrator on one database and one engine: one reconciler leader
//! with failover, fenced task leases, crashes counted once, wake-ups across replicas, and a
//! shutdown that hands its work back.

use super::harness::*;
use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{
    DiskUsage, DriverError, Isolation, Observation, Prepared, RuntimeDriver, RuntimeSpec, Stats,
};
use clawloops_orchestrator::{
    Action, Coordination, ObservedState, Orchestrator, OrchestratorError, TaskStatus, repo,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Short leases, so that failovers happen within a test's patience.
fn quick() -> Coordination {
    Coordination {
        task_lease: Duration::from_millis(1500),
        leader_lease: Duration::from_secs(3),
        campaign_every: Duration::from_millis(100),
        poll_every: Duration::from_secs(3600),
    }
}

/// A second replica of `h`'s installation: its own id, the same database and engine.
fn replica(
    h: &Harness,
    driver: Arc<dyn RuntimeDriver>,
    coordination: Coordination,
) -> Orchestrator {
    Orchestrator::new(h.pool.clone(), driver, settings(), &h.instance)
        .with_coordination(coordination)
}

/// Waits (up to `limit`) until `ready` holds; false when it never did.
async fn until(limit: Duration, mut ready: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn stop(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        handle.abort();
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_replica_reconciles_and_another_takes_over_when_its_session_ends(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let a = replica(&h, h.driver.clone(), quick());
    let b = replica(&h, h.driver.clone(), quick());
    let mut handles = a.spawn();
    handles.extend(b.spawn());
    assert!(
        until(Duration::from_secs(10), async || a.is_leader()
            || b.is_leader())
        .await,
        "somebody leads"
    );
    // Stable: exactly one leads, and a third cannot reconcile beside it.
    for _ in 0..10 {
        assert!(a.is_leader() ^ b.is_leader(), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        h.orchestrator.reconcile().await,
        Err(OrchestratorError::NotLeader)
    ));
    let (leader, follower) = if a.is_leader() { (&a, &b) } else { (&b, &a) };
    let listed = clawloops_orchestrator::presence::list(&pool)
        .await
        .expect("replicas");
    assert_eq!(
        listed
            .first()
            .filter(|r| r.leader_since.is_some())
            .map(|r| r.id.as_str()),
        Some(leader.replica_id()),
        "the list shows the leader first: {listed:?}"
    );

    // The leader's database session ends (a cut connection, a restarted database): it stops
    // leading and the follower takes over.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.classid = 17228 AND l.objid = 1 AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate");
    assert_eq!(ended, vec![true], "one session held the lock");
    let cut = Instant::now();
    assert!(
        until(Duration::from_secs(10), async || follower.is_leader()).await,
        "the follower leads after the leader's session ended"
    );
    println!(
        "failover after the leader's session ended: {:?}",
        cut.elapsed()
    );
    assert!(
        until(Duration::from_secs(5), async || !leader.is_leader()).await,
        "the old leader knows it lost"
    );
    for _ in 0..10 {
        assert!(a.is_leader() ^ b.is_leader(), "still exactly one leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(handles);
    h.cleanup();
}

/// The Docker driver, with `create` held at a gate while `gated` (a worker paused mid-task).
struct Gated {
    inner: Arc<DockerDriver>,
    gated: AtomicBool,
    gate: Semaphore,
    waiting: AtomicBool,
}

#[async_trait::async_trait]
impl RuntimeDriver for Gated {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        self.inner.ensure_isolation().await
    }
    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        self.inner.prepare(spec).await
    }
    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        if self.gated.load(Ordering::SeqCst) {
            self.waiting.store(true, Ordering::SeqCst);
            let _pass = self.gate.acquire().await.expect("gate");
        }
        self.inner.ensure(spec, config, replace).await
    }
    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError> {
        self.inner.set_running(runtime_id, running, grace).await
    }
    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError> {
        self.inner.observe(runtime_id).await
    }
    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        self.inner.list().await
    }
    async fn remove(&self, runtime_id: &str, wipe: bool) -> Result<(), DriverError> {
        self.inner.remove(runtime_id, wipe).await
    }
    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        self.inner.logs(runtime_id, lines).await
    }
    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        self.inner.stats(runtime_id).await
    }
    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        self.inner.disk_usage().await
    }
}

fn gated(h: &Harness) -> Arc<Gated> {
    Arc::new(Gated {
        inner: h.driver.clone(),
        gated: AtomicBool::new(true),
        gate: Semaphore::new(0),
        waiting: AtomicBool::new(false),
    })
}

async fn task_row(pool: &PgPool, id: uuid::Uuid) -> repo::TaskRow {
    let mut conn = pool.acquire().await.expect("conn");
    repo::get_task(&mut conn, id)
        .await
        .expect("get")
        .expect("task")
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_worker_that_lost_its_lease_writes_nothing_and_the_new_owner_finishes(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let gate = gated(&h);
    let paused = replica(&h, gate.clone(), quick());
    let other = replica(&h, h.driver.clone(), quick());
    let (id, name) = user("pia");
    let task = h.request((id, &name), Action::Start).await;

    // The first worker claims the start and stops inside the engine call, past its lease.
    let first = tokio::spawn({
        let paused = paused.clone();
        async move { paused.run_next().await }
    });
    assert!(
        until(Duration::from_secs(20), async || gate
            .waiting
            .load(Ordering::SeqCst))
        .await,
        "the first worker reached the engine"
    );
    let claimed = task_row(&pool, task.id).await;
    sqlx::query("UPDATE runtime_tasks SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(task.id)
        .execute(&pool)
        .await
        .expect("lease runs out");

    // The leader puts the task back; another replica finishes it under a new token.
    let report = other.reconcile().await.expect("reconcile");
    assert_eq!(report.tasks_resumed, 1, "{report:?}");
    assert!(
        other.run_next().await.expect("worker"),
        "the other replica ran the task"
    );
    let done = task_row(&pool, task.id).await;
    assert_eq!(done.status(), TaskStatus::Succeeded);
    assert_ne!(claimed.lease_token, done.lease_token);
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Running);

    // The first worker wakes up: it may create nothing new and write nothing.
    gate.gated.store(false, Ordering::SeqCst);
    gate.gate.add_permits(1);
    let ran = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the first worker returns")
        .expect("join");
    assert!(matches!(ran, Ok(true)), "{ran:?}");
    let after = task_row(&pool, task.id).await;
    assert_eq!(after.status(), TaskStatus::Succeeded);
    assert_eq!(
        after.stages, done.stages,
        "no stage written by the first worker"
    );
    assert_eq!(after.finished_at, done.finished_at);
    let binding_after = h.binding(id).await;
    assert_eq!(binding_after.observed(), ObservedState::Running);
    assert_eq!(binding_after.container_id, binding.container_id);
    assert_eq!(
        binding_after.updated_at, binding.updated_at,
        "the runtime row untouched"
    );
    let containers = h.containers().await;
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_crash_is_counted_once_however_many_passes_see_it(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("quin");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    let mut conn = pool.acquire().await.expect("conn");
    let first = repo::record_crash(&mut conn, id, "c1|100|", 600.0, 5.0)
        .await
        .expect("first");
    let again = repo::record_crash(&mut conn, id, "c1|100|", 600.0, 5.0)
        .await
        .expect("again");
    let next = repo::record_crash(&mut conn, id, "c2|200|", 600.0, 10.0)
        .await
        .expect("next");
    assert_eq!((first, again, next), (Some(1), None, Some(2)));
    assert_eq!(h.binding(id).await.crash_count, 2);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn work_queued_on_one_replica_wakes_an_idle_worker_on_another(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    // The other replica polls once an hour: only the notification can wake it in time.
    let other = replica(&h, h.driver.clone(), quick());
    let handles = other.spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (id, name) = user("rue");
    let task = h.request((id, &name), Action::Start).await;
    assert!(
        until(Duration::from_secs(30), async || {
            task_row(&pool, task.id).await.status() == TaskStatus::Succeeded
        })
        .await,
        "the other replica ran it: {:?}",
        task_row(&pool, task.id).await
    );
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    stop(handles);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_replica_shutting_down_hands_its_running_task_to_another(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let gate = gated(&h);
    let leaving = replica(&h, gate.clone(), quick());
    let handles = leaving.spawn();
    let (id, name) = user("sol");
    let task = h.request((id, &name), Action::Start).await;
    leaving.wake();
    assert!(
        until(Duration::from_secs(20), async || gate
            .waiting
            .load(Ordering::SeqCst))
        .await,
        "the task is running on the leaving replica"
    );
    // Shutdown: no new work, a short grace for the running task, then hand it back.
    let still_running = leaving.drain(Duration::from_millis(300)).await;
    assert_eq!(still_running, 1);
    stop(handles);
    assert_eq!(leaving.hand_back().await, 1);
    let handed = task_row(&pool, task.id).await;
    assert_eq!(
        handed.status(),
        TaskStatus::Queued,
        "back in the queue at once"
    );
    assert!(handed.lease_token.is_none());
    assert!(
        !leaving.run_next().await.expect("run_next"),
        "a stopping replica takes no work"
    );

    h.drain().await;
    assert_eq!(
        task_row(&pool, task.id).await.status(),
        TaskStatus::Succeeded
    );
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    assert_eq!(h.containers().await.len(), 1);
    let listed = clawloops_orchestrator::presence::list(&pool)
        .await
        .expect("replicas");
    assert!(
        listed.iter().all(|r| r.id != leaving.replica_id()),
        "left the list: {listed:?}"
    );
    h.cleanup();
}
