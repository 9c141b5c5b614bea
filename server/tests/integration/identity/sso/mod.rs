//! Single sign-on against a real OpenID provider (`oidc-provider`, see
//! `clawloops_testkit::oidc`): the whole browser round trip over HTTP — our start, the
//! provider's own sign-in form, our callback — with what our side answers.

use crate::support::{Browser, TestServer};
use app::ssr::identity::sso::{Admission, ProviderConfig};
use clawloops_testkit::oidc::{OidcProvider, SECRET, person};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;

mod faults;
mod linking;
mod policy;

/// The provider's id here, and its client's.
pub const ID: &str = "corp";
pub const CLIENT: &str = "clawloops";
pub const CLIENT_SECRET: &str = "client-secret-for-the-tests-0123456789";

/// The provider as the tests configure it (groups and domains given per test).
pub fn provider_config(issuer: &str) -> ProviderConfig {
    ProviderConfig {
        id: ID.into(),
        name: "Corp ID".into(),
        issuer: issuer.into(),
        client_id: CLIENT.into(),
        client_secret: Some(CLIENT_SECRET.to_owned().into()),
        scopes: ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec(),
        admission: Admission::Open,
        allowed_domains: vec!["example.com".into()],
        allowed_groups: vec!["staff".into()],
        admin_groups: vec!["platform-admins".into()],
        groups_claim: "groups".into(),
        username_claim: "preferred_username".into(),
        metadata_max_age: Duration::from_secs(300),
        clock_skew: Duration::from_secs(30),
    }
}

/// The people at the provider.
pub fn people() -> Vec<Value> {
    vec![
        person(
            "alice",
            "alice@example.com",
            true,
            &["staff", "platform-admins"],
        ),
        person("bob", "bob@example.com", true, &["staff"]),
        person("dave", "dave@example.com", true, &["contractors"]),
        person("erin", "erin@elsewhere.org", true, &["staff"]),
        person("frank", "frank@example.com", false, &["staff"]),
        person("grace", "grace@example.com", true, &["staff"]),
        person("root", "root-at-idp@example.com", true, &["staff"]),
    ]
}

/// A provider with [`people`] and a server that trusts it (configured by `adjust`).
pub async fn start(
    pool: PgPool,
    id_token_claims: bool,
    adjust: impl FnOnce(&mut ProviderConfig),
) -> (TestServer, OidcProvider) {
    let idp = OidcProvider::start(people(), id_token_claims).await;
    let mut config = provider_config(&idp.issuer);
    adjust(&mut config);
    let server = TestServer::start_with(pool, |s| s.sso_providers = vec![config]).await;
    let callback = server.url(&format!("/auth/sso/{ID}/callback"));
    idp.add_client(CLIENT, CLIENT_SECRET, &callback).await;
    (server, idp)
}

fn location(res: &reqwest::Response, base: &str) -> String {
    let to = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    reqwest::Url::parse(base)
        .and_then(|b| b.join(&to))
        .expect("location resolves")
        .to_string()
}

/// Starts a sign-in at our server, signs in as `login` at the provider's own form, and
/// returns our callback URL with the provider's code (not visited yet).
pub async fn to_callback(server: &TestServer, browser: &Browser, login: &str) -> String {
    let start = server.url(&format!("/auth/sso/{ID}/start?next=%2Fmodels"));
    let res = browser.client.get(&start).send().await.expect("start");
    assert!(res.status().is_redirection(), "start: {}", res.status());
    let mut url = location(&res, &start);
    for _ in 0..10 {
        if url.starts_with(&server.url("/")) {
            return url;
        }
        let res = browser.client.get(&url).send().await.expect("provider");
        if res.status().is_redirection() {
            url = location(&res, &url);
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "the provider's sign-in form");
        let page = res.text().await.expect("page");
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form");
        let post = reqwest::Url::parse(&url)
            .and_then(|u| u.join(action))
            .expect("form action");
        let res = browser
            .client
            .post(post.clone())
            .form(&[("login", login), ("secret", SECRET)])
            .send()
            .await
            .expect("sign in at the provider");
        assert!(
            res.status().is_redirection(),
            "provider sign-in: {}",
            res.status()
        );
        url = location(&res, post.as_str());
    }
    panic!("never came back to the server");
}

