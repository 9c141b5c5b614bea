//! The Swarm driver on a real three-node swarm (`clawloops_testkit::swarm`): the conformance
//! suite, and what only a swarm has — runtimes spread over nodes, the lockdown from a worker
//! node with the entry proxy on another, the hardening the engine drops reported, and a
//! runtime whose node is lost.

use crate::conformance::{self, Hardening, Target};
use crate::support::{GRACE, running, stub_image, until};
use async_trait::async_trait;
use clawloops_driver::swarm::SwarmDriver;
use clawloops_driver::{Phase, RuntimeDriver, RuntimeSpec};
use clawloops_testkit::swarm::Swarm;

/// A driver for a fresh installation on the swarm, with a stand-in entry proxy (the stub,
/// serving) on the manager node.
pub struct SwarmTarget {
    pub swarm: Swarm,
    pub driver: SwarmDriver,
    pub instance: String,
}

impl SwarmTarget {
    /// With the entry proxy stand-in (the stub, serving) as a container on the manager node.
    pub fn new() -> SwarmTarget {
        let swarm = Swarm::get(&[&stub_image()]);
        let instance = format!("test-{}", uuid::Uuid::new_v4().simple());
        let entry = format!("clawloops-entry-{}", &instance[5..13]);
        let image = swarm.image(&stub_image());
        let label = format!("org.clawloops.instance={instance}");
        let (ok, out) = swarm.docker(
            "clsw-m1",
            &["run", "-d", "--name", &entry, "--label", &label, &image],
        );
        assert!(ok, "the entry proxy stand-in: {out}");
        let driver = SwarmDriver::connect(&swarm.manager, &swarm.nodes, &instance)
            .expect("engines")
            .with_entry_proxy("clsw-m1", &entry);
        SwarmTarget {
            swarm,
            driver,
            instance,
        }
    }

