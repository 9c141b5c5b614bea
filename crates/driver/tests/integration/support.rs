//! What the driver tests share: a driver for a fresh installation id, specs for the tiny
//! runtime image, and cleanup.

use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{Limits, Observation, Profile, RuntimeDriver, RuntimeSpec};
pub use clawloops_testkit::stub_image;
use std::time::{Duration, Instant};

/// The stub's profile, as the driver tests run it.
pub fn profile() -> Profile {
    Profile {
        port: 18789,
        ready_path: "/readyz".into(),
        state_mount: "/state".into(),
        config_mount: Some("/etc/clawloops".into()),
        user: "65534:65534".into(),
        tmpfs: vec![("/tmp".into(), "rw,size=16m".into())],
        env: vec![("STUB_READY_AFTER_MS".into(), "200".into())],
        health_command: vec![
            "/runtime-stub".into(),
            "ready".into(),
            "http://127.0.0.1:18789/readyz".into(),
        ],
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
        spec(&self.instance, name, stub_image())
    }

    pub async fn running(&self, spec: &RuntimeSpec) -> Observation {
        running(&self.driver, spec).await
    }

    pub async fn teardown(&self, specs: &[RuntimeSpec]) {
        for spec in specs {
            let _ = self.driver.remove(&spec.runtime_id, true).await;
        }
    }
}

/// A spec for the stub as runtime `name` of installation `instance` (64 MiB, half a core, 64
/// processes, no disk limit).
pub fn spec(instance: &str, name: &str, image: String) -> RuntimeSpec {
    RuntimeSpec {
        runtime_id: format!("rt-{name}-{}", &instance[5..13]),
        owner: format!("owner-{name}"),
        instance: instance.to_owned(),
        image,
        profile: profile(),
        limits: Limits {
            memory_mb: 64,
            cpus: 0.5,
            pids: 64,
            disk_mb: None,
        },
        config_hash: "hash-1".into(),
        egress: Default::default(),
        placement: None,
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

/// A stand-in for the rendered configuration.
pub const CONFIG: &str = "{\"gateway\":{}}";

/// Prepares, ensures and starts `spec` through `driver`, and waits until it answers.
pub async fn running(driver: &dyn RuntimeDriver, spec: &RuntimeSpec) -> Observation {
    driver.prepare(spec).await.expect("prepare");
    driver.ensure(spec, CONFIG, false).await.expect("ensure");
    driver
        .set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect("start");
    up(driver, &spec.runtime_id).await
}

/// Waits until the runtime runs and answers (60 s at most: a Swarm task is placed, pulled
/// and health-checked first).
pub async fn up(driver: &dyn RuntimeDriver, runtime_id: &str) -> Observation {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = driver.observe(runtime_id).await.expect("observe");
        match seen {
            Some(o) if o.is_up() => return o,
            other => assert!(
                Instant::now() < deadline,
                "{runtime_id} never became ready: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `check` holds for the runtime's observation (60 s at most).
pub async fn until(
    driver: &dyn RuntimeDriver,
    runtime_id: &str,
    what: &str,
    check: impl Fn(Option<&Observation>) -> bool,
) -> Option<Observation> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = driver.observe(runtime_id).await.expect("observe");
        if check(seen.as_ref()) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{runtime_id}: never {what}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stop grace the tests give runtimes.
pub const GRACE: Duration = Duration::from_secs(5);
