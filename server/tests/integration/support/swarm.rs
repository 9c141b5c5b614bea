//! The control plane driving runtimes on a real three-node Docker Swarm
//! (`clawloops_testkit::swarm`), behind a real Traefik that runs as a container on the manager
//! node and joins every runtime's overlay network, as docs/swarm.md deploys it.

use super::entry::{DOMAIN, Entry};
use super::{TestServer, use_stub_runtimes};
use clawloops_server::settings::{Engine, Settings, SwarmSettings};
use clawloops_testkit::entry_proxy;
use clawloops_testkit::swarm::Swarm;
use reqwest::StatusCode;
use sqlx::PgPool;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The node the entry proxy runs on, and its address on the nodes' bridge.
pub const ENTRY_NODE: &str = "clsw-m1";
const ENTRY_NODE_IP: [u8; 4] = [10, 231, 0, 11];

/// The swarm with the stub, Traefik and (when `openclaw`) OpenClaw in its registry.
pub fn swarm(openclaw: bool) -> Swarm {
    let stub = clawloops_testkit::stub_image();
    let mut images = vec![stub.as_str(), entry_proxy::TRAEFIK_IMAGE];
    if openclaw {
        images.push(clawloops_server::settings::OPENCLAW_IMAGE);
    }
    Swarm::get(&images)
}

/// Makes `settings` drive runtimes on `swarm`, with the entry proxy `proxy` on [`ENTRY_NODE`].
pub fn use_swarm(settings: &mut Settings, swarm: &Swarm, proxy: &str, openclaw: bool) {
    if openclaw {
        settings.runtime.image = swarm.image(clawloops_server::settings::OPENCLAW_IMAGE);
        settings.runtime.ready_timeout_secs = 240;
    } else {
        use_stub_runtimes(settings);
        settings.runtime.image = swarm.image(&clawloops_testkit::stub_image());
    }
    settings.runtime.engine = Engine::Swarm(SwarmSettings {
        manager: swarm.manager.clone(),
        nodes: swarm.nodes.clone(),
        entry_node: ENTRY_NODE.into(),
    });
    settings.entry.proxy_container = Some(proxy.to_owned());
}

impl Entry {
    /// The control plane on the host's address on the nodes' bridge, runtimes on the swarm,
    /// Traefik on the manager node (published on its bridge address).
    pub async fn start_swarm(pool: PgPool, openclaw: bool) -> Entry {
        let swarm = swarm(openclaw);
        let bridge: IpAddr = swarm.bridge_ip.parse().expect("bridge address");
        let node_ip = IpAddr::from(ENTRY_NODE_IP);
        let port = super::entry::free_port();
        let proxy = format!(
            "clawloops-test-entry-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let (settings_swarm, proxy_name) = (swarm.clone(), proxy.clone());
        let server = TestServer::start_on(pool, bridge, move |s| {
            s.public_url = format!("http://{DOMAIN}:{port}/").parse().expect("url");
            s.entry.workspace_domain = Some(DOMAIN.into());
            s.entry.cookie_domain = Some(DOMAIN.into());
            // Traefik's requests arrive from the manager node's address (its engine
            // masquerades its containers).
            s.trusted_proxies = vec!["10.231.0.0/24".parse().expect("net")];
            s.runtime.browser_url = Some(format!("http://{{user}}.{DOMAIN}:{port}/"));
            use_swarm(s, &settings_swarm, &proxy_name, openclaw);
        })
        .await;
        let instance: uuid::Uuid = sqlx::query_scalar("SELECT id FROM instance")
            .fetch_one(&server.pool)
            .await
            .expect("instance");

        // The repository's configuration; the test client arrives from the host's bridge
        // address and may claim a client address.
        let config = tempfile::tempdir().expect("tempdir");
        entry_proxy::write_config(config.path(), server.addr.port(), Some(bridge))
            .expect("proxy configuration");
        let mut args = entry_proxy::run_args(
            &proxy,
            port,
            server.addr.port(),
            DOMAIN,
            config.path(),
            &swarm.image(entry_proxy::TRAEFIK_IMAGE),
            &[],
        );
        entry_proxy::on_node(&mut args, node_ip, bridge);
        args.splice(
            1..1,
            [
                "--label".to_owned(),
                format!("{}={instance}", clawloops_testkit::INSTANCE_LABEL),
            ],
        );
        let (ok, out) = swarm.docker(
            ENTRY_NODE,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let entry = Entry {
            server,
            instance: instance.to_string(),
            proxy,
            port,
            https: None,
            ws_domain: DOMAIN.into(),
            proxy_ip: node_ip,
            swarm: Some(swarm),
            kube: None,
            _config: config,
        };
        assert!(ok, "traefik started on {ENTRY_NODE}: {out}");
        let client = entry.raw_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let res = client.get(entry.url("", "/readyz")).send().await;
            if res.as_ref().is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the control plane is not reachable through Traefik on the swarm: {res:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        entry
    }

    /// The swarm these runtimes run on.
    pub fn on_swarm(&self) -> &Swarm {
        self.swarm.as_ref().expect("a swarm entry")
    }

    /// Runs the stub's probe inside `runtime_id`'s task container, on whichever node runs it:
    /// the node, and one outcome per target.
    pub fn probe_on_swarm(&self, runtime_id: &str, targets: &[String]) -> (String, Vec<String>) {
        let swarm = self.on_swarm();
        let filter = format!("label=org.clawloops.runtime={runtime_id}");
        let instance = format!("label=org.clawloops.instance={}", self.instance);
        for node in swarm.nodes.keys() {
            let (_, id) = swarm.docker(
                node,
                &["ps", "-q", "--filter", &filter, "--filter", &instance],
            );
            if let Some(id) = id.lines().next().filter(|l| !l.is_empty()) {
                let mut args = vec!["exec", id, "/runtime-stub", "probe", "2000"];
                args.extend(targets.iter().map(String::as_str));
                let (_, out) = swarm.docker(node, &args);
                return (node.clone(), out.lines().map(str::to_owned).collect());
            }
        }
        panic!("no running container for {runtime_id}");
    }

    /// This installation's services on the swarm, by runtime id (one line each).
    pub fn services(&self) -> Vec<String> {
        let swarm = self.on_swarm();
        let (_, out) = swarm.docker(
            ENTRY_NODE,
            &[
                "service",
                "ls",
                "--filter",
                &format!("label=org.clawloops.instance={}", self.instance),
                "--format",
                "{{.Name}}",
            ],
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}
