//! How workspaces are served: over HTTPS, and on a site of their own entered by a one-time handoff.

use super::*;

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
