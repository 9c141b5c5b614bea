//! What goes wrong on the way: `state`, replayed codes, id tokens that fail a check, key
//! rotation, and a provider that is down or misconfigured. Nobody is signed in and nothing is
//! half-made in any of them.

use super::{
    CLIENT, CLIENT_SECRET, ID, count, finish, people, provider_config, refused, sign_in, start,
    to_callback,
};
use crate::support::{PASSWORD, TestServer, captured_logs};
use app::ssr::identity::sso::ProviderConfig;
use clawloops_testkit::oidc::OidcProvider;
use reqwest::StatusCode;
use sqlx::PgPool;
use std::time::Duration;

/// The callback URL with its `state` replaced (or removed, for `None`).
fn with_state(callback: &str, state: Option<&str>) -> String {
    let mut url = reqwest::Url::parse(callback).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    url.to_string()
}

fn state_of(callback: &str) -> String {
    reqwest::Url::parse(callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_missing_wrong_foreign_or_used_state_and_a_replayed_code_sign_nobody_in(pool: PgPool) {
    let (server, _idp) = start(pool.clone(), false, |_| {}).await;
    let browser = server.browser();

    // Missing, then made up.
    let callback = to_callback(&server, &browser, "bob").await;
    for bad in [None, Some("made-up-state")] {
        let (status, to) = finish(&browser, &with_state(&callback, bad)).await;
        assert_eq!(
            (status, to),
            (StatusCode::SEE_OTHER, refused("state")),
            "{bad:?}"
        );
    }
    // A made-up state did not use up the real one: but another browser can't bring it back
    // (no state cookie: a login-CSRF attempt) — and that attempt does use it up.
    let other = server.browser();
    assert_eq!(finish(&other, &callback).await.1, refused("state"));
    assert_eq!(
        finish(&browser, &callback).await.1,
        refused("state"),
        "used"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM users WHERE email = 'bob@example.com'"
        )
        .await,
        0
    );

    // A successful callback can't be replayed.
    let callback = to_callback(&server, &browser, "bob").await;
    assert_eq!(finish(&browser, &callback).await.1, "/models");
    assert_eq!(finish(&browser, &callback).await.1, refused("state"));

    // The provider's code, replayed with a fresh state of the same browser: the provider
    // refuses it (used, and the new flow's PKCE verifier doesn't match).
    let fresh = to_callback(&server, &browser, "bob").await;
    let replay = with_state(&callback, Some(&state_of(&fresh)));
    assert_eq!(finish(&browser, &replay).await.1, refused("code_rejected"));

    // The provider's own refusal (the person cancelled).
    let callback = to_callback(&server, &browser, "bob").await;
    let mut denied = reqwest::Url::parse(&callback).expect("url");
    let state = state_of(&callback);
    denied.set_query(Some(&format!("error=access_denied&state={state}")));
    assert_eq!(
        finish(&browser, denied.as_str()).await.1,
        refused("provider_error")
    );

    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'code' FROM audit_events WHERE action = 'sso.refused' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(
        codes,
        [
            "state",
            "state",
            "state",
            "state",
            "state",
            "code_rejected",
            "provider_error"
        ]
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn id_tokens_that_fail_a_check_are_refused(pool: PgPool) {
    let logs = captured_logs();
    let (server, idp) = start(pool.clone(), true, |_| {}).await;
    // Each fault, and the check that must catch it (as the server logs it).
    for (fault, why) in [
        ("tamper", "bad signature"),
        ("none", "No signature found"),
        ("aud", "Invalid audiences"),
        ("iss", "Invalid issuer"),
        ("expired", "ID token expired"),
        ("nonce", "nonce mismatch"),
    ] {
        let seen = logs.lock().expect("logs").len();
        let browser = server.browser();
        idp.fault(fault).await;
        assert_eq!(
            sign_in(&server, &browser, "bob").await,
            refused("token"),
            "{fault}"
        );
        let (_, me) = browser.me().await;
        assert!(me.is_null(), "{fault}: nobody signed in");
        let new = String::from_utf8_lossy(&logs.lock().expect("logs")[seen..]).into_owned();
        assert!(
            new.contains(why),
            "{fault} refused for its own reason: {new}"
        );
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM sso_identities").await, 0);
    // The same flow without a fault goes through: the refusals were the faults'.
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
    // Clocks 10 s apart (issued in the future, expired just now) are within the 30 s tolerance.
    idp.fault("skew").await;
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
    let all = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        !all.contains(CLIENT_SECRET),
        "the client secret is never logged"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_rotated_key_works_at_once_and_a_removed_key_stops_working(pool: PgPool) {
    let (server, idp) = start(pool.clone(), true, |c| {
        c.metadata_max_age = Duration::from_secs(2);
    })
    .await;
    // The first key is cached by this sign-in.
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
    // A new key signs from now on; our cache doesn't know it yet, so it reads the keys again.
    let kids = idp.rotate().await;
    assert_eq!(kids.len(), 2);
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
    // The old key is still published, so its signature still counts.
    idp.fault("old_key").await;
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
    // Removed: once our copy ages out, a token signed with it is refused.
    assert_eq!(idp.retire_old_keys().await.len(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    idp.fault("old_key").await;
    assert_eq!(
        sign_in(&server, &server.browser(), "bob").await,
        refused("token")
    );
    // And the new key still works.
    assert_eq!(sign_in(&server, &server.browser(), "bob").await, "/models");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_provider_down_or_misconfigured_is_said_plainly_and_passwords_still_work(pool: PgPool) {
    let mut idp = OidcProvider::start(people(), false).await;
    let serving = |config: ProviderConfig| {
        TestServer::start_with(pool.clone(), |s| s.sso_providers = vec![config])
    };
    let start_of = |server: &TestServer| server.url(&format!("/auth/sso/{ID}/start"));

    // Misconfigured: the issuer as written differs from the one the provider names (a
    // trailing slash), so discovery refuses it.
    let mut config = provider_config(&idp.issuer);
    config.issuer.push('/');
    let server = serving(config).await;
    let res = server
        .browser()
        .client
        .get(start_of(&server))
        .send()
        .await
        .expect("start");
    assert_eq!(res.headers()["location"], refused("misconfigured").as_str());
    drop(server);

    // The wrong client secret: the token endpoint refuses our client.
    let mut config = provider_config(&idp.issuer);
    config.client_id = "clawloops-wrong-secret".into();
    config.client_secret = Some("not-the-secret".to_owned().into());
    let server = serving(config).await;
    idp.add_client(
        "clawloops-wrong-secret",
        CLIENT_SECRET,
        &server.url(&format!("/auth/sso/{ID}/callback")),
    )
    .await;
    let browser = server.browser();
    let callback = to_callback(&server, &browser, "bob").await;
    assert_eq!(
        finish(&browser, &callback).await.1,
        refused("misconfigured")
    );
    drop(server);

    // Down while the person is at the provider: the code can't be exchanged.
    let server = serving(provider_config(&idp.issuer)).await;
    server.make_admin("root").await;
    idp.add_client(
        CLIENT,
        CLIENT_SECRET,
        &server.url(&format!("/auth/sso/{ID}/callback")),
    )
    .await;
    let browser = server.browser();
    let callback = to_callback(&server, &browser, "bob").await;
    idp.stop().await;
    assert_eq!(finish(&browser, &callback).await.1, refused("unreachable"));
    drop(server);

    // Down before the sign-in starts (nothing cached by this replica yet).
    let server = serving(provider_config(&idp.issuer)).await;
    let res = server
        .browser()
        .client
        .get(start_of(&server))
        .send()
        .await
        .expect("start");
    assert_eq!(res.headers()["location"], refused("unreachable").as_str());
    let page = server
        .get(&refused("unreachable"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("can&#x27;t be reached") || page.contains("can't be reached"),
        "the refusal in words"
    );

    // Nothing half-made, and the password still signs in.
    assert_eq!(count(&pool, "SELECT count(*) FROM users").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM sso_identities").await, 0);
    server.browser().login_ok("root", PASSWORD).await;
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn sign_ins_under_way_are_capped_per_address(pool: PgPool) {
    let (server, _idp) = start(pool.clone(), false, |_| {}).await;
    let browser = server.browser();
    let start_url = server.url(&format!("/auth/sso/{ID}/start"));
    let mut answers = Vec::new();
    for _ in 0..21 {
        let res = browser.client.get(&start_url).send().await.expect("start");
        answers.push(
            res.headers()["location"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    let (first, last) = answers.split_at(20);
    assert!(
        first.iter().all(|to| !to.starts_with("/login")),
        "20 go to the provider"
    );
    assert_eq!(last, [refused("busy")], "the 21st from one address waits");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM sso_flows").await,
        20,
        "no row for it"
    );
    // Another address is not held up by that one.
    sqlx::query("UPDATE sso_flows SET client_addr = '192.0.2.7'")
        .execute(&pool)
        .await
        .expect("move");
    let res = browser.client.get(&start_url).send().await.expect("start");
    assert!(
        !res.headers()["location"]
            .to_str()
            .expect("ascii")
            .starts_with("/login")
    );
}
