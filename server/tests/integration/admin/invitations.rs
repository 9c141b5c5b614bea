//! Invitations: preview and accept once, races, dead codes, reissue, usernames, bad input.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_invitation_previews_creates_the_account_with_its_role_and_signs_in(pool: PgPool) {
    let logs = captured_logs();
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let token = admin
        .invite(&[
            ("form[role]", "admin"),
            ("form[email]", "Carol@Example.com"),
        ])
        .await;
    let hash: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_ne!(hash, token.as_bytes(), "only a hash is stored");

    let guest = server.browser();
    // The link as the invitee opens it: the token is in the path.
    let page = guest
        .client
        .get(server.url(&format!("/invite/{token}")))
        .send()
        .await
        .expect("invitation page");
    assert_eq!(page.status(), 200);
    let (status, preview) = guest
        .call("invitations/preview", &[("token", &token)])
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["invited_by"], "root");
    assert_eq!(preview["role"], "admin");

    let (status, me) = guest
        .call(
            "invitations/accept",
            &[
                ("token", &token),
                ("username", "Carol"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "carol", "usernames are lower-case");
    assert_eq!(me["role"], "admin", "the invitation's role is applied");
    assert_eq!(me["email"], "Carol@Example.com");
    let (_, again) = guest.me().await;
    assert_eq!(again["username"], "carol", "signed in right away");

    let (_, list) = admin.call("admin/invitations/list", &[("page", "1")]).await;
    assert_eq!(list["rows"][0]["status"], "consumed");
    assert_eq!(list["rows"][0]["consumed_by"], "carol");

    // The whole flow was logged, the token nowhere (the page's request line says where it was).
    let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("/invite/[redacted]"),
        "the page request is logged"
    );
    assert!(!logs.contains(&token), "the invitation token is in the log");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_invitation_works_exactly_once_whoever_sends_it(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let token = admin.invite(&[]).await;
    let first = server.browser();
    let (status, _) = first
        .call(
            "invitations/accept",
            &[
                ("token", &token),
                ("username", "dave"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200);
    for (name, password) in [("dave", PASSWORD), ("erin", "another fine passphrase")] {
        let (status, body) = server
            .browser()
            .call(
                "invitations/accept",
                &[
                    ("token", &token),
                    ("username", name),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (409, "INVITATION_ALREADY_CONSUMED"),
            "{name}"
        );
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM users WHERE username IN ('dave', 'erin')"
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn two_simultaneous_accepts_make_one_account(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let token = admin.invite(&[]).await;
    let (a, b) = (server.browser(), server.browser());
    let form_a = [
        ("token", token.as_str()),
        ("username", "fay"),
        ("password", PASSWORD),
    ];
    let form_b = [
        ("token", token.as_str()),
        ("username", "gus"),
        ("password", PASSWORD),
    ];
    let (ra, rb) = tokio::join!(
        a.call("invitations/accept", &form_a),
        b.call("invitations/accept", &form_b),
    );
    let mut statuses = [ra.0.as_u16(), rb.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM users WHERE username IN ('fay', 'gus')"
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn each_dead_invitation_has_its_own_code(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let guest = server.browser();
    let accept = |token: String| {
        let guest = &guest;
        async move {
            guest
                .call(
                    "invitations/accept",
                    &[
                        ("token", &token),
                        ("username", "hal"),
                        ("password", PASSWORD),
                    ],
                )
                .await
        }
    };

    let (status, body) = accept("no-such-token".into()).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (404, "INVITATION_NOT_FOUND")
    );

    let revoked = admin.invite(&[]).await;
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM invitations ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("id");
    let (status, body) = admin
        .call("admin/invitations/revoke", &[("id", &id.to_string())])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let (status, body) = accept(revoked.clone()).await;
    assert_eq!((status.as_u16(), code(&body)), (409, "INVITATION_REVOKED"));
    let (status, body) = guest
        .call("invitations/preview", &[("token", &revoked)])
        .await;
    assert_eq!((status.as_u16(), code(&body)), (409, "INVITATION_REVOKED"));
    let (status, _) = admin
        .call("admin/invitations/revoke", &[("id", &id.to_string())])
        .await;
    assert_eq!(status, 409, "revoking twice is a conflict");

    let expired = admin.invite(&[]).await;
    sqlx::query(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE revoked_at IS NULL",
    )
    .execute(&pool)
    .await
    .expect("expire");
    let (status, body) = accept(expired).await;
    assert_eq!((status.as_u16(), code(&body)), (410, "INVITATION_EXPIRED"));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users WHERE username = 'hal'").await,
        0
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn reissue_rotates_the_link(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let old = admin.invite(&[]).await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&pool)
        .await
        .expect("id");
    let (status, body) = admin
        .call(
            "admin/invitations/reissue",
            &[("id", &id.to_string()), ("expires_in_hours", "48")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["link"]
        .as_str()
        .expect("link")
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned();
    assert_ne!(old, new);
    let guest = server.browser();
    let (status, body) = guest.call("invitations/preview", &[("token", &old)]).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (404, "INVITATION_NOT_FOUND"),
        "old link dead"
    );
    let (status, _) = guest.call("invitations/preview", &[("token", &new)]).await;
    assert_eq!(status, 200);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_taken_or_bad_username_is_a_field_error_and_the_invitation_stays_usable(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    server.make_admin("ann.b").await;
    let token = admin.invite(&[]).await;
    let guest = server.browser();
    for (name, password, field) in [
        ("ROOT", PASSWORD, "username"),
        // Would share ann.b's workspace host (ann-b.<domain>) and runtime id.
        ("ann_b", PASSWORD, "username"),
        ("x", PASSWORD, "username"),
        ("ivy", "short", "password"),
        ("ivyivyivyivy", "ivyivyivyivy", "password"),
    ] {
        let (status, body) = guest
            .call(
                "invitations/accept",
                &[
                    ("token", &token),
                    ("username", name),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(status, 422, "{name}/{password}: {body}");
        assert_eq!(body["field"], field, "{body}");
        if name == "ann_b" {
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("too close")),
                "{body}"
            );
        }
    }
    let (status, _) = guest
        .call(
            "invitations/accept",
            &[
                ("token", &token),
                ("username", "ivy"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "still pending after the refusals");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_pinned_username_is_used_whatever_is_typed(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let admin = server.admin("root").await;
    let token = admin.invite(&[("form[username]", "judy")]).await;
    let (status, me) = server
        .browser()
        .call(
            "invitations/accept",
            &[
                ("token", &token),
                ("username", "mallory"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "judy");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn bad_invitation_input_is_refused_and_nothing_is_written(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let admin = server.admin("root").await;
    let long_note = "n".repeat(501);
    // (form fields to override, expected status, expected field)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec![("form[expires_in_hours]", "0")],
            422,
            Some("expires_in_hours"),
        ),
        (
            vec![("form[expires_in_hours]", "-5")],
            422,
            Some("expires_in_hours"),
        ),
        (
            vec![("form[expires_in_hours]", "721")],
            422,
            Some("expires_in_hours"),
        ),
        (
            vec![("form[expires_in_hours]", "99999999999999999999999")],
            422,
            None,
        ),
        (vec![("form[role]", "superuser")], 422, None),
        (
            vec![("form[username]", "no spaces allowed")],
            422,
            Some("username"),
        ),
        (vec![("form[username]", "root")], 422, Some("username")),
        (vec![("form[email]", "not-an-address")], 422, Some("email")),
        (vec![("form[note]", long_note.as_str())], 422, Some("note")),
    ];
    for (fields, status, field) in cases {
        let (got, body) = admin.try_invite(&fields).await;
        assert_eq!(got.as_u16(), status, "{fields:?}: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{fields:?}: {body}");
        }
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM invitations").await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE action = 'invitation.created'"
        )
        .await,
        0
    );
}
