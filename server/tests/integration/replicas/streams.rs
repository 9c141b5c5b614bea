//! Model streams in flight when a replica is told to stop: within the shutdown grace they run
//! to their end; past it they end with an error event their client can read, never with a cut
//! connection.

use super::cluster::Cluster;
use reqwest::StatusCode;
use sqlx::PgPool;
use std::time::Duration;

const SECRET: &str = "sk-upstream-secret-for-streams";

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn streams_at_shutdown_finish_within_the_grace_and_end_with_an_error_event_after_it(
    pool: PgPool,
) {
    let mut cluster = Cluster::start(pool.clone(), 2).await;
    // Replica 0 keeps the cluster's 10 s grace; replica 1 has 1 s (after its 2 s delay).
    cluster
        .restart_with(1, &[("CLAWLOOPS_SHUTDOWN_GRACE_SECS", "1")])
        .await;
    let admin = cluster.admin().await;
    let upstream = clawloops_testkit::upstream::start(Some(SECRET)).await;
    let (status, credential) = admin
        .call(
            "admin/credentials/add",
            &[
                ("name", "fake provider"),
                ("secret", SECRET),
                ("verify_url", &upstream.base_url()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    let base_url = upstream.base_url();
    let credential = credential["id"].as_str().expect("id");
    let (status, model) = admin
        .call(
            "admin/models/save",
            &[
                ("form[alias]", "slow"),
                ("form[upstream_model]", "slow"),
                ("form[upstream_kind]", "openai-compatible"),
                ("form[base_url]", &base_url),
                ("form[credential_id]", credential),
                ("form[enabled]", "true"),
                ("form[visibility]", "everyone"),
                ("form[price_input]", "0"),
                ("form[price_output]", "0"),
                ("form[is_default]", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{model}");
    let (alice, _jar) = cluster.user(&admin, "alice", 0).await;
    let (status, created) = alice.call("keys/create", &[("name", "streams")]).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let key = created["secret"].as_str().expect("secret").to_owned();

    // A 5 s stream on each replica; then both are told to stop.
    let client = reqwest::Client::new();
    let mut streams = Vec::new();
    for replica in &cluster.replicas {
        let res = client
            .post(format!(
                "http://{}:{}/v1/chat/completions",
                cluster.ip, replica.port
            ))
            .bearer_auth(&key)
            .json(&serde_json::json!({
                "model": "slow",
                "stream": true,
                "messages": [{"role": "user", "content": "take your time"}],
            }))
            .send()
            .await
            .expect("stream started");
        assert_eq!(res.status(), StatusCode::OK);
        streams.push(tokio::spawn(async move { res.text().await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.signal(0, "TERM");
    cluster.signal(1, "TERM");
    let mut bodies = Vec::new();
    for stream in streams {
        bodies.push(
            stream
                .await
                .expect("task")
                .expect("the stream ended properly, not cut"),
        );
    }
    // Within the grace: the whole answer.
    assert!(bodies[0].contains("t99"), "the whole answer: {}", bodies[0]);
    assert!(!bodies[0].contains("server_shutting_down"), "{}", bodies[0]);
    // Past it: what came so far, then an error event and the end of the stream.
    assert!(!bodies[1].contains("t99"), "{}", bodies[1]);
    assert!(bodies[1].contains("t0"), "{}", bodies[1]);
    assert!(
        bodies[1].contains("\"code\":\"server_shutting_down\"")
            && bodies[1].trim_end().ends_with("data: [DONE]"),
        "an error event, then the end: {}",
        bodies[1]
    );
    for i in 0..2 {
        let status = cluster.wait_exit(i, Duration::from_secs(30));
        assert!(status.success(), "replica {i} stopped cleanly: {status}");
    }
}
