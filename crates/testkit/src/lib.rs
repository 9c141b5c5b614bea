//! What the integration tests (and the benchmarks) share, so that none of it is copied from one
//! test binary to the next: the stub runtime image ([`stub_image`]), the `docker` command line
//! ([`docker`]) and cleanup by installation label ([`remove_installation`]), a local entry proxy
//! with the repository's Traefik configuration ([`entry_proxy`]) and a test certificate
//! authority ([`certificates`]), the real LiteLLM proxy ([`litellm`]) and a fake
//! OpenAI-compatible upstream ([`upstream`]).
//!
//! Nothing here knows the control plane's types: each crate keeps its own harness (the server's
//! `TestServer`, the orchestrator's `Harness`) on top of these parts.

pub mod certificates;
pub mod entry_proxy;
pub mod kubesim;
pub mod litellm;
pub mod oidc;
pub mod swarm;
pub mod upstream;

use std::process::Command;

/// The label every Docker object of an installation carries, with the installation's id.
pub const INSTANCE_LABEL: &str = "org.clawloops.instance";

/// The tiny runtime image the tests start (`scripts/build-images.sh stub`), unless
/// `CLAWLOOPS_TEST_STUB_IMAGE` names another.
pub fn stub_image() -> String {
    std::env::var("CLAWLOOPS_TEST_STUB_IMAGE")
        .unwrap_or_else(|_| format!("clawloops/runtime-stub:{}", env!("CARGO_PKG_VERSION")))
}

/// Runs `docker <args>`: whether it succeeded, and its output (stdout then stderr), trimmed.
pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker command runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_owned())
}

/// `docker inspect` of one object (container, volume, image), or `null` if there is none.
pub fn inspect(kind: &str, name: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .expect("docker inspect");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    all[0].clone()
}

/// Removes every container, network and volume labelled with installation `instance` (the
/// docker command line, so that it also works while a failing test unwinds).
pub fn remove_installation(instance: &str) {
    let filter = format!("label={INSTANCE_LABEL}={instance}");
    for (list, remove) in [
        (&["ps", "-aq"][..], &["rm", "-f"][..]),
        (&["network", "ls", "-q"][..], &["network", "rm"][..]),
        (&["volume", "ls", "-q"][..], &["volume", "rm", "-f"][..]),
    ] {
        let (_, ids) = docker(&[list, &["--filter", &filter]].concat());
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = docker(&[remove, &[id]].concat());
        }
    }
}

/// The ids of this installation's objects of one kind (`ps -a`, `network ls`, `volume ls`)
/// carrying the extra label `label` (`key=value`), if any.
pub fn labelled(list: &[&str], instance: &str, label: Option<&str>) -> Vec<String> {
    let filter = format!("label={INSTANCE_LABEL}={instance}");
    let mut args = [list, &["-q", "--filter", &filter]].concat();
    let extra = label.map(|l| format!("label={l}"));
    if let Some(extra) = &extra {
        args.extend(["--filter", extra]);
    }
    let (_, ids) = docker(&args);
    ids.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The runtime ids a driver lists, sorted.
pub async fn listed_ids(driver: &dyn clawloops_driver::RuntimeDriver) -> Vec<String> {
    let mut ids: Vec<String> = driver
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.runtime_id)
        .collect();
    ids.sort();
    ids
}
