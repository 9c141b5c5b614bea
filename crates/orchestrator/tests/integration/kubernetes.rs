//! The reconciler's scenarios on Kubernetes, through the in-test API server whose kubelet runs
//! Pods on the local Docker engine: a crashed runtime comes back after its back-off, the
//! crash-loop guard stops retrying, an orphan runtime is removed by its labels, and a delete
//! keeps or wipes the workspace claim.

use super::harness::{docker_kill, settings, user};
use clawloops_driver::RuntimeDriver;
use clawloops_driver::kubernetes::{KubeDriver, KubeSettings};
use clawloops_orchestrator::{Action, ObservedState, Orchestrator, Problem, UserRef, repo};
use clawloops_testkit::kubesim::KubeSim;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

struct Cluster {
    sim: KubeSim,
    driver: Arc<KubeDriver>,
    orchestrator: Orchestrator,
    pool: PgPool,
    instance: String,
    namespace: String,
}

impl Cluster {
    async fn new(pool: PgPool) -> Cluster {
        let sim = KubeSim::start().await;
        let instance = format!("test-{}", Uuid::new_v4().simple());
        let namespace = format!("ns-{}", &instance[5..13]);
        let driver = Arc::new(KubeDriver::new(
            sim.client(&namespace),
            KubeSettings::new(&namespace),
            &instance,
        ));
        let orchestrator = Orchestrator::new(pool.clone(), driver.clone(), settings(), &instance);
        Cluster {
            sim,
            driver,
            orchestrator,
            pool,
            instance,
            namespace,
        }
    }

    async fn request(&self, user: (Uuid, &str), action: Action, wipe: bool) {
        let who = UserRef {
            id: user.0,
            username: user.1,
        };
        self.orchestrator
            .request(who, action, wipe, "test")
            .await
            .expect("request");
        while self.orchestrator.run_next().await.expect("worker") {}
    }

    async fn binding(&self, user: Uuid) -> repo::RuntimeRow {
        let mut conn = self.pool.acquire().await.expect("conn");
        repo::get(&mut conn, user)
            .await
            .expect("get")
            .expect("binding")
    }

    /// The uid of the runtime's Pod.
    fn pod_uid(&self, runtime_id: &str) -> String {
        let name = clawloops_driver::spec::Names::new(&self.instance, runtime_id).base;
        let pod = self
            .sim
            .object("pods", &self.namespace, &name)
            .expect("pod");
        pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Kills the runtime's process (SIGKILL, as an OOM kill or a node's hard stop would).
    fn kill(&self, runtime_id: &str) {
        let name = clawloops_driver::spec::Names::new(&self.instance, runtime_id).base;
        let container = self
            .sim
            .container_of(&self.namespace, &name)
            .expect("a running container");
        docker_kill(&container);
    }

    /// Waits until the kubelet reported the Pod's end.
    async fn ended(&self, runtime_id: &str) {
        for _ in 0..100 {
            let seen = self.driver.observe(runtime_id).await.expect("observe");
            if seen.is_some_and(|o| o.phase.exit_code().is_some()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{runtime_id} never ended");
    }

    async fn due_now(&self, user: Uuid) {
        sqlx::query("UPDATE runtimes SET next_recover_at = now() WHERE user_id = $1")
            .bind(user)
            .execute(&self.pool)
            .await
            .expect("due");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        clawloops_testkit::remove_installation(&self.instance);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_crashed_runtime_comes_back_and_a_crash_loop_is_stopped(pool: PgPool) {
    let c = Cluster::new(pool.clone()).await;
    let (id, name) = user("kai");
    c.request((id, &name), Action::Start, false).await;
    assert_eq!(c.binding(id).await.observed(), ObservedState::Running);
    let first = c.pod_uid("rt-kai");
    c.kill("rt-kai");
    c.ended("rt-kai").await;

    let report = c.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.crashes, 1, "{report:?}");
    let fault = c.binding(id).await.fault().expect("a problem");
    assert_eq!(
        fault.problem,
        Problem::Crashed {
            exit_code: Some(137),
            retry_in_secs: 5
        }
    );
    c.due_now(id).await;
    let report = c.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.queued, 1, "{report:?}");
    while c.orchestrator.run_next().await.expect("worker") {}
    assert_eq!(c.binding(id).await.observed(), ObservedState::Running);
    assert_ne!(c.pod_uid("rt-kai"), first, "a fresh pod");
    assert_eq!(c.driver.list().await.expect("list").len(), 1);

    // Four more crashes within ten minutes: the guard stops retrying.
    sqlx::query(
        "UPDATE runtimes SET crash_count = 4, crash_window_start = now() WHERE user_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("earlier crashes");
    c.kill("rt-kai");
    c.ended("rt-kai").await;
    let report = c.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.crash_looping, 1, "{report:?}");
    assert!(matches!(
        c.binding(id).await.fault().expect("a problem").problem,
        Problem::CrashLoop { crashes: 5, .. }
    ));
    c.due_now(id).await;
    let report = c.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.queued, 0, "no more automatic retries: {report:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn orphans_go_by_their_labels_and_delete_keeps_or_wipes_the_claim(pool: PgPool) {
    let c = Cluster::new(pool.clone()).await;
    let (keep_id, keep) = user("lea");
    let (wipe_id, wipe) = user("max");
    let (lost_id, lost) = user("ned");
    for (id, name) in [(keep_id, &keep), (wipe_id, &wipe), (lost_id, &lost)] {
        c.request((id, name), Action::Start, false).await;
    }
    // A binding disappears behind the orchestrator's back (a restored database).
    sqlx::query("DELETE FROM runtimes WHERE user_id = $1")
        .bind(lost_id)
        .execute(&pool)
        .await
        .expect("forget");
    let report = c.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    let left = clawloops_testkit::listed_ids(c.driver.as_ref()).await;
    assert_eq!(left, vec!["rt-lea".to_owned(), "rt-max".to_owned()]);

    c.request((keep_id, &keep), Action::Delete, false).await;
    c.request((wipe_id, &wipe), Action::Delete, true).await;
    assert!(c.driver.list().await.expect("list").is_empty());
    assert!(c.sim.objects("pods", &c.namespace).is_empty());
    assert!(c.sim.objects("secrets", &c.namespace).is_empty());
    let claims: Vec<String> = c
        .sim
        .objects("persistentvolumeclaims", &c.namespace)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        claims.iter().any(|n| n.ends_with("-rt-lea-workspace")),
        "kept: {claims:?}"
    );
    assert!(
        !claims.iter().any(|n| n.ends_with("-rt-max-workspace")),
        "wiped: {claims:?}"
    );
}
