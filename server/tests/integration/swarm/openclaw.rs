//! A real OpenClaw on a swarm node: its configuration arrives as a Swarm secret, it answers
//! only its owner through Traefik on another node, and an agent turn reaches the model gateway
//! back through the entry proxy (its overlay network has no other way out).

use super::*;
use crate::entry::{PROVIDER_KEY, register_model};

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_real_openclaw_on_the_swarm_answers_its_owner_and_reaches_models(pool: PgPool) {
    let entry = Entry::start_swarm(pool.clone(), true).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    let bob = entry.user(&admin, "bob").await;
    let provider = crate::support::upstream::start(Some(PROVIDER_KEY)).await;
    register_model(&admin, &provider.base_url()).await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(240))
        .await;
    let res = alice
        .client
        .post(entry.url("alice", "/v1/chat/completions"))
        .json(&serde_json::json!({"model": "openclaw", "messages": [{"role": "user", "content": "Say hello"}]}))
        .timeout(Duration::from_secs(180))
        .send()
        .await
        .expect("agent turn");
    let status = res.status();
    let body = res.text().await.expect("body");
    assert_eq!(status, 200, "agent turn: {body}");
    assert!(
        body.contains("Hello there"),
        "the provider's words came back: {body}"
    );
    let res = bob
        .client
        .get(entry.url("alice", "/"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403, "another user on alice's workspace");
    // Delivered as a secret readable by the runtime's user only, not as a file on a disk.
    let node: String = sqlx::query_scalar("SELECT node FROM runtimes WHERE username = 'alice'")
        .fetch_one(&pool)
        .await
        .expect("node");
    let swarm = entry.on_swarm();
    let filter = format!("label=org.clawloops.instance={}", entry.instance);
    let (_, secrets) = swarm.docker(ENTRY_NODE, &["secret", "ls", "-q", "--filter", &filter]);
    assert_eq!(
        secrets.lines().count(),
        1,
        "one configuration secret: {secrets}"
    );
    let (_, id) = swarm.docker(
        &node,
        &[
            "ps",
            "-q",
            "--filter",
            "label=org.clawloops.runtime=rt-alice",
            "--filter",
            &filter,
        ],
    );
    let (_, mounts) = swarm.docker(&node, &["inspect", "-f", "{{json .Mounts}}", id.trim()]);
    assert!(
        !mounts.contains("\"Type\":\"bind\""),
        "no bind mount: {mounts}"
    );
    entry.finish();
}
