//! Sessions end when they should: password change, disable, sign-out everywhere, absolute lifetime,
//! logout.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn changing_the_password_checks_it_and_ends_other_sessions(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let other = server.browser();
    other.login_ok("bob", PASSWORD).await;

    let cases = [
        ("wrong current!", "a fine new passphrase", "current"),
        (PASSWORD, "short", "new_password"),
        (PASSWORD, "password123", "new_password"),
        (PASSWORD, PASSWORD, "new_password"),
    ];
    for (current, new, field) in cases {
        let (status, body) = bob
            .call(
                "auth/password",
                &[("current", current), ("new_password", new)],
            )
            .await;
        assert_eq!(status, 422, "{new}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }

    let before = bob.session_cookie();
    let (status, body) = bob
        .call(
            "auth/password",
            &[
                ("current", PASSWORD),
                ("new_password", "a fine new passphrase"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        bob.session_cookie(),
        before,
        "the session id changes with the password"
    );
    assert_eq!(
        bob.me().await.1["username"],
        "bob",
        "this session carries on"
    );
    assert!(other.me().await.1.is_null(), "the other session ended");
    let (status, _) = server.browser().login("bob", PASSWORD).await;
    assert_eq!(status, 401, "the old password is gone");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn disabling_ends_every_session_of_the_user_at_once(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let bob2 = server.browser();
    bob2.login_ok("bob", PASSWORD).await;
    let bob_id = admin.user_id("bob").await;

    let (status, body) = admin
        .call(
            "admin/users/status",
            &[("id", &bob_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "disabled");

    for session in [&bob, &bob2] {
        let (status, body) = session.call("auth/sessions", &[]).await;
        assert_eq!((status.as_u16(), code(&body)), (403, "USER_DISABLED"));
        let (status, body) = session.me().await;
        assert_eq!(status, 200);
        assert!(
            body.is_null(),
            "after the disabled answer the session is gone: {body}"
        );
    }

    // Enabling again does not bring old sessions back.
    let (status, _) = admin
        .call(
            "admin/users/status",
            &[("id", &bob_id), ("status", "active")],
        )
        .await;
    assert_eq!(status, 200);
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'bob'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(open, 0);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn sign_out_everywhere_ends_all_sessions(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let bob2 = server.browser();
    bob2.login_ok("bob", PASSWORD).await;
    let (status, body) = bob.call("auth/sign-out-everywhere", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, 2, "both sessions ended");
    assert!(bob.me().await.1.is_null());
    assert!(bob2.me().await.1.is_null());
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_session_past_its_absolute_lifetime_ends(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    sqlx::query(
        "UPDATE sessions SET data = jsonb_set(data, '{clawloops.login_at}', to_jsonb(extract(epoch from now() - interval '8 days')::bigint))",
    )
    .execute(&pool)
    .await
    .expect("age the session");
    let (status, body) = admin
        .call("admin/users/list", &[("query[page]", "1")])
        .await;
    assert_eq!((status.as_u16(), code(&body)), (401, "UNAUTHENTICATED"));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn logout_ends_the_session(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let (status, _) = admin.call("auth/logout", &[]).await;
    assert_eq!(status, 200);
    assert!(admin.me().await.1.is_null());
    let (status, _) = admin.call("auth/logout", &[]).await;
    assert_eq!(status, 200, "signing out twice is fine");
}
