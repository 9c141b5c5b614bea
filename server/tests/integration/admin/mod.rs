//! Invitations and admin user management: the exactly-once accept, the guards, bad input.

use crate::support::{PASSWORD, TestServer, captured_logs, code};
use sqlx::PgPool;

mod invitations;

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_last_active_admin_stays_and_nobody_disables_or_deletes_themself(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let root = server.admin("root").await;
    let root_id = root.user_id("root").await;

    for (endpoint, extra) in [
        ("admin/users/status", ("status", "disabled")),
        ("admin/users/role", ("role", "user")),
    ] {
        let (status, body) = root.call(endpoint, &[("id", &root_id), extra]).await;
        assert_eq!(status, 409, "{endpoint}: {body}");
    }
    let (status, _) = root.call("admin/users/delete", &[("id", &root_id)]).await;
    assert_eq!(status, 409);

    // With a second admin, root may step down — but still not disable itself.
    server.make_admin("second").await;
    let (status, body) = root
        .call(
            "admin/users/status",
            &[("id", &root_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, 409, "self-disable: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("your own")),
        "{body}"
    );
    let (status, body) = root
        .call("admin/users/role", &[("id", &root_id), ("role", "user")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "user");

    // Now "second" is the last admin: root (a user now) cannot even try.
    let second = server.browser();
    second.login_ok("second", PASSWORD).await;
    let second_id = second.user_id("second").await;
    let (status, body) = second
        .call("admin/users/role", &[("id", &second_id), ("role", "user")])
        .await;
    assert_eq!(status, 409, "last admin: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("last active admin")),
        "{body}"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn deleting_a_user_ends_their_sessions_and_is_audited(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let bob = server.user(&admin, "bob").await;
    let bob_id = admin.user_id("bob").await;
    let (status, body) = admin.call("admin/users/delete", &[("id", &bob_id)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(bob.me().await.1.is_null());
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users WHERE username = 'bob'").await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events WHERE action = 'user.deleted' AND subject_name = 'bob'").await,
        1
    );
    let (status, body) = admin.call("admin/users/get", &[("id", &bob_id)]).await;
    assert_eq!((status.as_u16(), code(&body)), (404, "NOT_FOUND"));
    let (status, _) = admin.call("admin/users/get", &[("id", "not-a-uuid")]).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_user_list_searches_filters_and_pages(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    for name in ["kim", "kit", "lee"] {
        server.user(&admin, name).await;
    }
    let (_, found) = admin
        .call(
            "admin/users/list",
            &[("query[search]", "ki"), ("query[page]", "1")],
        )
        .await;
    assert_eq!(found["total"], 2, "{found}");
    let (_, admins) = admin
        .call(
            "admin/users/list",
            &[
                ("query[search]", ""),
                ("query[role]", "admin"),
                ("query[page]", "1"),
            ],
        )
        .await;
    assert_eq!(admins["total"], 1);
    assert_eq!(admins["rows"][0]["username"], "root");
    let (_, wildcard) = admin
        .call(
            "admin/users/list",
            &[("query[search]", "%"), ("query[page]", "1")],
        )
        .await;
    assert_eq!(
        wildcard["total"], 0,
        "LIKE wildcards are searched literally"
    );
    let (status, _) = admin
        .call(
            "admin/users/list",
            &[
                ("query[search]", ""),
                ("query[status]", "gone"),
                ("query[page]", "1"),
            ],
        )
        .await;
    assert_eq!(status, 422, "unknown enum value");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_audit_log_lists_admin_actions_with_filters(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let _bob = server.user(&admin, "bob").await;
    let bob_id = admin.user_id("bob").await;
    admin
        .call(
            "admin/users/status",
            &[("id", &bob_id), ("status", "disabled")],
        )
        .await;

    let (status, all) = admin
        .call(
            "admin/audit",
            &[
                ("query[action]", ""),
                ("query[person]", ""),
                ("query[page]", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{all}");
    let actions: Vec<&str> = all["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for expected in [
        "user.disabled",
        "invitation.accepted",
        "invitation.created",
        "login.succeeded",
        "user.created",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let (_, users) = admin
        .call(
            "admin/audit",
            &[
                ("query[action]", "user"),
                ("query[person]", "bob"),
                ("query[page]", "1"),
            ],
        )
        .await;
    let rows = users["rows"].as_array().expect("rows");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["action"].as_str().is_some_and(|a| a.starts_with("user."))),
        "{users}"
    );
    let (_, overview) = admin.call("admin/overview", &[]).await;
    assert_eq!(overview["users_active"], 1);
    assert_eq!(overview["users_disabled"], 1);
}
