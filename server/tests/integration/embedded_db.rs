//! The private PostgreSQL cluster: created on first use, reused (with its data) after a stop.

use clawloops_server::{embedded_db::EmbeddedPostgres, settings::Settings};
use sqlx::{ConnectOptions, Connection};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn the_cluster_is_created_once_and_keeps_its_data_across_restarts() {
    let dir = tempfile::Builder::new()
        .prefix("clembed")
        .tempdir()
        .expect("tempdir");
    // As root the cluster runs as `postgres`, which must be able to traverse to it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let mut settings = Settings::load(None).expect("settings");
    settings.data_dir = dir.path().join("data");
    let cluster = EmbeddedPostgres::locate(&settings).expect("binaries found");

    // Whatever happens, leave no server running behind.
    let outcome = exercise(&cluster).await;
    let stopped = cluster.stop().await;
    outcome.expect("the cluster behaves");
    stopped.expect("final stop");
}

async fn exercise(cluster: &EmbeddedPostgres) -> anyhow::Result<()> {
    anyhow::ensure!(cluster.ensure_running().await?, "first call starts it");
    anyhow::ensure!(cluster.dir().join("PG_VERSION").exists(), "initdb ran");
    anyhow::ensure!(
        !cluster.ensure_running().await?,
        "second call finds it running and reuses it"
    );

    let mut conn = cluster.connect_options().connect().await?;
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    cluster.stop().await?;
    anyhow::ensure!(
        cluster.connect_options().connect().await.is_err(),
        "stopped means unreachable"
    );

    anyhow::ensure!(cluster.ensure_running().await?, "restarted");
    let mut conn = cluster.connect_options().connect().await?;
    let kept: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(kept == "survives", "data kept across restarts, got {kept}");
    conn.close().await?;

    // Nothing listens on TCP: the socket file in the cluster directory is the only way in.
    let conf = std::fs::read_to_string(cluster.dir().join("clawloops.conf"))?;
    anyhow::ensure!(conf.contains("listen_addresses = ''"), "{conf}");
    Ok(())
}
