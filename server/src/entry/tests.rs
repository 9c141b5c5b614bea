use super::routes::routes;
use super::*;
use clawloops_orchestrator::{Orchestrator, RuntimeRow};
use serde_json::json;
use std::sync::Arc;

fn gate() -> EntryGate {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://nobody@127.0.0.1:9/none")
        .expect("lazy");
    let driver: Arc<dyn clawloops_driver::RuntimeDriver> = Arc::new(
        clawloops_driver::remote::RemoteDriver::new(
            &url::Url::parse("http://127.0.0.1:9/").expect("url"),
            &"s".repeat(40),
            "i",
        )
        .expect("driver"),
    );
    let orchestrator = Orchestrator::new(pool.clone(), driver, Default::default(), "i");
    EntryGate::new(
        pool,
        orchestrator,
        Some("clawloops.localhost".into()),
        "clawloops_session",
        time::Duration::hours(1),
        4,
    )
}

#[tokio::test]
async fn workspace_hosts_are_recognised_strictly() {
    let g = gate();
    assert_eq!(g.workspace_of("alice.clawloops.localhost"), Some("alice"));
    assert_eq!(
        g.workspace_of("alice.clawloops.localhost:8080"),
        Some("alice")
    );
    assert_eq!(
        g.workspace_of("ALICE.clawloops.localhost"),
        None,
        "names are lower-case"
    );
    assert_eq!(g.workspace_of("clawloops.localhost"), None);
    assert_eq!(g.workspace_of(".clawloops.localhost"), None);
    assert_eq!(g.workspace_of("a.b.clawloops.localhost"), None);
    assert_eq!(g.workspace_of("alice.evil-clawloops.localhost"), None);
    assert_eq!(g.workspace_of("aliceclawloops.localhost"), None);
    assert_eq!(g.workspace_of("alice.clawloops.localhost.evil.com"), None);
    assert_eq!(
        g.workspace_of(&format!("{}.clawloops.localhost", "a".repeat(64))),
        None
    );
    assert_eq!(g.workspace_of("älice.clawloops.localhost"), None);
}

#[tokio::test]
async fn the_session_cookie_is_taken_out_and_garbage_is_no_session() {
    let g = gate();
    let id = tower_sessions::session::Id::default().to_string();
    let header = format!("theme=dark; clawloops_session={id}; lang=en");
    let (session, rest) = g.split_cookie(&header).expect("session");
    assert_eq!(session, id);
    assert_eq!(rest.as_deref(), Some("theme=dark; lang=en"));
    let (_, rest) = g
        .split_cookie(&format!("clawloops_session={id}"))
        .expect("session");
    assert_eq!(
        rest, None,
        "nothing left: the runtime gets no Cookie header"
    );
    assert!(g.split_cookie("clawloops_session=not-an-id").is_none());
    assert!(g.split_cookie("clawloops_session=").is_none());
    assert!(g.split_cookie(";;;=;").is_none());
    assert!(g.split_cookie(&"x".repeat(100_000)).is_none());
}

/// With signed session cookies, only a value the control plane signed is a session: a
/// well-formed id without (or with a wrong) signature is garbage, refused without a lookup.
#[tokio::test]
async fn signed_session_cookies_are_checked_before_any_lookup() {
    use tower_sessions::cookie::{Cookie, CookieJar, Key};
    let key = Key::generate();
    let g = gate().signing_sessions(key.clone());
    let id = tower_sessions::session::Id::default().to_string();
    let sign = |key: &Key| {
        let mut jar = CookieJar::new();
        jar.signed_mut(key)
            .add(Cookie::new("clawloops_session", id.clone()));
        jar.get("clawloops_session")
            .expect("signed")
            .value()
            .to_owned()
    };
    let signed = sign(&key);
    assert_ne!(signed, id);
    let (session, rest) = g
        .split_cookie(&format!("a=b; clawloops_session={signed}"))
        .expect("a signed session");
    assert_eq!(
        (session.as_str(), rest.as_deref()),
        (id.as_str(), Some("a=b"))
    );
    assert!(
        g.split_cookie(&format!("clawloops_session={id}")).is_none(),
        "unsigned"
    );
    let forged = sign(&Key::generate());
    assert!(
        g.split_cookie(&format!("clawloops_session={forged}"))
            .is_none(),
        "another key"
    );
    let mut tampered = signed.clone();
    tampered.pop();
    tampered.push(if signed.ends_with('A') { 'B' } else { 'A' });
    assert!(
        g.split_cookie(&format!("clawloops_session={tampered}"))
            .is_none(),
        "tampered"
    );
}

#[tokio::test]
async fn unknown_hosts_and_missing_sessions_are_refused_without_the_database() {
    let g = gate();
    let id = tower_sessions::session::Id::default().to_string();
    let cookie = format!("clawloops_session={id}");
    let d = g
        .decide(EntryRequest {
            host: Some("evil.example"),
            cookie: Some(&cookie),
            ..Default::default()
        })
        .await;
    assert_eq!(d, Decision::Deny(Deny::UnknownHost));
    let d = g
        .decide(EntryRequest {
            host: None,
            cookie: Some(&cookie),
            ..Default::default()
        })
        .await;
    assert_eq!(d, Decision::Deny(Deny::UnknownHost));
    let d = g
        .decide(EntryRequest {
            host: Some("alice.clawloops.localhost"),
            cookie: None,
            ..Default::default()
        })
        .await;
    assert_eq!(d, Decision::SignIn);
    // The database is unreachable here: a real session id cannot be checked, and the
    // answer is a refusal, never a pass.
    let d = g
        .decide(EntryRequest {
            host: Some("alice.clawloops.localhost"),
            cookie: Some(&cookie),
            ..Default::default()
        })
        .await;
    assert_eq!(d, Decision::Unavailable);
}

#[test]
fn routes_exist_only_for_runtimes_with_an_address() {
    let mut row = crate::entry::tests::binding("alice.b", Some("http://10.213.0.19:18789"));
    let doc = routes("ws.example", std::slice::from_ref(&row), false);
    let router = &doc["http"]["routers"]["ws-alice-b"];
    assert_eq!(router["rule"], "Host(`alice-b.ws.example`)");
    assert_eq!(router["entryPoints"], json!(["web"]));
    assert_eq!(router.get("tls"), None);
    let secure = routes("ws.example", std::slice::from_ref(&row), true);
    let secure = &secure["http"]["routers"]["ws-alice-b"];
    assert_eq!(
        (&secure["entryPoints"], &secure["tls"]),
        (&json!(["websecure"]), &json!({})),
        "over https the workspace is on the TLS entry point"
    );
    assert_eq!(
        router["middlewares"],
        json!([
            "public-limits@file",
            "workspace-auth@file",
            "workspace-cookies@file",
            "workspace-headers@file"
        ]),
        "the client's limits first (a flood is refused before it costs a decision), then \
         the check, then what the runtime's answer may carry"
    );
    assert_eq!(
        doc["http"]["services"]["ws-alice-b"]["loadBalancer"]["servers"][0]["url"],
        "http://10.213.0.19:18789"
    );
    row.internal_endpoint = None;
    assert_eq!(routes("ws.example", &[row], false), json!({}));
}

pub(crate) fn binding(username: &str, endpoint: Option<&str>) -> RuntimeRow {
    let mut row = RuntimeRow::sample(username);
    row.runtime_id = format!("rt-{}", Orchestrator::workspace_name(username));
    row.internal_endpoint = endpoint.map(str::to_owned);
    row.ready_at = Some(OffsetDateTime::now_utc());
    row
}
