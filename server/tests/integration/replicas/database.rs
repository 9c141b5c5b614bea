//! Scenario 6: PostgreSQL stopped for 10 s under three replicas: readiness answers 503 on
//! every replica meanwhile, and every replica recovers by itself once it is back, with no row
//! lost or made twice.

use super::cluster::{Cluster, command};
use super::{latest_task, runtime_row, until, user_id};
use std::path::Path;
use std::time::{Duration, Instant};

/// `clawloops db up|down` for the private cluster in `dir`; `up` prints its URL.
fn db(dir: &Path, action: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawloops"))
        .args(["db", action])
        .env("CLAWLOOPS_DATA_DIR", dir)
        .env_remove("CLAWLOOPS_DATABASE_URL")
        .env_remove("CLAWLOOPS_CONFIG")
        .output()
        .expect("clawloops db");
    assert!(
        out.status.success(),
        "db {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Stops the private cluster when the test ends, however it ends.
struct Private(tempfile::TempDir);

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_clawloops"))
            .args(["db", "down"])
            .env("CLAWLOOPS_DATA_DIR", self.0.path())
            .output();
    }
}

/// (replica, readiness status) of every replica.
async fn readiness(cluster: &Cluster) -> Vec<u16> {
    let mut seen = Vec::new();
    for replica in &cluster.replicas {
        let url = format!("http://{}:{}/readyz", cluster.ip, replica.port);
        let status = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        seen.push(status);
    }
    seen
}

#[tokio::test]
async fn every_replica_rides_out_a_database_restart_by_itself() {
    // Its own PostgreSQL (the shared test cluster must not be stopped), made readable by the
    // `postgres` user it runs as.
    let private = Private(tempfile::tempdir().expect("tempdir"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(private.0.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let url = db(private.0.path(), "up");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(&url)
        .await
        .expect("connect");
    clawloops_server::database::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate");
    let cluster = Cluster::start(pool.clone(), 3).await;
    let admin = cluster.admin().await;
    let mut users = Vec::new();
    for n in 0..3 {
        let name = format!("before{n}");
        let (browser, _) = cluster.user(&admin, &name, n).await;
        command(&browser, "start").await;
        users.push(name);
    }
    for name in &users {
        until(
            Duration::from_secs(60),
            &format!("{name} running"),
            || async {
                let row = runtime_row(&pool, name).await;
                (row.1 == "running", row)
            },
        )
        .await;
    }

    db(private.0.path(), "down");
    let down = Instant::now();
    until(Duration::from_secs(10), "every replica unready", || async {
        let seen = readiness(&cluster).await;
        (seen.iter().all(|s| *s == 503), seen)
    })
    .await;
    eprintln!(
        "every replica answered 503 {:?} after the database stopped",
        down.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    db(private.0.path(), "up");
    let up = Instant::now();
    until(
        Duration::from_secs(30),
        "every replica ready again",
        || async {
            let seen = readiness(&cluster).await;
            (seen.iter().all(|s| *s == 200), seen)
        },
    )
    .await;
    eprintln!(
        "every replica ready {:?} after the database came back",
        up.elapsed()
    );
    cluster.leader(Duration::from_secs(30)).await;

    // Everything from before is there once, and new work is done once, on every replica.
    for (n, name) in users.iter().enumerate() {
        assert_eq!(runtime_row(&pool, name).await.1, "running", "{name}");
        let id = user_id(&pool, name).await;
        assert_eq!(cluster.containers_of(&id).len(), 1, "{name}");
        let after = format!("after{n}");
        let (browser, _) = cluster.user(&admin, &after, n).await;
        command(&browser, "start").await;
        until(
            Duration::from_secs(60),
            &format!("{after} running"),
            || async {
                let row = runtime_row(&pool, &after).await;
                (row.1 == "running", row)
            },
        )
        .await;
        assert_eq!(
            latest_task(&pool, &after).await.map(|t| t.0).as_deref(),
            Some("succeeded")
        );
    }
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM runtimes),
                (SELECT count(*) FROM runtime_tasks)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    // Users: the six, `root` and the `admin` the first replica seeded.
    assert_eq!(counts, (8, 6, 6), "users, runtimes, tasks");
}
