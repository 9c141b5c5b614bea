//! What the driver tests share: a driver for a fresh installation id, specs for the tiny
//! runtime image, and cleanup.

use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{ContainerState, Limits, Profile, RuntimeDriver, RuntimeSpec};
pub use clawloops_testkit::stub_image;
use std::time::{Duration, Instant};

/// The stub's profile, as the driver tests run it.
pub fn profile() -> Profile {
    Profile {
        port: 18789,
        ready_path: "/readyz".into(),
        state_mount: "/state".into(),
        config_mount: None,
        user: "65534:65534".into(),
        tmpfs: vec![("/tmp".into(), "rw,size=16m".into())],
        env: vec![("STUB_READY_AFTER_MS".into(), "200".into())],
    }
}

pub struct Fixture {
    pub driver: DockerDriver,
    pub instance: String,
    pub config_root: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let instance = format!("test-{}", uuid::Uuid::new_v4().simple());
        let config_root = tempfile::tempdir().expect("tempdir");
        let driver = DockerDriver::connect(&instance, config_root.path())
            .await
            .expect("Docker engine reachable");
        assert!(
            driver.image_present(&stub_image()).await.expect("inspect"),
            "{} missing: run scripts/build-images.sh stub",
            stub_image()
        );
        Fixture {
            driver,
            instance,
            config_root,
        }
    }

    pub fn spec(&self, name: &str) -> RuntimeSpec {
        RuntimeSpec {
            runtime_id: format!("rt-{name}-{}", &self.instance[5..13]),
            owner: format!("owner-{name}"),
            instance: self.instance.clone(),
            image: stub_image(),
            profile: profile(),
            limits: Limits {
                memory_mb: 64,
                cpus: 0.5,
                pids: 64,
                disk_mb: None,
            },
            config_hash: "hash-1".into(),
            egress: Default::default(),
        }
    }

    pub async fn running(&self, spec: &RuntimeSpec) -> clawloops_driver::ContainerInfo {
        running(&self.driver, spec).await
    }

    pub async fn teardown(&self, specs: &[RuntimeSpec]) {
        for spec in specs {
            if let Ok(Some(info)) = self.driver.find(&spec.runtime_id).await {
                let _ = self.driver.remove(&info.id).await;
            }
            let _ = self.driver.cleanup(spec, true).await;
        }
    }
}

/// `docker inspect` of one container.
pub fn inspect(container: &str) -> serde_json::Value {
    clawloops_testkit::inspect("container", container)
}

/// `docker network inspect` of one network.
pub fn inspect_network(network: &str) -> serde_json::Value {
    clawloops_testkit::inspect("network", network)
}

/// Prepares, creates and starts `spec` through `driver`, and waits until it answers.
pub async fn running(
    driver: &dyn RuntimeDriver,
    spec: &RuntimeSpec,
) -> clawloops_driver::ContainerInfo {
    driver.prepare(spec).await.expect("prepare");
    let created = driver.create(spec).await.expect("create");
    driver.start(&created.id).await.expect("start");
    let info = driver
        .find(&spec.runtime_id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(info.state, ContainerState::Running);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !driver.probe(&info, &spec.profile).await {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    info
}
