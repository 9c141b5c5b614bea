//! Scenario 5: every replica restarted in turn (SIGTERM, then started again) while a load
//! generator sends forward-auth'd workspace requests and gateway calls through Traefik at a
//! fixed rate: no request fails, and the runtime is untouched.

use super::cluster::{Cluster, DOMAIN, command};
use super::{runtime_row, until, user_id};
use crate::support::join;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Requests of one kind sent every `every` until `stop`; (answered 200, failures seen).
async fn steady(
    every: Duration,
    stop: Arc<AtomicBool>,
    send: impl Fn() -> reqwest::RequestBuilder,
) -> (usize, Vec<String>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let request = send();
        sent.push(tokio::spawn(async move {
            match request.send().await {
                Ok(res) if res.status() == 200 => Ok(()),
                Ok(res) => Err(format!(
                    "{} {}",
                    res.status(),
                    res.text().await.unwrap_or_default()
                )),
                Err(err) => Err(format!("{err:?}")),
            }
        }));
    }
    let mut ok = 0;
    let mut failed = Vec::new();
    for request in sent {
        match request.await.expect("request task") {
            Ok(()) => ok += 1,
            Err(why) => failed.push(why),
        }
    }
    (ok, failed)
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_rolling_restart_under_load_fails_no_request_and_leaves_runtimes_alone(pool: PgPool) {
    let mut cluster = Cluster::behind_traefik(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    let host = format!("alice.{DOMAIN}");
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let alice = join(
        &admin,
        cluster.browser_via_proxy(&jar, &[DOMAIN, &host]),
        "alice",
    )
    .await;
    command(&alice, "start").await;
    let port = cluster.proxy.as_ref().expect("proxy").port;
    let workspace = format!("http://{host}:{port}/echo");
    let answered = until(
        Duration::from_secs(60),
        "alice's workspace answers through Traefik",
        || async {
            let status = alice
                .client
                .get(&workspace)
                .send()
                .await
                .map(|r| r.status().as_u16());
            (matches!(status, Ok(200)), status.map_err(|e| e.to_string()))
        },
    )
    .await;
    assert_eq!(answered, Ok(200));
    let alice_id = user_id(&pool, "alice").await;
    let container = cluster.containers_of(&alice_id);
    let started =
        |id: &str| clawloops_testkit::inspect("container", id)["State"]["StartedAt"].clone();
    let started_before = started(&container[0]);
    let (status, created) = alice.call("keys/create", &[("name", "load")]).await;
    assert_eq!(status, 200, "{created}");
    let key = created["secret"].as_str().expect("secret").to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(20);
    let auth = tokio::spawn({
        let (client, stop) = (alice.client.clone(), stop.clone());
        async move { steady(every, stop, || client.get(&workspace)).await }
    });
    let gateway = tokio::spawn({
        let (client, stop) = (alice.client.clone(), stop.clone());
        let url = format!("http://{DOMAIN}:{port}/v1/models");
        async move { steady(every, stop, || client.get(&url).bearer_auth(&key)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let began = Instant::now();
    for i in 0..cluster.replicas.len() {
        cluster.signal(i, "TERM");
        let status = cluster.wait_exit(i, Duration::from_secs(30));
        assert!(
            status.success(),
            "replica {i} stopped cleanly: {status}\n{}",
            cluster.log(i)
        );
        cluster.restart(i).await;
        // Traefik's health check (every second) sees it before the next one goes.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (auth_ok, auth_failed) = auth.await.expect("load");
    let (gateway_ok, gateway_failed) = gateway.await.expect("load");
    eprintln!(
        "rolling restart of 3 replicas in {took:?}: forward-auth {auth_ok} ok / {} failed, gateway {gateway_ok} ok / {} failed",
        auth_failed.len(),
        gateway_failed.len()
    );
    assert!(
        auth_failed.is_empty(),
        "forward-auth failures: {auth_failed:?}"
    );
    assert!(
        gateway_failed.is_empty(),
        "gateway failures: {gateway_failed:?}"
    );
    assert!(
        auth_ok > 100 && gateway_ok > 100,
        "the load ran: {auth_ok}, {gateway_ok}"
    );
    // The runtime was not touched.
    assert_eq!(cluster.containers_of(&alice_id), container);
    assert_eq!(
        started(&container[0]),
        started_before,
        "the runtime was not restarted"
    );
    assert_eq!(runtime_row(&pool, "alice").await.1, "running");
}
