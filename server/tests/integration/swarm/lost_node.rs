//! A worker node's engine killed: its runtime's card says it waits for its node (not a
//! crash), and once the node is back the runtime runs there again, with nothing duplicated.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_lost_worker_shows_its_runtimes_waiting_and_brings_them_back(pool: PgPool) {
    let entry = Entry::start_swarm(pool.clone(), false).await;
    let admin = entry.admin().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let name = format!("user{i}");
        let user = entry.user(&admin, &name).await;
        entry
            .start_runtime(&user, &name, Duration::from_secs(120))
            .await;
        users.push(user);
    }
    let nodes = nodes_of(&pool).await;
    let (index, node) = nodes
        .iter()
        .enumerate()
        .find_map(|(i, (_, n))| n.clone().filter(|n| n != ENTRY_NODE).map(|n| (i, n)))
        .expect("a runtime on a worker");
    let (name, user) = (format!("user{index}"), &users[index]);
    let swarm = entry.on_swarm().clone();
    swarm.script("kill", &[&node]);
    let waiting = card_until(
        user,
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
    // The others carry on.
    for (i, other) in users.iter().enumerate().filter(|(i, _)| *i != index) {
        let res = other
            .client
            .get(entry.url(&format!("user{i}"), "/healthz"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "user{i} while {node} is down");
    }
    swarm.script("revive", &[&node]);
    card_until(user, "running again", Duration::from_secs(120), |card| {
        card["observed"] == "running" && card["problem"].is_null()
    })
    .await;
    // Routed again at Traefik's next poll, to the new task's address.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = user
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
    assert_eq!(entry.services().len(), 3, "one service per user");
    let filter = format!("label=org.clawloops.runtime=rt-{name}");
    let (_, running) = swarm.docker(&node, &["ps", "-q", "--filter", &filter]);
    assert_eq!(
        running.lines().count(),
        1,
        "one container on {node}: {running}"
    );
    let back: Option<String> = sqlx::query_scalar("SELECT node FROM runtimes WHERE username = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .expect("node");
    assert_eq!(back.as_deref(), Some(node.as_str()), "back on its own node");
    entry.finish();
}
