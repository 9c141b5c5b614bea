//! deploy/swarm/stack.yml must be valid for `docker stack deploy` (checked with the real
//! `docker stack config` and deploy/swarm/stack.env.example) and keep what docs/swarm.md
//! promises.

use crate::deploy::{root, yaml_json};
use serde_json::Value;
use std::process::Command;

/// `docker stack config` of the stack with the example's settings, as JSON.
fn stack_config() -> Value {
    let script = "set -a && . deploy/swarm/stack.env.example && set +a && \
                  exec docker stack config -c deploy/swarm/stack.yml";
    let out = Command::new("bash")
        .current_dir(root())
        .args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("bash and docker run");
    assert!(
        out.status.success(),
        "docker stack config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_json(&out.stdout)
}

#[test]
fn the_swarm_stack_is_valid_and_keeps_its_boundaries() {
    let config = stack_config();
    let services = config["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["control-plane", "litellm", "postgres"]);
    for (name, service) in services {
        assert!(
            service.get("healthcheck").is_some(),
            "{name} has a health check"
        );
        // No virtual IPs and no routing mesh: both need IPVS (docs/swarm.md).
        assert_eq!(service["deploy"]["endpoint_mode"], "dnsrr", "{name}");
        // Traefik (deploy/swarm/entry.sh) alone publishes, on the entry node.
        assert!(service.get("ports").is_none(), "{name} publishes nothing");
        let socket = service["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.to_string().contains("docker.sock"));
        assert_eq!(socket, name == "control-plane", "{name}: the Docker socket");
        if let Some(env) = service["environment"].as_object() {
            for key in env.keys().filter_map(|k| k.strip_prefix("CLAWLOOPS_")) {
                let key = key.to_ascii_lowercase();
                assert!(
                    clawloops_server::settings::KEYS.contains(&key.as_str()),
                    "{name}: CLAWLOOPS_{key} is not a setting"
                );
            }
            let text = service["environment"].to_string();
            assert!(
                !text.contains("PASSWORD\":\"") && !text.contains("postgres://clawloops:"),
                "{name}: {text}"
            );
        }
    }
    let control = &services["control-plane"];
    assert!(
        control["deploy"]["replicas"]
            .as_u64()
            .is_some_and(|r| r >= 2),
        "several replicas"
    );
    assert_eq!(control["environment"]["CLAWLOOPS_RUNTIME_ENGINE"], "swarm");
    // The driver joins the entry proxy to runtime networks by the name entry.sh gives it,
    // and the proxy reaches the control plane over the attachable `edge` network.
    let entry = std::fs::read_to_string(root().join("deploy/swarm/entry.sh")).expect("entry.sh");
    let name = control["environment"]["CLAWLOOPS_ENTRY_PROXY_CONTAINER"]
        .as_str()
        .expect("entry proxy container");
    assert!(entry.contains(&format!("--name {name} ")), "{entry}");
    assert!(entry.contains("--network \"${stack}_edge\""), "{entry}");
    assert_eq!(config["networks"]["edge"]["attachable"], true);
    assert_eq!(config["networks"]["backend"]["internal"], true);
    for secret in ["clawloops_postgres_password", "clawloops_secret_key"] {
        assert_eq!(
            config["secrets"][secret]["external"], true,
            "{secret} is made by hand"
        );
    }
}
