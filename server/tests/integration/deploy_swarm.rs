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
    assert_eq!(names, ["control-plane", "litellm", "postgres", "traefik"]);
    for (name, service) in services {
        assert!(
            service.get("healthcheck").is_some(),
            "{name} has a health check"
        );
        // No virtual IPs and no routing mesh: both need IPVS (docs/swarm.md).
        assert_eq!(service["deploy"]["endpoint_mode"], "dnsrr", "{name}");
        let ports = service["ports"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            !ports.is_empty(),
            name == "traefik",
            "{name}: only Traefik publishes"
        );
        assert!(
            ports.iter().all(|p| p["mode"] == "host"),
            "{name}: ports on the node itself, not the routing mesh"
        );
        let socket = service["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.to_string().contains("docker.sock"));
        assert_eq!(socket, name == "control-plane", "{name}: the Docker socket");
        if let Some(env) = service["environment"].as_object() {
            for key in env.keys().filter_map(|k| k.strip_prefix("CLAWLOOPS_")) {
                let key = key.to_ascii_lowercase();
                let traefik_reads =
                    name == "traefik" && ["public_host", "control_plane"].contains(&key.as_str());
                assert!(
                    clawloops_server::settings::KEYS.contains(&key.as_str()) || traefik_reads,
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
    // The driver joins Traefik's task to runtime networks by its service's name.
    assert_eq!(
        control["environment"]["CLAWLOOPS_ENTRY_PROXY_CONTAINER"],
        "clawloops_traefik"
    );
    assert_eq!(
        services["traefik"]["deploy"]["placement"]["constraints"],
        serde_json::json!(["node.labels.clawloops.entry == true"])
    );
    assert_eq!(services["traefik"]["deploy"]["replicas"], 1);
    assert_eq!(config["networks"]["backend"]["internal"], true);
    for secret in ["clawloops_postgres_password", "clawloops_secret_key"] {
        assert_eq!(
            config["secrets"][secret]["external"], true,
            "{secret} is made by hand"
        );
    }
}
