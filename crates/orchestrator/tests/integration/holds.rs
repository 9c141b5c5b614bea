//! Holds for the runaway-agent breaker with a real runtime container: frozen in place and not
//! metered, kept frozen by the reconciler, thawed on release; a start is refused meanwhile; a
//! frozen runtime still stops; an engine that cannot freeze stops the runtime instead.

use super::harness::*;
use async_trait::async_trait;
use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{
    DiskUsage, DriverError, Isolation, Observation, Prepared, RuntimeDriver, RuntimeSpec, Stats,
};
use clawloops_orchestrator::{
    Action, DesiredState, Hold, ObservedState, Orchestrator, OrchestratorError, Resume, UserRef,
};
use sqlx::PgPool;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const REASON: &str = "the runaway-agent breaker tripped because it looped";

async fn account(pool: &PgPool, id: Uuid, name: &str) {
    sqlx::query("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .expect("user");
}

/// Docker's own word on whether the container is frozen.
fn frozen(container: &str) -> bool {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Paused}}", container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim() == "true"
}

fn docker(args: &[&str]) {
    let status = Command::new("docker").args(args).status().expect("docker");
    assert!(status.success(), "docker {args:?}");
}

/// Open stretches of metered time.
async fn open_stretches(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM compute_intervals WHERE user_id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("stretches")
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_held_runtime_is_frozen_kept_frozen_and_thawed_on_release(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("hal");
    account(&pool, id, &name).await;
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    let container = h.binding(id).await.container_id.expect("container");
    assert_eq!(open_stretches(&pool, id).await, 1);

    assert_eq!(
        h.orchestrator.hold(id, REASON).await.expect("hold"),
        Hold::Frozen
    );
    assert!(frozen(&container), "Docker froze the container");
    let b = h.binding(id).await;
    assert_eq!(b.observed(), ObservedState::Paused);
    assert_eq!(
        (b.paused_reason.as_deref(), b.paused_in_place),
        (Some(REASON), Some(true))
    );
    assert_eq!(
        open_stretches(&pool, id).await,
        0,
        "frozen time is not metered"
    );
    assert_eq!(
        h.orchestrator.hold(id, REASON).await.expect("again"),
        Hold::Frozen,
        "holding twice is fine"
    );

    // A start is refused while the hold lasts, in words for the owner.
    let refused = h
        .orchestrator
        .request(
            UserRef {
                id,
                username: &name,
            },
            Action::Start,
            false,
            "test",
        )
        .await;
    match refused {
        Err(OrchestratorError::Paused(words)) => {
            assert!(
                words.contains(REASON) && words.contains("Resume"),
                "{words}"
            );
        }
        other => panic!("a start of a held runtime: {other:?}"),
    }

    // Thawed behind the platform's back: the reconciler freezes it again.
    docker(&["unpause", &container]);
    assert!(!frozen(&container));
    h.orchestrator.reconcile().await.expect("reconcile");
    assert!(frozen(&container), "the reconciler keeps the hold");

    assert_eq!(
        h.orchestrator.release(id, "test").await.expect("release"),
        Resume::Thawed
    );
    assert!(!frozen(&container));
    let b = h.binding(id).await;
    assert_eq!(b.observed(), ObservedState::Running);
    assert_eq!((b.paused_reason, b.paused_in_place), (None, None));
    assert_eq!(open_stretches(&pool, id).await, 1, "metered again");
    assert_eq!(
        h.driver
            .observe(&b.runtime_id)
            .await
            .expect("observe")
            .map(|o| o.ready),
        Some(true),
        "the same process answers again"
    );

    // Frozen without a hold (by hand): the reconciler thaws it.
    docker(&["pause", &container]);
    h.orchestrator.reconcile().await.expect("reconcile");
    assert!(!frozen(&container), "no hold, no freeze");

    // A frozen runtime still stops (its stop thaws it first), workspace kept.
    h.orchestrator.hold(id, REASON).await.expect("hold");
    h.request((id, &name), Action::Stop).await;
    h.drain().await;
    let b = h.binding(id).await;
    assert_eq!(
        (b.desired(), b.observed()),
        (DesiredState::Stopped, ObservedState::Stopped)
    );
    assert_eq!(
        h.orchestrator.release(id, "test").await.expect("release"),
        Resume::Released,
        "a stopped runtime stays stopped"
    );
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}

/// The Docker driver without freezing, like an engine that cannot pause.
struct NoFreeze(Arc<DockerDriver>);

#[async_trait]
impl RuntimeDriver for NoFreeze {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        self.0.ensure_isolation().await
    }
    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        self.0.prepare(spec).await
    }
    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        self.0.ensure(spec, config, replace).await
    }
    async fn set_running(
        &self,
        id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError> {
        self.0.set_running(id, running, grace).await
    }
    async fn observe(&self, id: &str) -> Result<Option<Observation>, DriverError> {
        self.0.observe(id).await
    }
    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        self.0.list().await
    }
    async fn remove(&self, id: &str, wipe: bool) -> Result<(), DriverError> {
        self.0.remove(id, wipe).await
    }
    async fn logs(&self, id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        self.0.logs(id, lines).await
    }
    async fn stats(&self, id: &str) -> Result<Stats, DriverError> {
        self.0.stats(id).await
    }
    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        self.0.disk_usage().await
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn where_the_engine_cannot_freeze_a_hold_stops_the_runtime_and_a_release_starts_it(
    pool: PgPool,
) {
    let h = Harness::new(pool.clone()).await;
    let orchestrator = Orchestrator::new(
        pool.clone(),
        Arc::new(NoFreeze(h.driver.clone())),
        settings(),
        &h.instance,
    );
    let (id, name) = user("kit");
    account(&pool, id, &name).await;
    h.request((id, &name), Action::Start).await;
    h.drain().await;

    assert_eq!(
        orchestrator.hold(id, REASON).await.expect("hold"),
        Hold::Stopped
    );
    while orchestrator.run_next().await.expect("worker") {}
    let b = h.binding(id).await;
    assert_eq!(
        (b.desired(), b.observed(), b.paused_in_place),
        (DesiredState::Stopped, ObservedState::Stopped, Some(false))
    );
    assert_eq!(
        b.stop_reason.as_deref(),
        Some(REASON),
        "the dashboard says why"
    );

    assert_eq!(
        orchestrator.release(id, "test").await.expect("release"),
        Resume::Started
    );
    while orchestrator.run_next().await.expect("worker") {}
    let b = h.binding(id).await;
    assert_eq!(
        (b.desired(), b.observed()),
        (DesiredState::Running, ObservedState::Running)
    );
    h.cleanup();
}
