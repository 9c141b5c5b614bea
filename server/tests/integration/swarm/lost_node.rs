//! A worker node's engine killed: its runtimes' cards say they wait for their node (not a
//! crash); an admin moves one of them to another node (a fresh workspace) while the node is
//! down; once the node is back the other runs there again, with nothing duplicated.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_lost_worker_shows_its_runtimes_waiting_and_brings_them_back(pool: PgPool) {
    let entry = Entry::start_swarm(pool.clone(), false).await;
    let admin = entry.admin().await;
    // Six runtimes over three nodes.
    let mut users = Vec::new();
    for i in 0..6 {
        let user = entry.user(&admin, &format!("user{i}")).await;
        request_start(&user).await;
        users.push(user);
    }
    for (i, user) in users.iter().enumerate() {
        entry
            .start_runtime(user, &format!("user{i}"), Duration::from_secs(120))
            .await;
    }
    let nodes = nodes_of(&pool).await;
    // The worker with the most runtimes (six over three nodes: at least two on one).
    let on = |node: &str| -> Vec<usize> {
        (0..users.len())
            .filter(|i| nodes[*i].1.as_deref() == Some(node))
            .collect()
    };
    let node = ["clsw-w1", "clsw-w2"]
        .into_iter()
        .max_by_key(|n| on(n).len())
        .expect("workers")
        .to_owned();
    let on_node = on(&node);
    assert!(on_node.len() >= 2, "two runtimes on {node}: {nodes:?}");
    let (stays, moves) = (on_node[0], on_node[1]);
    let swarm = entry.on_swarm().clone();
    swarm.script("kill", &[&node]);
    for &i in &on_node {
        let waiting = card_until(
            &users[i],
            "waiting for its node",
            Duration::from_secs(60),
            |card| card["problem"]["code"] == "NODE_DOWN",
        )
        .await;
        let words = waiting["problem"]["message"].as_str().unwrap_or_default();
        assert!(
            words.contains("machine that holds your workspace"),
            "{waiting}"
        );
    }
    // The others carry on.
    for i in (0..users.len()).filter(|i| !on_node.contains(i)) {
        let res = users[i]
            .client
            .get(entry.url(&format!("user{i}"), "/healthz"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "user{i} while {node} is down");
    }

    // An admin moves one of them while its node is down: it starts elsewhere.
    let moved_id = admin.user_id(&format!("user{moves}")).await;
    let (status, body) = admin
        .call(
            "admin/runtimes/command",
            &[("user_id", moved_id.as_str()), ("command", "move_node")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    card_until(
        &users[moves],
        "running elsewhere",
        Duration::from_secs(120),
        |card| card["observed"] == "running" && card["problem"].is_null(),
    )
    .await;
    let now: Option<String> = sqlx::query_scalar("SELECT node FROM runtimes WHERE username = $1")
        .bind(format!("user{moves}"))
        .fetch_one(&pool)
        .await
        .expect("node");
    assert!(
        now.is_some() && now.as_deref() != Some(node.as_str()),
        "moved off {node}: {now:?}"
    );
    // Its owner may not move it: where runtimes run is for admins.
    let (status, _) = users[stays]
        .call("runtime/command", &[("command", "move_node")])
        .await;
    assert_eq!(status, 403);

    swarm.script("revive", &[&node]);
    let name = format!("user{stays}");
    card_until(
        &users[stays],
        "running again",
        Duration::from_secs(120),
        |card| card["observed"] == "running" && card["problem"].is_null(),
    )
    .await;
    // Routed again at Traefik's next poll, to the new task's address.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = users[stays]
            .client
            .get(entry.url(&name, "/echo"))
            .send()
            .await
            .expect("request");
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s workspace after its node came back: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let crashes: i32 = sqlx::query_scalar("SELECT crash_count FROM runtimes WHERE username = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .expect("crash count");
    assert_eq!(crashes, 0, "waiting for a node is not a crash");
    assert_eq!(entry.services().len(), 6, "one service per user");
    let filter = format!("label=org.clawloops.instance={}", entry.instance);
    // The moved runtime's old container goes once its node hears that its service is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, running) = swarm.docker(
            &node,
            &[
                "ps",
                "--format",
                "{{.Label \"org.clawloops.runtime\"}}",
                "--filter",
                &filter,
            ],
        );
        let mut here: Vec<String> = running.lines().map(str::to_owned).collect();
        here.sort_unstable();
        let mut expected: Vec<String> = on_node
            .iter()
            .filter(|i| **i != moves)
            .map(|i| format!("rt-user{i}"))
            .collect();
        expected.sort_unstable();
        if here == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only what stayed runs on {node}, once: {here:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let back: Option<String> = sqlx::query_scalar("SELECT node FROM runtimes WHERE username = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .expect("node");
    assert_eq!(back.as_deref(), Some(node.as_str()), "back on its own node");
    entry.finish();
}
