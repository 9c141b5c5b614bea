//! Only the owner passes, and the runtime gets the identity, never the secrets.

use super::*;

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
    entry.finish();
}
