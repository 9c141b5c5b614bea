//! The deployment files: docker-compose.yml must be valid for Compose (checked with the real
//! `docker compose` / `docker-compose config`) and keep the boundaries the README promises.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `config` of the repository's compose file with `.env.example`, as JSON.
fn compose_config() -> Value {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        Command::new("docker-compose")
    };
    let out = command
        .current_dir(root())
        .args([
            "--env-file",
            ".env.example",
            "-f",
            "docker-compose.yml",
            "config",
        ])
        .output()
        .expect("docker compose or docker-compose is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "compose config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_json(&out.stdout)
}

/// YAML as JSON (Debian's python3-yaml, a dependency of docker-compose, converts it).
pub fn yaml_json(yaml: &[u8]) -> Value {
    let mut python = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        python
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml)
            .expect("write");
    }
    let json = python.wait_with_output().expect("converted");
    serde_json::from_slice(&json.stdout).expect("json")
}

#[test]
fn the_compose_stack_is_valid_and_keeps_its_boundaries() {
    let config = compose_config();
    let dynamic = std::fs::read_to_string(root().join("deploy/traefik/dynamic/clawloops.yml"))
        .expect("dynamic configuration");
    let services = config["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "control-plane",
            "litellm",
            "postgres",
            "runtime-firewall",
            "runtime-manager",
            "traefik"
        ]
    );
    for (name, service) in services {
        assert!(
            service.get("healthcheck").is_some(),
            "{name} has a health check"
        );
        let publishes = service.get("ports").is_some();
        assert_eq!(
            publishes,
            name == "traefik",
            "{name}: only Traefik publishes a port"
        );
        let socket = service["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.to_string().contains("docker.sock"));
        assert_eq!(
            socket,
            name == "runtime-manager",
            "{name}: only the runtime manager has the Docker socket"
        );
        // Every ClawLoops setting named in the file is a real one (a typo would be ignored).
        if let Some(env) = service["environment"].as_object() {
            for key in env.keys().filter_map(|k| k.strip_prefix("CLAWLOOPS_")) {
                let key = key.to_ascii_lowercase();
                // Traefik's variables are those its configuration reads.
                let traefik_reads = name == "traefik"
                    && dynamic.contains(&format!("env \"CLAWLOOPS_{}\"", key.to_ascii_uppercase()));
                let known = clawloops_server::settings::KEYS.contains(&key.as_str())
                    || traefik_reads
                    || ["host_data_dir"].contains(&key.as_str());
                assert!(known, "{name}: CLAWLOOPS_{key} is not a setting");
            }
        }
    }
    assert_eq!(config["networks"]["backend"]["internal"], true);
    assert_eq!(
        services["runtime-manager"]["networks"]
            .as_object()
            .map(|n| n.keys().cloned().collect::<Vec<_>>())
            .or_else(
                || services["runtime-manager"]["networks"].as_array().map(|a| a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect())
            ),
        Some(vec!["backend".to_owned()]),
        "the runtime manager is reachable only on the internal network"
    );
    // The host firewall for runtimes: kept by a service of its own in the host's network
    // namespace, with network administration and nothing else; the runtime manager leaves it
    // to that service.
    let firewall = &services["runtime-firewall"];
    assert_eq!(firewall["network_mode"], "host");
    assert_eq!(firewall["cap_drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        firewall["cap_add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(
        services["runtime-manager"]["environment"]["CLAWLOOPS_RUNTIME_FIREWALL"],
        "external"
    );
    // The database's credentials are the control plane's alone: the runtime manager, which
    // holds the Docker socket, never has them.
    let manager_env = services["runtime-manager"]["environment"].to_string();
    assert!(
        !manager_env.contains("DATABASE") && !manager_env.contains("postgres://"),
        "{manager_env}"
    );
    assert!(
        services["control-plane"]["environment"]["CLAWLOOPS_DATABASE_URL"]
            .as_str()
            .is_some_and(|u| u.starts_with("postgres://clawloops@"))
    );
    // Secrets are files (compose secrets), in no service's environment: each service gets
    // the ones it needs and no other.
    for (name, service) in services {
        let env = service["environment"].to_string();
        for secret in ["PASSWORD\":\"", "SECRET\":\"", "postgres://clawloops:"] {
            assert!(
                !env.contains(secret),
                "{name} has a secret in its environment: {env}"
            );
        }
        let mut secrets: Vec<&str> = service["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            // `compose config` writes the long form.
            .filter_map(|s| s.as_str().or_else(|| s["source"].as_str()))
            .collect();
        secrets.sort_unstable();
        let expected: &[&str] = match name.as_str() {
            "control-plane" => &["postgres_password", "runtime_manager_secret", "secret_key"],
            "runtime-manager" => &["runtime_manager_secret"],
            "postgres" => &["postgres_password"],
            _ => &[],
        };
        assert_eq!(secrets, expected, "{name}'s secrets");
    }
    for secret in ["postgres_password", "runtime_manager_secret", "secret_key"] {
        assert!(
            config["secrets"][secret]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(&format!("/{secret}"))),
            "{secret} is a file"
        );
    }
    // Only Traefik's own address may claim a client address or read the routes.
    let traefik_ip = services["traefik"]["networks"]["edge"]["ipv4_address"]
        .as_str()
        .expect("Traefik has a fixed address");
    assert_eq!(
        services["control-plane"]["environment"]["CLAWLOOPS_TRUSTED_PROXIES"],
        format!("[\"{traefik_ip}/32\"]")
    );
    // The driver joins Traefik to runtime networks by this name.
    assert_eq!(
        services["traefik"]["container_name"],
        services["control-plane"]["environment"]["CLAWLOOPS_ENTRY_PROXY_CONTAINER"]
    );
}

#[test]
fn traefik_exposes_no_dashboard_and_trusts_no_client_headers() {
    let traefik =
        std::fs::read_to_string(root().join("deploy/traefik/traefik.yml")).expect("static");
    assert!(traefik.contains("dashboard: false") && traefik.contains("insecure: false"));
    // Production trusts no client's X-Forwarded-* (tests add it for loopback clients): the one
    // entry point that keeps them is `internal`, Traefik's own loopback door back to the
    // control plane (several replicas), trusting only loopback.
    assert_eq!(
        traefik.matches("forwardedHeaders").count(),
        1,
        "only the internal entry point keeps forwarded headers"
    );
    let internal = traefik
        .split("\n  internal:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the internal entry point");
    assert!(
        internal.contains("address: \"127.0.0.1:8002\"")
            && internal.contains("forwardedHeaders:\n      trustedIPs: [\"127.0.0.1/32\"]"),
        "{internal}"
    );
    let dynamic = std::fs::read_to_string(root().join("deploy/traefik/dynamic/clawloops.yml"))
        .expect("dynamic");
    assert!(dynamic.contains("trustForwardHeader: false"));
    for header in ["X-Forwarded-User", "X-Clawloops-User-Id", "Cookie"] {
        assert!(
            dynamic.contains(&format!("\"{header}\"")),
            "{header} is replaced by forward-auth's answer"
        );
    }
    assert!(dynamic.contains("!PathPrefix(`/internal/`)"));
    // Runtimes have a door of their own (never published): the model gateway's /v1/ only.
    assert!(
        traefik.contains("runtime:\n    address: \":8001\""),
        "{traefik}"
    );
    let gateway = dynamic
        .split("model-gateway:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the model-gateway router");
    assert!(
        gateway.contains("entryPoints: [runtime]") && gateway.contains("PathPrefix(`/v1/`)"),
        "{gateway}"
    );
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose");
    assert!(
        !compose.contains(":8001"),
        "the runtime entry point is never published"
    );
}
