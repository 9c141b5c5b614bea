//! The Docker driver against the real engine, with the tiny runtime image
//! (`scripts/build-images.sh stub` builds it). Each test uses its own instance id, so tests run
//! side by side and clean up only what they made.

use crate::support::{Fixture, inspect, inspect_network};
use clawloops_driver::docker::managed_volumes;
use clawloops_driver::{ContainerState, RuntimeDriver};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_runtime_is_created_hardened_on_its_own_network_and_becomes_ready() {
    let f = Fixture::new().await;
    let spec = f.spec("hard");
    let info = f.running(&spec).await;
    let doc = inspect(&info.id);
    let host = &doc["HostConfig"];
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["CapDrop"][0], "ALL");
    assert!(
        host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{host}"
    );
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 64);
    assert!(
        host["PortBindings"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty),
        "no published ports"
    );
    assert_eq!(host["NetworkMode"], spec.network_name());
    assert_eq!(doc["Config"]["User"], "65534:65534");
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

#[tokio::test]
async fn stop_start_remove_and_cleanup_are_idempotent_and_keep_or_wipe_the_workspace() {
    let f = Fixture::new().await;
    let keep = f.spec("keep");
    let wipe = f.spec("wipe");
    for spec in [&keep, &wipe] {
        let info = f.running(spec).await;
        f.driver
            .stop(&info.id, Duration::from_secs(5))
            .await
            .expect("stop");
        f.driver
            .stop(&info.id, Duration::from_secs(5))
            .await
            .expect("stop twice is fine");
        let stopped = f
            .driver
            .find(&spec.runtime_id)
            .await
            .expect("find")
            .expect("still there");
        assert!(
            matches!(stopped.state, ContainerState::Exited(_)),
            "{:?}",
            stopped.state
        );
        f.driver.remove(&info.id).await.expect("remove");
        f.driver
            .remove(&info.id)
            .await
            .expect("remove twice is fine");
        assert!(
            f.driver
                .find(&spec.runtime_id)
                .await
                .expect("find")
                .is_none()
        );
    }
    f.driver
        .cleanup(&keep, false)
        .await
        .expect("cleanup keeping");
    f.driver.cleanup(&wipe, true).await.expect("cleanup wiping");
    let volumes = managed_volumes(&f.driver).await.expect("volumes");
    assert!(volumes.contains(&keep.volume_name()), "{volumes:?}");
    assert!(!volumes.contains(&wipe.volume_name()), "{volumes:?}");
    f.teardown(&[keep, wipe]).await;
}

#[tokio::test]
async fn a_second_create_with_the_same_name_is_a_conflict_not_a_crash() {
    let f = Fixture::new().await;
    let spec = f.spec("twice");
    f.driver.prepare(&spec).await.expect("prepare");
    f.driver.create(&spec).await.expect("first");
    let err = f.driver.create(&spec).await.expect_err("second");
    assert!(
        matches!(err, clawloops_driver::DriverError::Conflict),
        "{err}"
    );
    f.teardown(&[spec]).await;
}

#[tokio::test]
async fn a_missing_image_is_named_in_the_error() {
    let f = Fixture::new().await;
    let mut spec = f.spec("noimg");
    spec.image = "clawloops/no-such-image:0".into();
    f.driver.prepare(&spec).await.expect("prepare");
    let err = f.driver.create(&spec).await.expect_err("no image");
    assert!(
        matches!(err, clawloops_driver::DriverError::ImageMissing(ref image) if image == "clawloops/no-such-image:0"),
        "{err}"
    );
    f.teardown(&[spec]).await;
}

#[tokio::test]
async fn list_sees_only_this_installations_containers_and_logs_and_stats_work() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    let mine = f.spec("mine");
    let theirs = other.spec("theirs");
    let info = f.running(&mine).await;
    other.running(&theirs).await;
    let listed = f.driver.list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].runtime_id, mine.runtime_id);
    assert_eq!(listed[0].owner, "owner-mine");
    let logs = f.driver.logs(&info.id, 10).await.expect("logs");
    assert!(
        logs.iter().any(|l| l.contains("listening on port 18789")),
        "{logs:?}"
    );
    let stats = f.driver.stats(&info.id).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 64 * 1024 * 1024);
    f.teardown(&[mine]).await;
    other.teardown(&[theirs]).await;
}

/// Tries a TCP connection from a throwaway container on `network` (Debian base image, bash).
fn can_connect(network: &str, ip: std::net::IpAddr) -> bool {
    let status = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            network,
            "clawloops/debian:bookworm-min",
            "timeout",
            "3",
            "bash",
            "-c",
        ])
        .arg(format!("exec 3<>/dev/tcp/{ip}/18789"))
        .status()
        .expect("docker run");
    status.success()
}

#[tokio::test]
async fn two_users_runtimes_cannot_reach_each_other() {
    let f = Fixture::new().await;
    let (a, b) = (f.spec("alice"), f.spec("bob"));
    let ia = f.running(&a).await;
    let ib = f.running(&b).await;
    let (ip_a, ip_b) = (ia.ip.expect("ip a"), ib.ip.expect("ip b"));
    assert!(
        can_connect(&a.network_name(), ip_a),
        "a neighbour on A's network reaches A"
    );
    assert!(
        !can_connect(&a.network_name(), ip_b),
        "nothing on A's network reaches B"
    );
    assert!(
        !can_connect(&b.network_name(), ip_a),
        "nothing on B's network reaches A"
    );
    f.teardown(&[a, b]).await;
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
