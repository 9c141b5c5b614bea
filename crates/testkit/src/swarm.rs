//! The real multi-node Docker Swarm the Swarm tests run on (`scripts/swarm.sh`: one dockerd
//! per node in its own network namespace, a local registry). `scripts/test.sh` brings it up
//! once for the whole run and names it in `CLAWLOOPS_TEST_SWARM_DIR`; a test run by hand
//! brings one up in `/var/tmp/clawloops-swarm` (kept for the next run; `scripts/swarm.sh down`
//! removes it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A swarm that is up, with the given images in its registry.
#[derive(Debug, Clone)]
pub struct Swarm {
    pub dir: PathBuf,
    /// The manager's engine socket.
    pub manager: String,
    /// Every node's engine socket, by hostname (the manager's included).
    pub nodes: BTreeMap<String, String>,
    /// The registry as the nodes reach it (`address:port`).
    pub registry: String,
    /// The host's address on the nodes' bridge.
    pub bridge_ip: String,
}

impl Swarm {
    /// The swarm, brought up (under a lock: tests run in parallel processes) unless it is up,
    /// with `images` (local image references) pushed to its registry unless they are there.
    pub fn get(images: &[&str]) -> Swarm {
        let dir = std::env::var_os("CLAWLOOPS_TEST_SWARM_DIR")
            .map_or_else(|| PathBuf::from("/var/tmp/clawloops-swarm"), PathBuf::from);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/swarm.sh");
        let lock = dir.with_extension("lock");
        let out = Command::new("timeout")
            .arg("600")
            .arg("flock")
            // The daemons `up` starts must not inherit the lock (they would hold it forever).
            .arg("--close")
            .arg(&lock)
            .arg("bash")
            .arg(&script)
            .arg("ensure")
            .arg(&dir)
            .args(images)
            .output()
            .expect("flock and bash run");
        assert!(
            out.status.success(),
            "the test swarm could not be brought up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Swarm::read(&dir)
    }

    fn read(dir: &Path) -> Swarm {
        let text = std::fs::read_to_string(dir.join("env")).expect("the swarm's env file");
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map_or_else(
                    || panic!("{key} missing from the swarm's env file"),
                    |v| v.trim_matches('"').to_owned(),
                )
        };
        let nodes = value("SWARM_NODES")
            .split_whitespace()
            .map(|node| {
                let socket = dir.join(node).join("docker.sock");
                (node.to_owned(), format!("unix://{}", socket.display()))
            })
            .collect();
        Swarm {
            dir: dir.to_owned(),
            manager: format!("unix://{}", value("SWARM_MANAGER_SOCKET")),
            nodes,
            registry: value("SWARM_REGISTRY"),
            bridge_ip: value("SWARM_BRIDGE_IP"),
        }
    }

    /// `image` as the nodes pull it.
    pub fn image(&self, image: &str) -> String {
        format!("{}/{image}", self.registry)
    }

    /// Runs `docker <args>` against the engine of `node`: whether it succeeded, and its
    /// output (stdout then stderr), trimmed.
    pub fn docker(&self, node: &str, args: &[&str]) -> (bool, String) {
        let socket = &self.nodes[node];
        crate::docker(&[&["-H", socket.as_str()][..], args].concat())
    }

    /// Removes everything labelled with installation `instance`: services, secrets and
    /// networks from the manager, containers and volumes from every node (the docker command
    /// line, so that it also works while a failing test unwinds).
    pub fn remove_installation(&self, instance: &str) {
        let filter = format!("label={}={instance}", crate::INSTANCE_LABEL);
        let manager = self.nodes.keys().next().cloned().unwrap_or_default();
        for kind in ["service", "secret", "network"] {
            let (_, ids) = self.docker(&manager, &[kind, "ls", "-q", "--filter", &filter]);
            for id in ids.lines().filter(|l| !l.is_empty()) {
                // A network is free once the service's tasks are gone.
                for _ in 0..50 {
                    if self.docker(&manager, &[kind, "rm", id]).0 || kind != "network" {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
        for node in self.nodes.keys() {
            for (list, remove) in [
                (&["ps", "-aq"][..], &["rm", "-f"][..]),
                (&["volume", "ls", "-q"][..], &["volume", "rm", "-f"][..]),
            ] {
                let (_, ids) = self.docker(node, &[list, &["--filter", &filter]].concat());
                for id in ids.lines().filter(|l| !l.is_empty()) {
                    let _ = self.docker(node, &[remove, &[id]].concat());
                }
            }
        }
    }

    /// Runs `scripts/swarm.sh <command> DIR <args>` (kill or revive a node's engine).
    pub fn script(&self, command: &str, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/swarm.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .status()
            .expect("bash runs");
        assert!(status.success(), "swarm.sh {command} {args:?} failed");
    }
}
