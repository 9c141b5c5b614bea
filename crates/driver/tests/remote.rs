//! Split mode: the runtime manager's internal API in front of the real Docker driver, called
//! through `RemoteDriver` over real HTTP.

pub mod common;

use clawloops_driver::remote::{RemoteDriver, service};
use clawloops_driver::{ContainerState, DriverError, RuntimeDriver};
use common::Fixture;
use std::net::SocketAddr;
use std::time::Duration;

const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Serves the runtime manager for `fixture`'s engine on an ephemeral port.
async fn manager(f: &Fixture, allowed: &[&str]) -> reqwest::Url {
    let access = service::Access {
        secret: SECRET.into(),
        allowed_clients: allowed.iter().map(|a| a.parse().expect("net")).collect(),
    };
    let router = service::router(f.driver.clone(), access).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    format!("http://{addr}/").parse().expect("url")
}

#[tokio::test]
async fn a_runtime_runs_its_whole_life_through_the_runtime_manager() {
    let f = Fixture::new().await;
    let url = manager(&f, &["127.0.0.1/32"]).await;
    let remote = RemoteDriver::new(&url, SECRET, &f.instance).expect("remote");
    let spec = f.spec("split");

    assert!(remote.image_present(&spec.image).await.expect("image"));
    assert!(
        !remote
            .image_present("clawloops/no-such-image:0")
            .await
            .expect("image")
    );
    remote
        .install_config(&spec, "{\"gateway\":{}}")
        .await
        .expect("config");
    let written = f
        .config_root
        .path()
        .join(spec.container_name())
        .join("openclaw.json");
    assert_eq!(
        std::fs::read_to_string(&written).expect("written on the manager's side"),
        "{\"gateway\":{}}"
    );

    let info = common::running(&remote, &spec).await;
    // The remote view and the local view agree.
    let local = f
        .driver
        .find(&spec.runtime_id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(local.id, info.id);
    assert_eq!(remote.list().await.expect("list"), vec![local]);
    let logs = remote.logs(&info.id, 20).await.expect("logs");
    assert!(
        logs.iter().any(|l| l.contains("listening on port 18789")),
        "{logs:?}"
    );
    let stats = remote.stats(&info.id).await.expect("stats");
    assert_eq!(stats.memory_limit_bytes, 64 * 1024 * 1024);

    // A second create is a conflict on both sides of the wire.
    let err = remote.create(&spec).await.expect_err("conflict");
    assert!(matches!(err, DriverError::Conflict), "{err}");

    remote
        .stop(&info.id, Duration::from_secs(5))
        .await
        .expect("stop");
    let stopped = remote
        .find(&spec.runtime_id)
        .await
        .expect("find")
        .expect("still there");
    assert!(matches!(stopped.state, ContainerState::Exited(_)));
    remote.remove(&info.id).await.expect("remove");
    remote.cleanup(&spec, true).await.expect("cleanup");
    assert!(remote.find(&spec.runtime_id).await.expect("find").is_none());
    assert!(!written.exists(), "configuration removed with the runtime");
    f.teardown(&[spec]).await;
}

#[tokio::test]
async fn the_runtime_manager_refuses_wrong_secrets_strangers_and_other_installations() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    let theirs = other.spec("theirs");
    let their_container = other.running(&theirs).await;

    let url = manager(&f, &["127.0.0.1/32"]).await;

    // A wrong secret.
    let wrong = RemoteDriver::new(&url, "not-the-secret-0123456789abcdef012345", &f.instance)
        .expect("remote");
    let err = wrong.list().await.expect_err("refused");
    assert!(
        matches!(&err, DriverError::ManagerRefused(m) if m.contains("secret")),
        "{err}"
    );

    // A secret too short to be safe is refused before any call.
    assert!(RemoteDriver::new(&url, "short", &f.instance).is_err());

    // A spec of another installation.
    let remote = RemoteDriver::new(&url, SECRET, &f.instance).expect("remote");
    let err = remote.prepare(&theirs).await.expect_err("not ours");
    assert!(
        matches!(&err, DriverError::ManagerRefused(m) if m.contains("another installation")),
        "{err}"
    );

    // Another installation's container is invisible: removing or stopping it does nothing,
    // starting it fails, its logs are empty.
    remote
        .remove(&their_container.id)
        .await
        .expect("no-op remove");
    remote
        .stop(&their_container.id, Duration::from_secs(1))
        .await
        .expect("no-op stop");
    assert!(remote.start(&their_container.id).await.is_err());
    assert!(
        remote
            .logs(&their_container.id, 10)
            .await
            .expect("logs")
            .is_empty()
    );
    // Probing with a forged container id probes nothing.
    let mut forged = their_container.clone();
    forged.runtime_id = "rt-nobody".into();
    assert!(!remote.probe(&forged, &theirs.profile).await);
    let still = other
        .driver
        .find(&theirs.runtime_id)
        .await
        .expect("find")
        .expect("untouched");
    assert_eq!(still.state, ContainerState::Running);

    // A caller from an address that is not allowed.
    let closed = manager(&f, &["10.255.255.0/24"]).await;
    let stranger = RemoteDriver::new(&closed, SECRET, &f.instance).expect("remote");
    let err = stranger.list().await.expect_err("refused");
    assert!(
        matches!(&err, DriverError::ManagerRefused(m) if m.contains("address")),
        "{err}"
    );

    // A manager that is not there.
    let gone = RemoteDriver::new(
        &"http://127.0.0.1:1/".parse().expect("url"),
        SECRET,
        &f.instance,
    )
    .expect("remote");
    let err = gone.list().await.expect_err("unreachable");
    assert!(matches!(err, DriverError::ManagerUnreachable(_)), "{err}");

    other.teardown(&[theirs]).await;
}

#[tokio::test]
async fn malformed_calls_get_a_clear_client_error() {
    let f = Fixture::new().await;
    let url = manager(&f, &["127.0.0.1/32"]).await;
    let client = reqwest::Client::new();
    let endpoint = url.join("v1/driver").expect("url");
    let res = client
        .post(endpoint.clone())
        .bearer_auth(SECRET)
        .header("x-clawloops-instance", &f.instance)
        .body("{\"op\":\"explode\"}")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("not a driver call")),
        "{body}"
    );
    let res = client
        .post(endpoint)
        .bearer_auth(SECRET)
        .body("{\"op\":\"list\"}")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 400, "the installation must be named");
    let health = client
        .get(url.join("healthz").expect("url"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200);
}
