//! Password sign-in for the break-glass admin only, and the admin page's view of the
//! providers (never their secrets).

use super::{CLIENT_SECRET, sign_in, start};
use crate::support::{PASSWORD, TestServer, code};
use reqwest::StatusCode;
use sqlx::PgPool;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn passwords_off_except_for_the_break_glass_admin(pool: PgPool) {
    let (server, _idp) = start(pool.clone(), false, |_| {}).await;
    let root = server.admin("root").await;
    let _ops = server.admin("ops").await;
    let worker = server.user(&root, "worker").await;
    drop(worker);
    let root_id = root.user_id("root").await;

    // The page shows the provider, with where to send people back, and no secret.
    let (status, setup) = root.call("admin/sign-in", &[]).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let provider = &setup["providers"][0];
    assert_eq!(provider["name"], "Corp ID");
    assert_eq!(provider["has_secret"], true);
    assert!(
        provider["callback_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/auth/sso/corp/callback"))
    );
    assert!(
        !setup.to_string().contains(CLIENT_SECRET),
        "the secret is never sent"
    );
    assert_eq!(setup["password_for"], "everyone");

    // A made-up or non-admin break-glass account is refused.
    let worker_id = root.user_id("worker").await;
    for bad in ["not-an-id", worker_id.as_str()] {
        let (status, body) = root
            .call(
                "admin/sign-in/policy",
                &[("password_for", "break_glass"), ("break_glass", bad)],
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION"),
            "{body}"
        );
    }
    let (status, body) = root
        .call(
            "admin/sign-in/policy",
            &[("password_for", "break_glass"), ("break_glass", &root_id)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["break_glass_name"], "root");

    // Everyone else: a right password is refused in words; a wrong one says only that.
    let ops = server.browser();
    let (status, body) = ops.login("ops", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "PASSWORD_SIGN_IN_OFF")
    );
    let (status, body) = ops.login("ops", "wrong password").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
    let (_, me) = ops.me().await;
    assert!(me.is_null());
    // The break-glass admin still gets in, and single sign-on works for the rest.
    server.browser().login_ok("root", PASSWORD).await;
    let alice = server.browser();
    assert_eq!(sign_in(&server, &alice, "alice").await, "/models");
    let (_, me) = alice.me().await;
    assert_eq!(me["role"], "admin");

    // Nobody removes the break-glass admin while named: not even another admin.
    for (endpoint, extra) in [
        ("admin/users/status", ("status", "disabled")),
        ("admin/users/role", ("role", "user")),
        ("admin/users/delete", ("", "")),
    ] {
        let mut form = vec![("id", root_id.as_str())];
        if !extra.0.is_empty() {
            form.push(extra);
        }
        let (status, body) = alice.call(endpoint, &form).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "CONFLICT"),
            "{endpoint}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("break-glass")),
            "{body}"
        );
    }

    // Back to passwords for everyone.
    let (status, _) = root
        .call(
            "admin/sign-in/policy",
            &[("password_for", "everyone"), ("break_glass", "")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.browser().login_ok("ops", PASSWORD).await;
    let changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'sign_in.policy_changed'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(changes, 2);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn without_a_provider_passwords_cannot_be_turned_off(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let root = server.admin("root").await;
    let root_id = root.user_id("root").await;
    let (status, body) = root
        .call(
            "admin/sign-in/policy",
            &[("password_for", "break_glass"), ("break_glass", &root_id)],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{body}"
    );
    let user = server.user(&root, "worker").await;
    let (status, body) = user.call("admin/sign-in", &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ACCESS_DENIED"),
        "{body}"
    );
    let (status, body) = user.call("auth/sso/providers", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!([]));
}
