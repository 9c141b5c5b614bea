//! An identity whose address an existing account already uses: linked only by that account's
//! own password, once, and never for an address the provider has not verified.

use super::{count, refused, sign_in, start};
use crate::support::{PASSWORD, code};
use reqwest::StatusCode;
use sqlx::PgPool;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_existing_account_is_linked_only_with_its_own_password(pool: PgPool) {
    // Groups only: addresses outside a domain list may come in, verified or not.
    let (server, _idp) = start(pool.clone(), false, |c| c.allowed_domains.clear()).await;
    let root = server.admin("root").await;
    for (name, email) in [
        ("gracie", "grace@example.com"),
        ("frankie", "frank@example.com"),
    ] {
        let _ = server.user(&root, name).await;
        sqlx::query("UPDATE users SET email = $1 WHERE username = $2")
            .bind(email)
            .bind(name)
            .execute(&pool)
            .await
            .expect("address");
    }
    let users = count(&pool, "SELECT count(*) FROM users").await;

    // The provider hasn't verified frank's address: no link, no account, no pending link.
    let frank = server.browser();
    assert_eq!(
        sign_in(&server, &frank, "frank").await,
        refused("unverified_email")
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM sso_pending_links").await,
        0
    );

    // Grace's is verified: she is asked for gracie's password first.
    let grace = server.browser();
    let to = sign_in(&server, &grace, "grace").await;
    let token = to
        .strip_prefix("/sso/link?token=")
        .unwrap_or_else(|| panic!("to the link page: {to}"))
        .to_owned();
    let (_, me) = grace.me().await;
    assert!(me.is_null(), "not signed in before the password: {me}");
    let (status, preview) = grace
        .call("auth/sso/link/preview", &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["username"], "gracie");
    assert_eq!(preview["provider"], "Corp ID");
    let page = server.get(&to).await.text().await.expect("page");
    assert!(page.contains("gracie"), "the page names the account");

    let (status, body) = grace
        .call(
            "auth/sso/link",
            &[("token", &token), ("password", "not the password")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM sso_identities").await, 0);

    let (status, body) = grace
        .call(
            "auth/sso/link",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "gracie");
    let (_, me) = grace.me().await;
    assert_eq!(me["username"], "gracie", "signed in as the linked account");
    let linked_by: String =
        sqlx::query_scalar("SELECT linked_by FROM sso_identities WHERE subject = 'sub-grace'")
            .fetch_one(&pool)
            .await
            .expect("linked");
    assert_eq!(linked_by, "password");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events WHERE action = 'sso.linked' AND actor_name = 'gracie'").await,
        1
    );

    // The link request works once; from now on the provider signs gracie in directly.
    let (status, body) = grace
        .call(
            "auth/sso/link",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let again = server.browser();
    assert_eq!(sign_in(&server, &again, "grace").await, "/models");
    let (_, me) = again.me().await;
    assert_eq!(me["username"], "gracie");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users").await,
        users,
        "no new account"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_admin_links_an_identity_that_asked_and_can_unlink_it(pool: PgPool) {
    let (server, _idp) = start(pool.clone(), false, |c| c.allowed_domains.clear()).await;
    let root = server.admin("root").await;
    let _ = server.user(&root, "gracie").await;
    sqlx::query("UPDATE users SET email = 'grace@example.com' WHERE username = 'gracie'")
        .execute(&pool)
        .await
        .expect("address");
    let gracie = root.user_id("gracie").await;

    // Grace signs in with the provider, but doesn't know gracie's password.
    let grace = server.browser();
    let to = sign_in(&server, &grace, "grace").await;
    assert!(to.starts_with("/sso/link?token="), "{to}");

    // The admin sees the request on gracie's page and links it.
    let (status, listed) = root.call("admin/users/sso", &[("id", &gracie)]).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["identities"], serde_json::json!([]));
    let request = &listed["requests"][0];
    assert_eq!(request["email"], "grace@example.com");
    assert_eq!(request["provider_name"], "Corp ID");
    let request_id = request["id"].as_str().expect("an id").to_owned();
    // Not for another account, not by a non-admin.
    let (status, body) = root
        .call(
            "admin/users/sso/link",
            &[
                ("id", &root.user_id("root").await),
                ("request", &request_id),
            ],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND"),
        "{body}"
    );
    let (status, _) = grace
        .call(
            "admin/users/sso/link",
            &[("id", &gracie), ("request", &request_id)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = root
        .call(
            "admin/users/sso/link",
            &[("id", &gracie), ("request", &request_id)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identities"][0]["linked_by"], "admin");
    assert_eq!(body["requests"], serde_json::json!([]));

    // From now on Grace goes straight in as gracie.
    let again = server.browser();
    assert_eq!(sign_in(&server, &again, "grace").await, "/models");
    let (_, me) = again.me().await;
    assert_eq!(me["username"], "gracie");
    let actor: String =
        sqlx::query_scalar("SELECT actor_name FROM audit_events WHERE action = 'sso.linked'")
            .fetch_one(&pool)
            .await
            .expect("audited");
    assert_eq!(actor, "root", "the admin's action, on record");

    // Unlinked, the identity is a stranger again (and asks for a password link).
    let (status, body) = root
        .call(
            "admin/users/sso/unlink",
            &[("id", &gracie), ("provider", "corp")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identities"], serde_json::json!([]));
    let later = server.browser();
    assert!(
        sign_in(&server, &later, "grace")
            .await
            .starts_with("/sso/link?token=")
    );
}