    /// Runs the stub's probe inside the runtime's task container, on its node.
    fn probe(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String> {
        let filter = format!("label=org.clawloops.runtime={}", spec.runtime_id);
        for node in self.swarm.nodes.keys() {
            let (_, id) = self.swarm.docker(node, &["ps", "-q", "--filter", &filter]);
            if let Some(id) = id.lines().next().filter(|l| !l.is_empty()) {
                let args = [
                    &["exec", id, "/runtime-stub", "probe", "2000"][..],
                    &targets.iter().map(String::as_str).collect::<Vec<_>>(),
                ]
                .concat();
                let (_, out) = self.swarm.docker(node, &args);
                return out.lines().map(str::to_owned).collect();
            }
        }
        panic!("no running container for {}", spec.runtime_id);
    }

    /// `docker inspect` of the runtime's task container, on its node.
    fn container(&self, spec: &RuntimeSpec) -> serde_json::Value {
        let filter = format!("label=org.clawloops.runtime={}", spec.runtime_id);
        for node in self.swarm.nodes.keys() {
            let (_, id) = self.swarm.docker(node, &["ps", "-q", "--filter", &filter]);
            if let Some(id) = id.lines().next().filter(|l| !l.is_empty()) {
                let (_, doc) = self.swarm.docker(node, &["inspect", id]);
                let all: serde_json::Value = serde_json::from_str(&doc).expect("inspect");
                return all[0].clone();
            }
        }
        panic!("no running container for {}", spec.runtime_id);
    }
}

impl Drop for SwarmTarget {
    fn drop(&mut self) {
        // The entry stand-in carries the installation's label too.
        self.swarm.remove_installation(&self.instance);
    }
}

#[async_trait]
impl Target for SwarmTarget {
    fn driver(&self) -> &dyn RuntimeDriver {
        &self.driver
    }
    fn spec(&self, name: &str) -> RuntimeSpec {
        crate::support::spec(&self.instance, name, self.swarm.image(&stub_image()))
    }
    async fn hardening(&self, spec: &RuntimeSpec) -> Hardening {
        let doc = self.container(spec);
        let host = &doc["HostConfig"];
        let nnp = host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges");
        if !nnp {
            // Dropped by the engine: the driver must say so.
            assert!(
                self.driver
                    .hardening_gaps()
                    .iter()
                    .any(|g| g.starts_with("no-new-privileges")),
                "no-new-privileges silently lost"
            );
        }
        Hardening {
            read_only_root: host["ReadonlyRootfs"] == true,
            no_capabilities: host["CapDrop"] == serde_json::json!(["ALL"]),
            no_new_privileges: nnp.then_some(true),
            memory_bytes: host["Memory"].as_i64().unwrap_or_default(),
            pids: host["PidsLimit"].as_i64(),
            user: doc["Config"]["User"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }
    async fn workspace_exists(&self, spec: &RuntimeSpec) -> bool {
        self.swarm.nodes.keys().any(|node| {
            self.swarm
                .docker(node, &["volume", "inspect", &spec.volume_name()])
                .0
        })
    }
    async fn reach_from(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String> {
        self.probe(spec, targets)
    }
    fn forbidden(&self) -> Vec<String> {
        // The host (and the registry on it), the manager's swarm port, another node's gossip.
        vec![
            format!("{}:5000", self.swarm.bridge_ip),
            format!("{}:22", self.swarm.bridge_ip),
            "10.231.0.11:2377".into(),
            "10.231.0.12:7946".into(),
        ]
    }
}

#[tokio::test]
async fn the_swarm_driver_passes_the_conformance_suite() {
    conformance::suite(&SwarmTarget::new()).await;
}

/// Three runtimes land on three nodes; one on a worker reaches the entry proxy on the manager
/// node (and nothing else: the conformance suite's lockdown check); each is pinned where it
/// was placed.
#[tokio::test]
async fn runtimes_spread_over_the_nodes_and_reach_the_entry_proxy_across_them() {
    let t = SwarmTarget::new();
    let specs: Vec<_> = ["ann", "ben", "cat"].iter().map(|n| t.spec(n)).collect();
    let mut nodes = Vec::new();
    let mut entry_ips = Vec::new();
    for spec in &specs {
        entry_ips.push(t.driver.prepare(spec).await.expect("prepare").entry_ip);
        let up = running(&t.driver, spec).await;
        nodes.push(up.node.clone().expect("pinned"));
    }
    let mut distinct = nodes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "spread over the nodes: {nodes:?}");
    let (worker, entry_ip) = specs
        .iter()
        .zip(&entry_ips)
        .zip(&nodes)
        .find(|(_, n)| n.as_str() != "clsw-m1")
        .map(|(found, _)| found)
        .expect("one on a worker");
    let entry = format!(
        "http://{}:18789/healthz",
        entry_ip.expect("entry proxy joined")
    );
    let outcome = t.probe(worker, &[entry]);
    assert!(
        outcome.first().is_some_and(|o| o.contains("http 200")),
        "a runtime on a worker reaches the entry proxy on the manager: {outcome:?}"
    );
    conformance::Target::teardown(&t, &specs).await;
}

/// A runtime whose node's engine dies is reported as waiting for its node (not crashed); once
/// the node is back it is stopped, and starts there again, once.
#[tokio::test]
async fn a_runtime_on_a_lost_node_waits_for_it_and_comes_back_once() {
    let t = SwarmTarget::new();
    let mut spec = t.spec("lost");
    spec.placement = Some("clsw-w2".into());
    let before = running(&t.driver, &spec).await;
    assert_eq!(before.node.as_deref(), Some("clsw-w2"));
    t.swarm.script("kill", &["clsw-w2"]);
    let down = until(&t.driver, &spec.runtime_id, "waiting for its node", |o| {
        o.is_some_and(|o| o.phase == Phase::NodeDown)
    })
    .await
    .expect("still there");
    assert!(
        down.reason
            .as_deref()
            .is_some_and(|r| r.contains("clsw-w2")),
        "{down:?}"
    );
    t.swarm.script("revive", &["clsw-w2"]);
    // The engine shut the task down and does not replace it (restart condition none): the
    // orchestrator starts it again once its node is back.
    let after = until(&t.driver, &spec.runtime_id, "its node back", |o| {
        o.is_some_and(|o| o.phase != Phase::NodeDown && o.phase != Phase::Running)
    })
    .await
    .expect("still there");
    assert!(matches!(after.phase, Phase::Stopped { .. }), "{after:?}");
    t.driver
        .set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect("start again");
    let back = crate::support::up(&t.driver, &spec.runtime_id).await;
    assert_eq!(back.node.as_deref(), Some("clsw-w2"));
    let filter = format!("label=org.clawloops.runtime={}", spec.runtime_id);
    let (_, ids) = t
        .swarm
        .docker("clsw-w2", &["ps", "-q", "--filter", &filter]);
    assert_eq!(ids.lines().count(), 1, "one container, not two: {ids}");
    t.driver
        .set_running(&spec.runtime_id, false, GRACE)
        .await
        .expect("stop");
    conformance::Target::teardown(&t, &[spec]).await;
}
