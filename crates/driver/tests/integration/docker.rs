//! The Docker driver against the real engine, with the tiny runtime image
//! (`scripts/build-images.sh stub` builds it). Each test uses its own instance id, so tests run
//! side by side and clean up only what they made.

use crate::conformance::{self, Hardening, Target};
use crate::support::{Fixture, inspect, inspect_network};
use async_trait::async_trait;
use clawloops_driver::docker::managed_volumes;
use clawloops_driver::{RuntimeDriver, RuntimeSpec};
use std::process::Command;

#[tokio::test]
async fn a_runtime_gets_its_own_internal_network_on_a_small_subnet_and_no_ports() {
    let f = Fixture::new().await;
    let spec = f.spec("hard");
    f.running(&spec).await;
    let doc = inspect(&spec.container_name());
    let host = &doc["HostConfig"];
    assert!(
        host["PortBindings"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty),
        "no published ports"
    );
    assert_eq!(host["NetworkMode"], spec.network_name());
    assert_eq!(doc["Config"]["Hostname"], spec.hostname());
    assert_eq!(
        doc["Config"]["Labels"]["org.clawloops.config-hash"],
        "hash-1"
    );
    let net = inspect_network(&spec.network_name());
    assert_eq!(net["Internal"], true, "no route out of the runtime network");
    let subnet = net["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default();
    assert!(
        subnet.starts_with("10.213.") && subnet.ends_with("/28"),
        "a /28 of the runtime pool, not Docker's default pools: {subnet}"
    );
    f.teardown(&[spec]).await;
}

/// The Docker driver as a conformance target.
pub struct DockerTarget(pub Fixture);

#[async_trait]
impl Target for DockerTarget {
    fn driver(&self) -> &dyn RuntimeDriver {
        &self.0.driver
    }
    fn spec(&self, name: &str) -> RuntimeSpec {
        self.0.spec(name)
    }
    async fn hardening(&self, spec: &RuntimeSpec) -> Hardening {
        let doc = inspect(&spec.container_name());
        let host = &doc["HostConfig"];
        Hardening {
            read_only_root: host["ReadonlyRootfs"] == true,
            no_capabilities: host["CapDrop"] == serde_json::json!(["ALL"]),
            no_new_privileges: Some(
                host["SecurityOpt"]
                    .to_string()
                    .contains("no-new-privileges"),
            ),
            memory_bytes: host["Memory"].as_i64().unwrap_or_default(),
            pids: host["PidsLimit"].as_i64(),
            user: doc["Config"]["User"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }
    async fn workspace_exists(&self, spec: &RuntimeSpec) -> bool {
        managed_volumes(&self.0.driver)
            .await
            .expect("volumes")
            .contains(&spec.volume_name())
    }
    async fn reach_from(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String> {
        probe_in(&spec.container_name(), targets)
    }
    fn forbidden(&self) -> Vec<String> {
        // The host on Docker's default bridge, and the engine's own API port.
        vec!["172.17.0.1:22".into(), "172.17.0.1:2375".into()]
    }
}

/// Runs the stub's probe inside `container` (on the local engine).
pub fn probe_in(container: &str, targets: &[String]) -> Vec<String> {
    let out = Command::new("docker")
        .args(["exec", container, "/runtime-stub", "probe", "2000"])
        .args(targets)
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_docker_driver_passes_the_conformance_suite() {
    conformance::suite(&DockerTarget(Fixture::new().await)).await;
}

#[tokio::test]
async fn list_sees_only_this_installations_runtimes() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    let mine = f.spec("mine");
    let theirs = other.spec("theirs");
    f.running(&mine).await;
    other.running(&theirs).await;
    let listed = f.driver.list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].runtime_id, mine.runtime_id);
    assert_eq!(listed[0].owner, "owner-mine");
    // Another installation's runtime of the same id is out of reach.
    f.driver
        .remove(&theirs.runtime_id, true)
        .await
        .expect("remove");
    assert!(
        other
            .driver
            .observe(&theirs.runtime_id)
            .await
            .expect("observe")
            .is_some()
    );
    f.teardown(&[mine]).await;
    other.teardown(&[theirs]).await;
}

/// Installations starting a runtime of the same name at the same moment (the tests of several
/// suites, replicas of two installations on one engine) start from the same candidate subnet:
/// each one Docker refuses as overlapping is not tried again, and every network is made.
#[tokio::test]
async fn simultaneous_runtimes_of_the_same_name_all_get_a_network() {
    let fixtures = futures_util::future::join_all((0..6).map(|_| Fixture::new())).await;
    let specs: Vec<_> = fixtures
        .iter()
        .map(|f| {
            let mut spec = f.spec("same");
            spec.runtime_id = "rt-same-name".into();
            spec
        })
        .collect();
    let prepared = futures_util::future::join_all(
        fixtures
            .iter()
            .zip(&specs)
            .map(|(f, spec)| f.driver.prepare(spec)),
    )
    .await;
    let mut subnets = Vec::new();
    for (f, spec) in fixtures.iter().zip(&specs) {
        let seen = inspect_network(&spec.network_name());
        subnets.push(
            seen["IPAM"]["Config"][0]["Subnet"]
                .as_str()
                .map(str::to_owned),
        );
        f.teardown(std::slice::from_ref(spec)).await;
    }
    for result in &prepared {
        assert!(result.is_ok(), "{result:?}");
    }
    let mut distinct = subnets.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "{subnets:?}");
}
