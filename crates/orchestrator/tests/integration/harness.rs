//! The orchestrator over a real Docker driver for a fresh installation id and a real
//! PostgreSQL: request actions, drain the task queue, read bindings and tasks, clean up.

use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{Limits, RuntimeDriver};
use clawloops_orchestrator::{Action, Orchestrator, RuntimeSettings, UserRef, repo};
use sqlx::PgPool;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub struct Harness {
    pub orchestrator: Orchestrator,
    pub driver: Arc<DockerDriver>,
    pub pool: PgPool,
    pub instance: String,
    pub config_root: tempfile::TempDir,
}

pub fn settings() -> RuntimeSettings {
    RuntimeSettings {
        profile_name: "stub".into(),
        image: clawloops_testkit::stub_image(),
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
    pub async fn new(pool: PgPool) -> Harness {
        let instance = format!("test-{}", Uuid::new_v4().simple());
        let config_root = tempfile::tempdir().expect("tempdir");
        Self::with(pool, instance, config_root).await
    }

    pub async fn with(pool: PgPool, instance: String, config_root: tempfile::TempDir) -> Harness {
        let driver = DockerDriver::connect(&instance, config_root.path())
            .await
            .expect("Docker engine");
        Self::with_driver(pool, instance, config_root, driver, settings())
    }

    pub fn with_driver(
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
    pub async fn restarted(mut self) -> Harness {
        let pool = self.pool.clone();
        let instance = self.instance.clone();
        // The configuration directory lives on into the restarted harness.
        let config_root =
            std::mem::replace(&mut self.config_root, tempfile::tempdir().expect("tempdir"));
        drop(self);
        Self::with(pool, instance, config_root).await
    }

    pub async fn request(&self, user: (Uuid, &str), action: Action) -> repo::TaskRow {
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
    pub fn config_dir(&self, runtime_id: &str) -> std::path::PathBuf {
        let prefix = clawloops_driver::spec::name_prefix(&self.instance);
        self.config_root
            .path()
            .join(format!("{prefix}-{runtime_id}"))
    }

    /// Runs queued tasks until none is left.
    pub async fn drain(&self) {
        while self.orchestrator.run_next().await.expect("worker") {}
    }

    pub async fn binding(&self, user: Uuid) -> repo::RuntimeRow {
        let mut conn = self.pool.acquire().await.expect("conn");
        repo::get(&mut conn, user)
            .await
            .expect("get")
            .expect("binding")
    }

    pub async fn task(&self, id: Uuid) -> repo::TaskRow {
        let mut conn = self.pool.acquire().await.expect("conn");
        repo::get_task(&mut conn, id)
            .await
            .expect("get")
            .expect("task")
    }

    pub async fn containers(&self) -> Vec<clawloops_driver::Observation> {
        self.driver.list().await.expect("list")
    }

    /// Removes this installation's containers, networks and volumes.
    pub fn cleanup(&self) {
        clawloops_testkit::remove_installation(&self.instance);
    }
}

pub fn user(name: &str) -> (Uuid, String) {
    (Uuid::new_v4(), name.to_owned())
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A failed assertion skips the test's own clean-up: leave nothing behind.
        if std::thread::panicking() {
            clawloops_testkit::remove_installation(&self.instance);
        }
    }
}

pub fn docker_kill(container: &str) {
    let status = Command::new("docker")
        .args(["kill", container])
        .status()
        .expect("docker kill");
    assert!(status.success());
}
