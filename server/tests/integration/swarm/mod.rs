//! The control plane with runtimes on a real three-node Docker Swarm (docs/swarm.md): users'
//! runtimes spread over the nodes behind Traefik with forward-auth, a real OpenClaw answering
//! its owner, a worker node lost and back, the control plane restarted mid-start, and the
//! lockdown probed from inside a runtime on a worker node. One at a time (the `swarm` test
//! group): they share one swarm, and one of them kills a node's engine.

#![cfg(test)]

use crate::support::entry::{Entry, json_of};
use crate::support::swarm::ENTRY_NODE;
use crate::support::{Browser, TestServer, card_until};
use sqlx::PgPool;
use std::time::{Duration, Instant};

mod lost_node;
mod openclaw;
mod restart;

/// Each user's runtime node, by username.
async fn nodes_of(pool: &PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT username, node FROM runtimes ORDER BY username")
        .fetch_all(pool)
        .await
        .expect("runtimes")
}

/// Asks for the runtime to start.
async fn request_start(browser: &Browser) {
    let (status, card) = browser
        .call("runtime/command", &[("command", "start")])
        .await;
    assert_eq!(status, 200, "{card}");
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn ten_users_spread_over_the_nodes_each_reachable_only_by_its_owner(pool: PgPool) {
    let entry = Entry::start_swarm(pool.clone(), false).await;
    let admin = entry.admin().await;
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(entry.user(&admin, &format!("user{i}")).await);
    }
    for user in &users {
        request_start(user).await;
    }
    for (i, user) in users.iter().enumerate() {
        entry
            .start_runtime(user, &format!("user{i}"), Duration::from_secs(120))
            .await;
    }
    let nodes = nodes_of(&pool).await;
    let mut distinct: Vec<_> = nodes.iter().filter_map(|(_, n)| n.clone()).collect();
    assert_eq!(distinct.len(), 10, "every runtime has its node: {nodes:?}");
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "spread over the three nodes: {nodes:?}");
    assert_eq!(entry.services().len(), 10, "one service per user");

    // Each workspace answers its owner, with the owner's identity, and refuses the others.
    for (i, user) in users.iter().enumerate() {
        let host = format!("user{i}");
        let res = user
            .client
            .get(entry.url(&host, "/echo"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{host}");
        let echo = json_of(res).await;
        assert_eq!(
            echo["headers"]["x-forwarded-user"],
            serde_json::json!([host])
        );
        let other = &users[(i + 1) % users.len()];
        let res = other
            .client
            .get(entry.url(&host, "/echo"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "another user on {host}");
    }

    // The lockdown, from inside a runtime on a worker node: not the control plane, the
    // registry, the manager, the published entry port or another runtime; only the entry
    // proxy on its own network.
    let (name, node) = nodes
        .iter()
        .find(|(_, n)| n.as_deref() != Some(ENTRY_NODE))
        .cloned()
        .expect("a runtime on a worker");
    let other_endpoint: String = sqlx::query_scalar(
        "SELECT internal_endpoint FROM runtimes WHERE username <> $1 AND internal_endpoint IS NOT NULL LIMIT 1",
    )
    .bind(&name)
    .fetch_one(&pool)
    .await
    .expect("another runtime's address");
    let swarm = entry.on_swarm();
    let runtime_id = format!("rt-{name}");
    let entry_ip = entry_address_on(&entry, &runtime_id);
    let forbidden = vec![
        format!("{}:{}", swarm.bridge_ip, entry.server.addr.port()),
        format!("{}:5000", swarm.bridge_ip),
        "10.231.0.11:2377".to_owned(),
        format!("10.231.0.11:{}", entry.port),
        other_endpoint.trim_start_matches("http://").to_owned(),
    ];
    let mut targets = forbidden.clone();
    targets.push(format!("http://{entry_ip}:8000/"));
    let (probed_on, outcomes) = entry.probe_on_swarm(&runtime_id, &targets);
    assert_eq!(Some(probed_on.as_str()), node.as_deref());
    assert_eq!(outcomes.len(), targets.len(), "{outcomes:?}");
    for (target, outcome) in forbidden.iter().zip(&outcomes) {
        assert!(
            !outcome.contains("connected") && !outcome.contains("http "),
            "a runtime on {probed_on} reached {target}: {outcome}"
        );
    }
    assert!(
        outcomes[forbidden.len()].contains("http "),
        "the runtime reaches the entry proxy: {outcomes:?}"
    );
    entry.finish();
}

/// The entry proxy's address on a runtime's network.
fn entry_address_on(entry: &Entry, runtime_id: &str) -> String {
    let (ok, out) = entry.on_swarm().docker(
        ENTRY_NODE,
        &[
            "inspect",
            "-f",
            "{{range $name, $net := .NetworkSettings.Networks}}{{$name}} {{$net.IPAddress}}\n{{end}}",
            &entry.proxy,
        ],
    );
    assert!(ok, "{out}");
    out.lines()
        .find(|l| l.contains(&format!("-{runtime_id}-net ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or_else(
            || panic!("the entry proxy is not on {runtime_id}'s network: {out}"),
            str::to_owned,
        )
}