/// Visits our callback: the status and where it sends the browser.
pub async fn finish(browser: &Browser, callback: &str) -> (StatusCode, String) {
    let res = browser.client.get(callback).send().await.expect("callback");
    let to = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (res.status(), to)
}

/// A whole sign-in as `login`; where the callback sends the browser.
pub async fn sign_in(server: &TestServer, browser: &Browser, login: &str) -> String {
    let callback = to_callback(server, browser, login).await;
    let (status, to) = finish(browser, &callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "callback for {login}");
    to
}

/// Where a refusal sends the browser.
pub fn refused(code: &str) -> String {
    format!("/login?sso_error={code}&provider={ID}")
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// `(username, role)` of the account linked to `login`'s provider identity.
pub async fn linked_account(pool: &PgPool, login: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT u.username, u.role FROM sso_identities i JOIN users u ON u.id = i.user_id
          WHERE i.provider = $1 AND i.subject = $2",
    )
    .bind(ID)
    .bind(format!("sub-{login}"))
    .fetch_optional(pool)
    .await
    .expect("query")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn first_sign_in_makes_the_account_with_the_groups_role_and_a_session_of_ours(pool: PgPool) {
    let (server, idp) = start(pool.clone(), false, |_| {}).await;
    // A local account already named `bob` (no address): the newcomer must not become it.
    let root = server.admin("root").await;
    let local_bob = server.user(&root, "bob").await;

    let alice = server.browser();
    assert_eq!(sign_in(&server, &alice, "alice").await, "/models");
    let (status, me) = alice.me().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "admin", "platform-admins → admin: {me}");
    assert_eq!(me["email"], "alice@example.com");
    assert!(alice.session_cookie().is_some(), "our own session cookie");

    let bob = server.browser();
    sign_in(&server, &bob, "bob").await;
    let (_, me) = bob.me().await;
    assert_eq!(me["username"], "bob-2", "a collision gets a suffix: {me}");
    assert_eq!(me["role"], "user");
    let (_, still) = local_bob.me().await;
    assert_eq!(still["username"], "bob", "the local bob is untouched");
    assert!(still["email"].is_null());

    // A second sign-in is the same account, with a fresh session id.
    let before = alice.session_cookie();
    sign_in(&server, &alice, "alice").await;
    assert_ne!(
        alice.session_cookie(),
        before,
        "the session id changes at sign-in"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM users WHERE username LIKE 'alice%'"
        )
        .await,
        1
    );
    assert_eq!(
        linked_account(&pool, "alice").await,
        Some(("alice".into(), "admin".into()))
    );
    // The audit log has the account made through single sign-on and each sign-in.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE action = 'sso.login' AND actor_name = 'alice'"
        )
        .await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events WHERE action = 'user.created' AND details->>'via' = 'sso'").await,
        2
    );
    // Nothing of the sign-ins is left behind.
    assert_eq!(count(&pool, "SELECT count(*) FROM sso_flows").await, 0);

    // The role follows the groups at each sign-in: out of the admin group, a user…
    idp.set_groups("alice", &["staff"]).await;
    sign_in(&server, &alice, "alice").await;
    assert_eq!(alice.me().await.1["role"], "user");
    // …back in, an admin again.
    idp.set_groups("alice", &["staff", "platform-admins"]).await;
    sign_in(&server, &alice, "alice").await;
    assert_eq!(alice.me().await.1["role"], "admin");
    // Out of the allowed groups altogether: refused, whatever the account.
    idp.set_groups("alice", &["alumni"]).await;
    assert_eq!(
        sign_in(&server, &server.browser(), "alice").await,
        refused("not_allowed")
    );
    // The last active admin keeps the role whatever the groups say.
    sqlx::query("UPDATE users SET role = 'user' WHERE username <> 'alice'")
        .execute(&pool)
        .await
        .expect("only alice is an admin");
    idp.set_groups("alice", &["staff"]).await;
    sign_in(&server, &alice, "alice").await;
    assert_eq!(alice.me().await.1["role"], "admin", "never the last admin");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events WHERE action = 'user.role_changed' AND details->>'via' = 'sso'").await,
        2
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn outsiders_unverified_addresses_and_disabled_accounts_are_refused(pool: PgPool) {
    // The claims in the id token this time (the other tests read them from userinfo).
    let (server, _idp) = start(pool.clone(), true, |_| {}).await;
    let root = server.admin("root").await;
    let before = count(&pool, "SELECT count(*) FROM users").await;

    // Not in an allowed group; not in an allowed domain.
    for login in ["dave", "erin"] {
        let browser = server.browser();
        assert_eq!(
            sign_in(&server, &browser, login).await,
            refused("not_allowed")
        );
        let (_, me) = browser.me().await;
        assert!(me.is_null(), "{login} is not signed in: {me}");
    }
    // An unverified address may not make a new account's address nor link to one.
    let frank = server.browser();
    let _ = server.user(&root, "frankie").await;
    sqlx::query("UPDATE users SET email = 'frank@example.com' WHERE username = 'frankie'")
        .execute(&pool)
        .await
        .expect("address");
    assert_eq!(
        sign_in(&server, &frank, "frank").await,
        refused("not_allowed")
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM users").await, before + 1);

    // A disabled account stays out, whatever the provider says.
    let bob = server.browser();
    assert_eq!(sign_in(&server, &bob, "bob").await, "/models");
    let bob_id = root.user_id("bob").await;
    let (status, body) = root
        .call(
            "admin/users/status",
            &[("id", &bob_id), ("status", "disabled")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = server.browser();
    assert_eq!(sign_in(&server, &again, "bob").await, refused("disabled"));
    let (_, me) = again.me().await;
    assert!(me.is_null());

    // The sign-in page turns each code into words.
    let page = server
        .get(&refused("not_allowed"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("is not allowed here"), "the refusal in words");
    let refusals: Vec<(String, String)> = sqlx::query_as(
        "SELECT subject_name, details->>'code' FROM audit_events
          WHERE action = 'sso.refused' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(
        refusals,
        vec![
            ("dave@example.com".into(), "not_allowed".into()),
            ("erin@elsewhere.org".into(), "not_allowed".into()),
            ("frank@example.com".into(), "not_allowed".into()),
            ("bob@example.com".into(), "disabled".into()),
        ]
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn invited_admission_needs_a_pending_invitation_for_the_verified_address(pool: PgPool) {
    let (server, _idp) = start(pool.clone(), false, |c| {
        c.admission = Admission::Invited;
        c.allowed_domains.clear();
        c.allowed_groups.clear();
        c.admin_groups.clear();
    })
    .await;
    let root = server.admin("root").await;
    let bob = server.browser();
    assert_eq!(sign_in(&server, &bob, "bob").await, refused("not_invited"));
    assert_eq!(linked_account(&pool, "bob").await, None);

    root.invite(&[
        ("form[role]", "admin"),
        ("form[username]", "robert"),
        ("form[email]", "BOB@example.com"),
    ])
    .await;
    assert_eq!(sign_in(&server, &bob, "bob").await, "/models");
    let (_, me) = bob.me().await;
    assert_eq!(me["username"], "robert", "the invitation's username: {me}");
    assert_eq!(me["role"], "admin", "the invitation's role");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM invitations WHERE consumed_at IS NOT NULL"
        )
        .await,
        1,
        "the invitation is used up"
    );
    // The unverified address gets nothing, even with an invitation.
    root.invite(&[("form[email]", "frank@example.com")]).await;
    let frank = server.browser();
    assert_eq!(
        sign_in(&server, &frank, "frank").await,
        refused("unverified_email")
    );
}
