//! Split mode: the runtime manager's internal API in front of the real Docker driver, called
//! through `RemoteDriver` over real HTTP.

use crate::conformance::{self, Hardening, Target};
use crate::docker::DockerTarget;
use crate::support::{self, Fixture};
use async_trait::async_trait;
use clawloops_driver::remote::{RemoteDriver, service};
use clawloops_driver::{DriverError, RuntimeDriver, RuntimeSpec};
use std::net::SocketAddr;
use std::time::Duration;

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Serves the runtime manager for `fixture`'s engine on an ephemeral port.
pub async fn manager(f: &Fixture, allowed: &[&str]) -> reqwest::Url {
    let access = service::Access {
        secret: SECRET.into(),
        allowed_clients: allowed.iter().map(|a| a.parse().expect("net")).collect(),
        pin: None,
    };
    let policy = service::Policy {
        profile: support::profile(),
        images: vec![support::stub_image()],
        egress: Default::default(),
    };
    let router = service::router(f.driver.clone(), access, policy).expect("router");
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

/// The runtime manager in front of the Docker driver, as a conformance target: the driver
/// is the remote one, the engine-side facts are the local engine's.
struct RemoteTarget {
    local: DockerTarget,
    remote: RemoteDriver,
}

#[async_trait]
impl Target for RemoteTarget {
    fn driver(&self) -> &dyn RuntimeDriver {
        &self.remote
    }
    fn spec(&self, name: &str) -> RuntimeSpec {
        self.local.spec(name)
    }
    async fn hardening(&self, spec: &RuntimeSpec) -> Hardening {
        self.local.hardening(spec).await
    }
    async fn workspace_exists(&self, spec: &RuntimeSpec) -> bool {
        self.local.workspace_exists(spec).await
    }
    async fn reach_from(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String> {
        self.local.reach_from(spec, targets).await
    }
    fn forbidden(&self) -> Vec<String> {
        self.local.forbidden()
    }
    fn honours_profiles(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn the_runtime_manager_passes_the_conformance_suite() {
    let f = Fixture::new().await;
    let url = manager(&f, &["127.0.0.1/32"]).await;
    let remote = RemoteDriver::new(&url, SECRET, &f.instance).expect("remote");
    let local = DockerTarget(f);
    conformance::suite(&RemoteTarget { local, remote }).await;
}

#[tokio::test]
async fn what_the_manager_answers_is_what_its_engine_holds() {
    let f = Fixture::new().await;
    let url = manager(&f, &["127.0.0.1/32"]).await;
    let remote = RemoteDriver::new(&url, SECRET, &f.instance).expect("remote");
    let spec = f.spec("split");
    let up = support::running(&remote, &spec).await;
    // The configuration is written on the manager's side.
    let written = f
        .config_root
        .path()
        .join(spec.container_name())
        .join("openclaw.json");
    assert_eq!(
        std::fs::read_to_string(&written).expect("written on the manager's side"),
        support::CONFIG
    );
    // The remote view and the local view agree.
    let local = f
        .driver
        .observe(&spec.runtime_id)
        .await
        .expect("observe")
        .expect("exists");
    assert_eq!(local, up);
    let listed = remote.list().await.expect("list");
    assert_eq!(listed, f.driver.list().await.expect("list"));
    // Workspace sizes cross the wire too, for this installation's volumes only.
    let usage = remote.disk_usage().await.expect("disk usage");
    assert_eq!(
        usage.by_runtime.keys().collect::<Vec<_>>(),
        vec![&spec.runtime_id],
        "{usage:?}"
    );
    assert_eq!(
        usage,
        f.driver.disk_usage().await.expect("local disk usage")
    );
    remote.remove(&spec.runtime_id, true).await.expect("remove");
    assert!(!written.exists(), "configuration removed with the runtime");
    f.teardown(&[spec]).await;
}

#[tokio::test]
async fn the_runtime_manager_refuses_wrong_secrets_strangers_and_other_installations() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    let theirs = other.spec("theirs");
    other.running(&theirs).await;

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

    // Another installation's runtime is invisible: removing or stopping it does nothing,
    // starting it fails, its logs are empty, it is not observed.
    let id = &theirs.runtime_id;
    remote.remove(id, true).await.expect("no-op remove");
    remote
        .set_running(id, false, Duration::from_secs(1))
        .await
        .expect("no-op stop");
    assert!(
        remote
            .set_running(id, true, Duration::from_secs(1))
            .await
            .is_err()
    );
    assert!(remote.logs(id, 10).await.expect("logs").is_empty());
    assert!(remote.observe(id).await.expect("observe").is_none());
    let still = other
        .driver
        .observe(id)
        .await
        .expect("observe")
        .expect("untouched");
    assert!(still.is_up(), "{still:?}");

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
