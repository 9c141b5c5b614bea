//! A real OpenClaw believes who is calling only from the entry proxy, and signing out everywhere ends
//! open workspace connections.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn openclaw_believes_identity_only_from_the_entry_proxy(pool: PgPool) {
    let entry = Entry::start(pool.clone(), true).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    // A model for everyone, served by the in-suite fake provider behind the gateway.
    let provider = crate::support::upstream::start(Some(PROVIDER_KEY)).await;
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
        config.contains(":8001/v1"),
        "the gateway through the entry proxy's runtime entry point: {config}"
    );
    // ... and that is all it reaches: the control plane's own listener, at the address the
    // entry proxy uses, refuses the real OpenClaw runtime (the runtime firewall).
    let control_plane = entry.server.addr;
    let direct = format!(
        "fetch('http://{control_plane}/healthz',{{signal:AbortSignal.timeout(3000)}})\
         .then(r=>console.log('status',r.status)).catch(e=>console.log('unreachable',String(e.cause&&e.cause.code||e.name)))"
    );
    let (_, out) = docker(&["exec", &entry.container_of("alice"), "node", "-e", &direct]);
    assert!(
        out.contains("unreachable"),
        "runtime to control plane: {out}"
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
    entry.finish();
}

/// Ending someone's sessions ends what was opened with them: a connection to the workspace
/// that forward-auth let through when it opened (a WebSocket, here a never-ending answer) ends
/// when its owner signs out everywhere, because the running runtime is made anew; with
/// `revoke_keys` their personal API keys stop working too.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn signing_out_everywhere_ends_open_workspace_connections_and_may_revoke_keys(pool: PgPool) {
    let entry = Entry::start(pool.clone(), false).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    let container = entry.container_of("alice");
    let (status, created) = alice.call("keys/create", &[("name", "laptop")]).await;
    assert_eq!(status, 200, "{created}");
    let key = created["secret"].as_str().expect("secret").to_owned();
    let raw = entry.raw_client();
    let models = |key: String| raw.get(entry.url("", "/v1/models")).bearer_auth(key).send();
    assert_eq!(models(key.clone()).await.expect("send").status(), 200);

    // A connection opened while signed in, through Traefik and forward-auth.
    let mut open = alice
        .client
        .get(entry.url("alice", "/stream"))
        .send()
        .await
        .expect("request");
    assert_eq!(open.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), open.chunk())
        .await
        .expect("a first line in time")
        .expect("read");
    assert!(first.is_some_and(|c| c.starts_with(b"tick")));

    let (status, ended) = alice
        .call("auth/sign-out-everywhere", &[("revoke_keys", "true")])
        .await;
    assert_eq!(status, 200, "{ended}");
    // The open connection ends (the runtime's container is replaced), well within a minute.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(next) = tokio::time::timeout(left, open.chunk()).await else {
            panic!("the connection opened before signing out is still open");
        };
        if !matches!(next, Ok(Some(_))) {
            break;
        }
    }
    // The personal key no longer works; the runtime runs again in a new container.
    let res = models(key).await.expect("send");
    assert_eq!(res.status(), 401);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row: (String, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT r.observed_state, t.action, t.status FROM runtimes r
               LEFT JOIN LATERAL (SELECT action, status FROM runtime_tasks
                                   WHERE user_id = r.user_id ORDER BY created_at DESC LIMIT 1) t ON true
              WHERE r.username = 'alice'",
        )
        .fetch_one(&pool)
        .await
        .expect("runtime");
        if row
            == (
                "running".into(),
                Some("recover".into()),
                Some("succeeded".into()),
            )
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{row:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_ne!(entry.container_of("alice"), container, "a new container");
    // The audit log tells what else ended.
    let details: serde_json::Value =
        sqlx::query_scalar("SELECT details FROM audit_events WHERE action = 'sessions.ended'")
            .fetch_one(&pool)
            .await
            .expect("audited");
    assert_eq!(details["workspace_restarted"], true, "{details}");
    assert_eq!(details["keys_revoked"], 1, "{details}");
    entry.finish();
}
