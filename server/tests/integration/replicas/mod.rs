//! Three control-plane replicas as separate processes on one PostgreSQL, with faults injected:
//! processes killed, paused past their leases, signing out on one replica while the others
//! decide forward-auth, a replica with the wrong key. Each scenario prints its seed
//! (`REPLICA_SEED` repeats a run) and the figures it measured.

mod cluster;
mod database;
mod proxy;
mod rolling;
mod streams;
mod tools;

use cluster::{Cluster, command};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tools::{Dice, new_key, seed};

/// The latest task of a user: (status, lease owner).
async fn latest_task(pool: &PgPool, user: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT t.status, t.lease_owner FROM runtime_tasks t JOIN users u ON u.id = t.user_id
          WHERE u.username = $1 ORDER BY t.created_at DESC LIMIT 1",
    )
    .bind(user)
    .fetch_optional(pool)
    .await
    .expect("task")
}

/// (desired, observed, crash count) of a user's runtime.
async fn runtime_row(pool: &PgPool, user: &str) -> (String, String, i32) {
    sqlx::query_as(
        "SELECT desired_state, observed_state, crash_count FROM runtimes WHERE username = $1",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .expect("runtime")
}

async fn user_id(pool: &PgPool, user: &str) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE username = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .expect("user")
        .to_string()
}

