//! The real router on 127.0.0.1:0 with a real PostgreSQL (one database per test).

use crate::support::TestServer;
use clawloops_server::database;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn healthz_answers_ok(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let res = server.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn readyz_is_200_when_the_database_answers(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let res = server.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["database"], "up");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    // Nothing listens on port 1; the pool connects lazily, so the server starts anyway.
    let options = PgConnectOptions::new().host("127.0.0.1").port(1);
    let pool = database::pool_options(2).connect_lazy_with(options);
    let server = TestServer::start(pool).await;

    let res = server.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["database"], "down");

    // Liveness does not depend on the database.
    assert_eq!(server.get("/healthz").await.status(), 200);
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn metrics_count_requests_and_time_them(pool: PgPool) {
    let server = TestServer::start(pool).await;
    for _ in 0..3 {
        assert_eq!(server.get("/healthz").await.status(), 200);
    }
    server.get("/no/such/page").await;

    let res = server.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = res.text().await.expect("body");

    let healthz = r#"clawloops_http_requests_total{method="GET",route="/healthz",status="200"} 3"#;
    assert!(text.contains(healthz), "missing {healthz} in:\n{text}");
    assert!(
        text.contains(
            r#"clawloops_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"clawloops_http_request_duration_seconds_count{method="GET",route="/healthz"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains("clawloops_http_request_duration_seconds_bucket{le="),
        "{text}"
    );
    assert!(text.contains("clawloops_build_info{version="), "{text}");
    assert!(text.contains("clawloops_db_pool_connections"), "{text}");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn status_server_function_reports_the_database_to_admins(pool: PgPool) {
    let instance: uuid::Uuid = sqlx::query_scalar("SELECT id FROM instance")
        .fetch_one(&pool)
        .await
        .expect("instance row");
    let server = TestServer::start(pool).await;

    let (status, body) = server.browser().call("admin/status", &[]).await;
    assert_eq!(status, 401, "anonymous: {body}");
    assert_eq!(crate::support::code(&body), "UNAUTHENTICATED");

    let admin = server.admin("root").await;
    let (status, body) = admin.call("admin/status", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["database"]["state"], "up");
    assert_eq!(body["database"]["instance_id"], instance.to_string());
    assert!(
        body["database"]["migrations_applied"].as_i64() >= Some(2),
        "{body}"
    );
    assert!(
        body["database"]["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{body}"
    );
    // The one replica, which answered, leads the reconciler once it has campaigned.
    let mut tries = 0;
    let replica = loop {
        let (_, body) = admin.call("admin/status", &[]).await;
        let replicas = body["replicas"].as_array().cloned().unwrap_or_default();
        assert!(replicas.len() <= 1, "{body}");
        if let Some(one) = replicas.first()
            && one["leader"] == true
        {
            break one.clone();
        }
        tries += 1;
        assert!(tries < 100, "no leading replica listed: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(replica["this"], true, "{replica}");
    assert_eq!(replica["draining"], false, "{replica}");
    assert_eq!(replica["version"], env!("CARGO_PKG_VERSION"));
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn unknown_pages_get_a_styled_404(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let res = server.get("/this/does/not/exist").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.expect("body");
    assert!(html.contains("Page not found"), "{html}");
    assert!(html.contains("/pkg/clawloops.css"), "styled: {html}");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn pages_render_on_the_server_and_send_strangers_to_sign_in(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let res = server
        .browser()
        .client
        .get(server.url("/admin/users"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/login?next=/admin/users");

    let res = server.get("/login").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("<title>Sign in · ClawLoops</title>"),
        "{html}"
    );
    assert!(
        html.contains("/pkg/clawloops.js"),
        "hydration script: {html}"
    );
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_malformed_server_function_call_is_a_client_error(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let res = server
        .client
        .post(server.url("/api/no-such-function"))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 404, "no such server function");
    let html = res.text().await.expect("body");
    assert!(html.contains("Page not found"), "{html}");
}

/// The dashboard's files come pre-compressed, by what the browser accepts; pages are never
/// cached. (Without the release build's hash file beside the binary, names are not hashed and
/// files are revalidated every time; the browser tests check the year-long lifetime of hashed
/// names against the release build.)
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn assets_are_sent_pre_compressed_and_pages_are_not_cached(pool: PgPool) {
    let site = tempfile::tempdir().expect("site");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg");
    std::fs::write(pkg.join("clawloops.css"), "body{color:red}").expect("css");
    std::fs::write(pkg.join("clawloops.css.br"), b"brotli bytes").expect("br");
    std::fs::write(pkg.join("clawloops.css.gz"), b"gzip bytes").expect("gz");
    let root = site.path().to_path_buf();
    let server = TestServer::start_with(pool, move |s| s.site_root = root).await;
    let client = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .build()
        .expect("client");
    for (accept, encoding, body) in [
        ("gzip, deflate, br", Some("br"), "brotli bytes"),
        ("gzip", Some("gzip"), "gzip bytes"),
        ("identity", None, "body{color:red}"),
    ] {
        let res = client
            .get(server.url("/pkg/clawloops.css"))
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("asset");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            encoding,
            "{accept}"
        );
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert_eq!(res.text().await.expect("body"), body);
    }
    let page = server.get("/login").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
}

/// Every answer says how browsers may use it; a page's Content-Security-Policy allows its own
/// inline scripts by the nonce they carry and nothing inline without it; HSTS only over https.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn answers_carry_the_browser_security_headers(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let page = server.get("/login").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let html = page.text().await.expect("body");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    assert!(
        headers.get("strict-transport-security").is_none(),
        "not over http"
    );
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("object-src 'none'") && csp.contains("base-uri 'none'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a script nonce");
    assert!(nonce.len() >= 16, "{nonce}");
    let scripts_rule = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .expect("script-src");
    assert!(!scripts_rule.contains("unsafe-inline"), "{csp}");
    // Every inline script of the page carries that nonce (else the browser would not run it).
    let scripts = html.matches("<script").count();
    let with_nonce = html.matches(&format!("nonce=\"{nonce}\"")).count();
    assert!(scripts >= 2, "theme and hydration scripts: {html}");
    assert_eq!(scripts, with_nonce, "a script without the nonce: {html}");
    // A new response, a new nonce.
    let again = server.get("/login").await;
    assert_ne!(
        again.headers()["content-security-policy"],
        headers["content-security-policy"]
    );
    // Not a page: a policy that allows nothing to run, and the same framing rules.
    let health = server.get("/healthz").await;
    assert_eq!(
        health.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(health.headers()["x-frame-options"], "DENY");
    drop(server);

    // Served over https: browsers are told to keep to https.
    let server = TestServer::start_with(pool, |s| {
        s.public_url = "https://claw.example.com/".parse().expect("url");
    })
    .await;
    let res = server.get("/healthz").await;
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}
