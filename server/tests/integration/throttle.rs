//! Sign-in throttling an attacker feels and a team does not: per account and address with
//! back-off, per address across many accounts (IPv6 by /64), per account across many
//! addresses (known addresses exempt), cleared on success, audited with the reason, and
//! telling nothing about which usernames exist. Clients claim their address in
//! `X-Forwarded-For`, which the test server believes from loopback (its trusted proxy).

use crate::support::{Browser, PASSWORD, TestServer, code};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::time::{Duration, Instant};

async fn server(pool: PgPool) -> TestServer {
    TestServer::start_with(pool, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    })
    .await
}

/// A browser whose requests come from `addr`.
fn from(server: &TestServer, addr: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_str(addr).expect("address"),
    );
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    Browser {
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        jar,
        base: server.url(""),
    }
}

async fn attempt(browser: &Browser, name: &str, password: &str) -> (u16, String) {
    let (status, body) = browser.login(name, password).await;
    (status.as_u16(), code(&body).to_owned())
}

/// The audit rows of `action` for `subject`: their details.
async fn audited(pool: &PgPool, action: &str, subject: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = $1 AND subject_name = $2 ORDER BY id",
    )
    .bind(action)
    .bind(subject)
    .fetch_all(pool)
    .await
    .expect("audit rows")
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn twenty_failures_on_one_account_do_not_stop_another_from_the_same_address(pool: PgPool) {
    let server = server(pool.clone()).await;
    let admin = server.admin("root").await;
    let _x = server.user(&admin, "xavier").await;
    let _y = server.user(&admin, "yvonne").await;
    let office = from(&server, "198.51.100.20");
    let mut refused = 0;
    for _ in 0..20 {
        match attempt(&office, "xavier", "not his password").await {
            (401, c) if c == "INVALID_CREDENTIALS" => {}
            (429, c) if c == "TOO_MANY_ATTEMPTS" => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        refused >= 14,
        "xavier's guessing from the office slowed down: {refused}"
    );
    // Yvonne, behind the same address, signs in at once.
    from(&server, "198.51.100.20")
        .login_ok("yvonne", PASSWORD)
        .await;
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_locked_account_still_signs_in_from_another_address_and_the_lock_is_audited(
    pool: PgPool,
) {
    let server = server(pool.clone()).await;
    server.make_admin("admin").await;
    let attacker = from(&server, "203.0.113.66");
    for n in 1..=5 {
        assert_eq!(
            attempt(&attacker, "admin", "guess").await,
            (401, "INVALID_CREDENTIALS".into()),
            "attempt {n}"
        );
    }
    // The right password from the attacker's address waits (with Retry-After) ...
    let res = attacker
        .client
        .post(server.url("/api/auth/login"))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&retry), "{retry}");
    // ... the admin from their own address does not.
    from(&server, "192.0.2.10")
        .login_ok("admin", PASSWORD)
        .await;

    let locks = audited(&pool, "login.locked", "admin").await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["scope"], "account_from_address");
    assert_eq!(locks[0]["address_group"], "203.0.113.66");
    let reason = locks[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("203.0.113.66") && reason.contains("wrong passwords"),
        "{reason}"
    );
    let throttled = audited(&pool, "login.throttled", "admin").await;
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0]["scope"], "account_from_address");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn an_address_cycling_through_fifty_usernames_is_throttled(pool: PgPool) {
    let server = server(pool.clone()).await;
    let admin = server.admin("root").await;
    let _carol = server.user(&admin, "carol").await;
    let sprayer = from(&server, "203.0.113.99");
    let mut answers = Vec::new();
    for n in 0..50 {
        answers.push(attempt(&sprayer, &format!("user{n:02}"), "Summer2026!").await);
    }
    let first_refused = answers
        .iter()
        .position(|(status, _)| *status == 429)
        .expect("the address was throttled");
    assert_eq!(
        first_refused, 20,
        "throttled after 20 different accounts: {answers:?}"
    );
    assert!(
        answers[first_refused..]
            .iter()
            .all(|(s, c)| *s == 429 && c == "TOO_MANY_ATTEMPTS")
    );
    // Every account from that address waits now, even with the right password ...
    assert_eq!(attempt(&sprayer, "carol", PASSWORD).await.0, 429);
    // ... and nobody elsewhere notices.
    from(&server, "203.0.113.100")
        .login_ok("carol", PASSWORD)
        .await;
    let locks: Vec<Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'login.locked' AND details->>'scope' = 'address'",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["address_group"], "203.0.113.99");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn ipv6_addresses_of_one_64_share_their_counter(pool: PgPool) {
    let server = server(pool.clone()).await;
    server.make_admin("root").await;
    for n in 1..=5 {
        let walker = from(&server, &format!("2001:db8:5:6::{n:x}"));
        assert_eq!(
            attempt(&walker, "root", "guess").await.0,
            401,
            "attempt {n}"
        );
    }
    let next = from(&server, "2001:db8:5:6:ffff:1:2:3");
    assert_eq!(attempt(&next, "root", PASSWORD).await.0, 429, "same /64");
    from(&server, "2001:db8:5:7::1")
        .login_ok("root", PASSWORD)
        .await;
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_right_password_clears_the_counter(pool: PgPool) {
    let server = server(pool).await;
    server.make_admin("root").await;
    let me = from(&server, "198.51.100.7");
    for _round in 0..3 {
        for _ in 0..4 {
            assert_eq!(attempt(&me, "root", "typo").await.0, 401);
        }
        me.login_ok("root", PASSWORD).await;
    }
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn many_addresses_guessing_one_account_slow_down_only_new_addresses(pool: PgPool) {
    let server = server(pool.clone()).await;
    server.make_admin("root").await;
    // The admin's usual address.
    from(&server, "192.0.2.1").login_ok("root", PASSWORD).await;
    // Fifty failures, each from a fresh address (a botnet): no single pair is locked.
    for n in 0..50 {
        let bot = from(&server, &format!("198.18.{}.{}", n / 200, n % 200 + 1));
        assert_eq!(attempt(&bot, "root", "guess").await.0, 401, "bot {n}");
    }
    let fresh = from(&server, "198.18.9.9");
    assert_eq!(
        attempt(&fresh, "root", PASSWORD).await.0,
        429,
        "a new address waits"
    );
    from(&server, "192.0.2.1").login_ok("root", PASSWORD).await;
    let locks = audited(&pool, "login.locked", "root").await;
    assert!(
        locks
            .iter()
            .any(|l| l["scope"] == "account_from_new_addresses"),
        "{locks:?}"
    );
}

/// The answer for an unknown username is the same as for a wrong password, and so is the time
/// it takes (both check a password hash); compared over interleaved samples from fresh
/// addresses, with a wide margin for a shared machine (skipping the hash would make the
/// missing account a hundred times faster).
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn answers_do_not_tell_whether_a_username_exists(pool: PgPool) {
    let server = server(pool).await;
    server.make_admin("root").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for n in 0..8 {
        for (name, times) in [("root", &mut known), ("nobody-here", &mut unknown)] {
            let client = from(&server, &format!("198.51.100.{}", 100 + n));
            let started = Instant::now();
            let (status, body) = client.login(name, "wrong password!").await;
            times.push(started.elapsed());
            assert_eq!((status.as_u16(), code(&body)), (401, "INVALID_CREDENTIALS"));
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[4].as_secs_f64(), unknown[4].as_secs_f64());
    assert!(
        k / u < 2.0 && u / k < 2.0,
        "median {k:.3}s for an existing account, {u:.3}s for a missing one"
    );
    assert!(known[0] > Duration::from_millis(1), "a hash was checked");
}