/// Waits until `check` holds, or fails with `what` and the last value seen.
async fn until<T: std::fmt::Debug, F: std::future::Future<Output = (bool, T)>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let (done, seen) = check().await;
        if done {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: still {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scenario 7: a replica started with another key refuses to start, and says why.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_replica_with_another_key_refuses_to_start(pool: PgPool) {
    let mut cluster = Cluster::start(pool.clone(), 2).await;
    cluster.launch_with_key(1, &new_key());
    let status = cluster.wait_exit(1, Duration::from_secs(60));
    assert!(!status.success(), "the replica with another key ran");
    let log = cluster.log(1);
    assert!(
        log.contains("is not the installation's key"),
        "the refusal names the problem: {log}"
    );
    // The other replica is untouched and still serves.
    cluster.wait_ready(0).await;
}

/// Scenario 2, three rounds: the leader killed; another replica leads within the leader lease,
/// and a runtime that crashed in the gap is recovered once and counted once.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn when_the_leader_dies_another_leads_and_a_crash_in_the_gap_counts_once(pool: PgPool) {
    let mut dice = Dice::new(seed());
    let mut cluster = Cluster::start(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    let (alice, _jar) = cluster.user(&admin, "alice", dice.pick(3)).await;
    command(&alice, "start").await;
    until(
        Duration::from_secs(60),
        "alice's runtime running",
        || async {
            let row = runtime_row(&pool, "alice").await;
            (row.1 == "running", row)
        },
    )
    .await;
    let alice_id = user_id(&pool, "alice").await;
    let rounds = 3;
    for round in 1..=rounds {
        let before = cluster.containers_of(&alice_id);
        assert_eq!(before.len(), 1, "{before:?}");

        let leader = cluster.leader(Duration::from_secs(30)).await;
        cluster.kill(leader);
        let killed = Instant::now();
        // The runtime crashes while no one leads.
        let (ok, out) = clawloops_testkit::docker(&["kill", &before[0]]);
        assert!(ok, "{out}");
        let next = cluster.leader(Duration::from_secs(30)).await;
        let failover = killed.elapsed();
        eprintln!(
            "round {round}: failover: replica {leader} killed, replica {next} leads after {failover:?}"
        );
        assert_ne!(next, leader);
        // The overview page's replica list says so too.
        let next_pid = cluster.replicas[next].pid().expect("running").to_string();
        let on_next = cluster.browser_on(next, &admin.jar);
        until(
            Duration::from_secs(15),
            "the status lists the new leader",
            || async {
                let (_, body) = on_next.call("admin/status", &[]).await;
                let leaders: Vec<String> = body["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["leader"] == true)
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect();
                let right =
                    leaders.len() == 1 && leaders[0].rsplit('-').nth(1) == Some(next_pid.as_str());
                (right, leaders)
            },
        )
        .await;
        assert!(
            failover < Duration::from_secs(cluster::LEADER_LEASE_SECS + 3),
            "another replica leads within the lease: {failover:?}"
        );

        let row = until(
            Duration::from_secs(60),
            "alice's runtime recovered",
            || async {
                let row = runtime_row(&pool, "alice").await;
                let containers = cluster.containers_of(&alice_id);
                let running = row.1 == "running" && containers.len() == 1 && containers != before;
                (running, (row, containers))
            },
        )
        .await;
        assert_eq!(row.0.2, round, "each crash is counted once: {row:?}");
        // Three replicas again for the next round.
        cluster.restart(leader).await;
    }
    // A while later, still once each: no other pass counts one again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(runtime_row(&pool, "alice").await.2, rounds);
}

/// Scenario 3, two rounds: the worker holding a start is paused past its lease; another
/// replica takes the task over and finishes it; the paused one, resumed, writes nothing more.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_worker_paused_past_its_lease_writes_nothing_when_it_resumes(pool: PgPool) {
    let mut dice = Dice::new(seed());
    let cluster = Cluster::start(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    for round in 0..2 {
        let name = format!("bob{round}");
        let (bob, _jar) = cluster.user(&admin, &name, dice.pick(3)).await;
        command(&bob, "start").await;
        // The moment a worker claims the start, its replica is paused.
        let owner = until(Duration::from_secs(30), "the start claimed", || async {
            let task = latest_task(&pool, &name).await;
            let owner = task.as_ref().and_then(|(_, o)| o.clone());
            (owner.is_some(), owner)
        })
        .await
        .expect("owner");
        let paused = cluster
            .replica_of_worker(&owner)
            .expect("the owner is one of ours");
        let gave_up_before = cluster.log(paused).matches("lost the task's lease").count();
        cluster.signal(paused, "STOP");
        let stopped = Instant::now();
        let (status, new_owner) = until(
            Duration::from_secs(60),
            "the task taken over and done",
            || async {
                let task = latest_task(&pool, &name).await.expect("task");
                (
                    task.0 == "succeeded" && task.1.as_deref() != Some(&owner),
                    task,
                )
            },
        )
        .await;
        eprintln!(
            "round {round}: replica {paused} paused, the task taken over and finished {:?} later",
            stopped.elapsed()
        );
        cluster.signal(paused, "CONT");
        // The resumed worker notices and gives up; the outcome stays the new owner's.
        until(
            Duration::from_secs(30),
            "the resumed worker gives up",
            || async {
                let gave_up = cluster.log(paused).matches("lost the task's lease").count();
                (gave_up > gave_up_before, gave_up)
            },
        )
        .await;
        let task = latest_task(&pool, &name).await.expect("task");
        assert_eq!(task, (status, new_owner));
        let bob_id = user_id(&pool, &name).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(cluster.containers_of(&bob_id).len(), 1);
        assert_eq!(runtime_row(&pool, &name).await.1, "running");
    }
}

/// Scenario 4: signing out on one replica; forward-auth on the others refuses at once.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn signing_out_on_one_replica_is_refused_by_the_others_within_half_a_second(pool: PgPool) {
    let seed = seed();
    let mut dice = Dice::new(seed);
    let cluster = Cluster::start(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    // Bad input gets the same clear 4xx on every replica.
    for i in 0..3 {
        let on = cluster.browser_on(i, &admin.jar);
        let (status, body) = on
            .try_invite(&[("form[username]", "no spaces allowed")])
            .await;
        assert_eq!(status, 422, "replica {i}: {body}");
        assert_eq!(body["field"], "username", "replica {i}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    for round in 0..5 {
        let name = format!("carol{round}");
        let on = dice.pick(3);
        let (carol, jar) = cluster.user(&admin, &name, on).await;
        let session = carol.session_cookie().expect("session");
        let check = |i: usize| {
            reqwest::Client::new()
                .get(format!(
                    "http://{}:{}/internal/entry/auth",
                    cluster.ip, cluster.replicas[i].port
                ))
                .header("x-forwarded-host", format!("{name}.{}", cluster::DOMAIN))
                .header("cookie", format!("clawloops_session={session}"))
                .header("accept", "application/json")
                .send()
        };
        let others: Vec<usize> = (0..3).filter(|i| *i != on).collect();
        // Signed in, without a runtime: every replica knows the session.
        for &i in &others {
            assert_eq!(check(i).await.expect("check").status(), 409);
        }
        let signed_out = cluster.browser_on(on, &jar);
        let (status, body) = signed_out.call("auth/logout", &[]).await;
        assert_eq!(status, 200, "{body}");
        let at = Instant::now();
        for &i in &others {
            loop {
                let status = check(i).await.expect("check").status();
                if status == 401 {
                    break;
                }
                assert!(
                    at.elapsed() < Duration::from_millis(500),
                    "replica {i} still lets the session in ({status}) after {:?}",
                    at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        eprintln!(
            "round {round}: signed out on {on}, refused everywhere after {:?}",
            at.elapsed()
        );
    }
}

/// Scenario 1: ten users start (then stop) at once while a random replica is killed; after
/// each round every runtime is as wanted with exactly one container (none when stopped), no
/// task is left unfinished, and nothing is orphaned.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn replicas_killed_mid_start_leave_one_container_per_user(pool: PgPool) {
    let seed = seed();
    let mut dice = Dice::new(seed);
    let mut cluster = Cluster::start(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    let mut users = Vec::new();
    for n in 0..10 {
        let name = format!("user{n}");
        let (browser, jar) = cluster.user(&admin, &name, n % 3).await;
        let id = user_id(&pool, &name).await;
        users.push((name, id, browser, jar));
    }
    let rounds = 10;
    for round in 0..rounds {
        let want = if round % 2 == 0 { "start" } else { "stop" };
        let victim = dice.pick(3);
        let delay = Duration::from_millis(dice.below(800));
        let mut asks = Vec::new();
        for (n, (_, _, _, jar)) in users.iter().enumerate() {
            // Each user asks a replica that stays alive.
            let on = (victim + 1 + n % 2) % 3;
            let browser = cluster.browser_on(on, jar);
            asks.push(tokio::spawn(async move { command(&browser, want).await }));
        }
        tokio::time::sleep(delay).await;
        cluster.kill(victim);
        for ask in asks {
            ask.await.expect("asked");
        }
        cluster.restart(victim).await;
        let observed = if want == "start" {
            "running"
        } else {
            "stopped"
        };
        for (name, id, _, _) in &users {
            let seen = until(
                Duration::from_secs(90),
                &format!("round {round}: {name} {observed}"),
                || async {
                    let row = runtime_row(&pool, name).await;
                    let task = latest_task(&pool, name).await;
                    let containers = cluster.containers_of(id);
                    let settled =
                        row.1 == observed && task.as_ref().is_some_and(|t| t.0 == "succeeded");
                    (settled, (row, task, containers))
                },
            )
            .await;
            assert_eq!(
                seen.2.len(),
                1,
                "round {round}: {name} has one container: {seen:?}"
            );
        }
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtime_tasks WHERE status IN ('queued', 'running')",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(unfinished, 0, "round {round}: tasks left unfinished");
        let all = clawloops_testkit::labelled(&["ps", "-a", "-q"], &cluster.instance, None);
        assert_eq!(all.len(), users.len(), "round {round}: no orphans: {all:?}");
        eprintln!("round {round} ({want}, replica {victim} killed after {delay:?}): settled");
    }
}
