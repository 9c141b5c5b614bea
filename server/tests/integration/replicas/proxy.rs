//! Traefik in front of the replicas, as `scripts/start.sh --replicas N` runs it.

use super::cluster::{Cluster, DOMAIN};
use super::tools::client;
use crate::support::Browser;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Traefik in front of the replicas, load-balancing them (`deploy/traefik`, as
/// `scripts/start.sh --replicas N` runs it).
pub struct Proxy {
    pub name: String,
    pub port: u16,
    pub(super) config: tempfile::TempDir,
}

impl Cluster {
    pub(super) async fn start_proxy(&self) {
        use clawloops_testkit::entry_proxy;
        let proxy = self.proxy.as_ref().expect("proxy");
        let dir = proxy.config.path();
        entry_proxy::write_replicated_config(dir, None).expect("proxy configuration");
        let ports: Vec<u16> = self.replicas.iter().map(|r| r.port).collect();
        let args = entry_proxy::run_args(
            &proxy.name,
            proxy.port,
            ports[0],
            DOMAIN,
            dir,
            entry_proxy::TRAEFIK_IMAGE,
            &entry_proxy::replicated_env(&ports),
        );
        let (ok, out) =
            clawloops_testkit::docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "the proxy started: {out}");
        let url = format!("http://{DOMAIN}:{}/readyz", proxy.port);
        let via = client(std::net::IpAddr::from([127, 0, 0, 1]), &[DOMAIN])
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !via
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "Traefik never reached a replica");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A browser going through Traefik, with `jar` (finding `hosts` — the main host and
    /// workspaces — on this machine).
    pub fn browser_via_proxy(&self, jar: &Arc<reqwest::cookie::Jar>, hosts: &[&str]) -> Browser {
        let proxy = self.proxy.as_ref().expect("behind Traefik");
        Browser {
            client: client(std::net::IpAddr::from([127, 0, 0, 1]), hosts)
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            jar: jar.clone(),
            base: format!("http://{DOMAIN}:{}", proxy.port),
        }
    }
}
