//! Accounts, sessions, the access gate, throttling and CSRF, over real HTTP and PostgreSQL.

use crate::support::{PASSWORD, TestServer, code};
use sqlx::PgPool;

mod sessions;
mod sso;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn signing_in_rotates_the_session_id_and_the_old_id_stops_working(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.make_admin("root").await;
    let browser = server.browser();
    browser.login_ok("root", PASSWORD).await;
    let first = browser.session_cookie().expect("a session cookie");

    browser.login_ok("root", PASSWORD).await;
    let second = browser.session_cookie().expect("a session cookie");
    assert_ne!(first, second, "a new id on every sign-in");

    let (status, body) = browser.me().await;
    assert_eq!(status, 200);
    assert_eq!(body["username"], "root");

    let replay = server.browser();
    replay.set_session_cookie(&first);
    let (status, body) = replay.me().await;
    assert_eq!(status, 200);
    assert!(body.is_null(), "the old id is nobody: {body}");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_cookie_is_http_only_and_same_site_lax(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.make_admin("root").await;
    let res = server
        .client
        .post(server.url("/api/auth/login"))
        .form(&[("username", "root"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("clawloops_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http test server: {cookie}"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn wrong_password_and_unknown_user_get_the_same_answer(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.make_admin("root").await;
    let browser = server.browser();

    let (wrong_status, wrong) = browser.login("root", "not the password").await;
    let (unknown_status, unknown) = browser.login("nobody", "not the password").await;
    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
    assert_eq!(wrong, unknown, "nothing tells the two apart");
    assert!(
        browser.session_cookie().is_none(),
        "no session for a failed sign-in"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_disabled_user_is_told_only_after_the_right_password(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let _bob = server.user(&admin, "bob").await;
    let bob_id = admin.user_id("bob").await;
    let (status, body) = admin
        .call(
            "admin/users/status",
            &[("id", &bob_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let again = server.browser();
    let (status, body) = again.login("bob", "wrong password!").await;
    assert_eq!((status.as_u16(), code(&body)), (401, "INVALID_CREDENTIALS"));
    let (status, body) = again.login("bob", PASSWORD).await;
    assert_eq!((status.as_u16(), code(&body)), (403, "USER_DISABLED"));
    assert!(again.session_cookie().is_none());
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_foreign_origin_is_refused_and_our_own_is_not(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.make_admin("root").await;
    let login = |origin: &'static str| {
        server
            .client
            .post(server.url("/api/auth/login"))
            .header("origin", origin)
            .form(&[("username", "root"), ("password", PASSWORD)])
            .send()
    };
    // Another site, an opaque origin (a sandboxed frame or `data:` page, which a workspace
    // page could open: it was let through), and lenient URL forms of our own host.
    let own_host = server.addr.to_string();
    for origin in [
        "https://evil.example".to_owned(),
        "null".to_owned(),
        format!("http:/{own_host}"),
        format!("http://{own_host}/"),
        format!("http://user@{own_host}"),
    ] {
        let res = server
            .client
            .post(server.url("/api/auth/login"))
            .header("origin", &origin)
            .form(&[("username", "root"), ("password", PASSWORD)])
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 403, "{origin}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(code(&body), "FOREIGN_ORIGIN", "{origin}");
    }
    let res = login("https://evil.example").await.expect("sent");
    assert_eq!(res.status(), 403);

    let own = format!("http://{}", server.addr);
    let res = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", own)
        .form(&[("username", "root"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);

    let res = server
        .client
        .post(server.url("/api/auth/logout"))
        .header("referer", "https://evil.example/page")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 403, "a foreign Referer counts too");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_gate_answers_with_the_right_code(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let anonymous = server.browser();
    let (status, body) = anonymous
        .call("admin/users/list", &[("query[page]", "1")])
        .await;
    assert_eq!((status.as_u16(), code(&body)), (401, "UNAUTHENTICATED"));

    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let (status, body) = bob.call("admin/users/list", &[("query[page]", "1")]).await;
    assert_eq!((status.as_u16(), code(&body)), (403, "ACCESS_DENIED"));
    let (status, _) = bob.call("auth/sessions", &[]).await;
    assert_eq!(status, 200, "ordinary calls pass");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_forced_password_change_blocks_everything_but_who_am_i_logout_and_the_change(
    pool: PgPool,
) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let _bob = server.user(&admin, "bob").await;
    let bob_id = admin.user_id("bob").await;
    let (status, body) = admin
        .call("admin/users/reset-password", &[("id", &bob_id)])
        .await;
    assert_eq!(status, 200, "{body}");
    let one_time = body["password"]
        .as_str()
        .expect("one-time password")
        .to_owned();

    let bob = server.browser();
    bob.login_ok("bob", &one_time).await;
    let (status, me) = bob.me().await;
    assert_eq!(status, 200);
    assert_eq!(me["must_change_password"], true);
    let (status, body) = bob.call("auth/sessions", &[]).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (403, "PASSWORD_CHANGE_REQUIRED")
    );

    let (status, body) = bob
        .call(
            "auth/password",
            &[
                ("current", &one_time),
                ("new_password", "bob's own passphrase"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = bob.call("auth/sessions", &[]).await;
    assert_eq!(status, 200, "free again after the change");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn sign_ins_and_failures_are_audited_with_the_client_address(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    server.make_admin("root").await;
    let browser = server.browser();
    browser.login("root", "wrong password!").await;
    browser.login_ok("root", PASSWORD).await;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT action, subject_name, client_addr FROM audit_events WHERE action LIKE 'login.%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit rows");
    assert_eq!(
        rows,
        vec![
            (
                "login.failed".into(),
                Some("root".into()),
                Some("127.0.0.1".into())
            ),
            (
                "login.succeeded".into(),
                Some("root".into()),
                Some("127.0.0.1".into())
            ),
        ]
    );
    let err = sqlx::query("UPDATE audit_events SET action = 'x'")
        .execute(&pool)
        .await
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(
        sqlx::query("DELETE FROM audit_events")
            .execute(&pool)
            .await
            .is_err()
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn over_long_and_empty_sign_in_fields_are_client_errors(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let browser = server.browser();
    let (status, body) = browser.login("", "x").await;
    assert_eq!(
        (status.as_u16(), body["field"].as_str()),
        (422, Some("username"))
    );
    let (status, body) = browser.login("root", "").await;
    assert_eq!(
        (status.as_u16(), body["field"].as_str()),
        (422, Some("password"))
    );
    let long = "a".repeat(5000);
    let (status, body) = browser.login(&long, &long).await;
    assert_eq!((status.as_u16(), code(&body)), (401, "INVALID_CREDENTIALS"));
    let res = server
        .client
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![
            b'u', b's', b'e', b'r', b'n', b'a', b'm', b'e', b'=', 0xff, 0xfe,
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 422, "invalid UTF-8 is refused");
    let body: serde_json::Value = res.json().await.expect("a JSON error");
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The request was not understood")),
        "{body}"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_cookie_is_secure_when_configured(pool: PgPool) {
    let server = TestServer::start_with(pool, |settings| settings.cookie_secure = true).await;
    server.make_admin("root").await;
    let res = server
        .client
        .post(server.url("/api/auth/login"))
        .form(&[("username", "root"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}
