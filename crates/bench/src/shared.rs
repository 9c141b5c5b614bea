//! Helpers both benchmark programs use.

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgPool};
use tokio::process::Command;
use uuid::Uuid;

/// What every load benchmark needs: a PostgreSQL for its scratch database, and oha.
#[derive(Debug, clap::Args)]
pub struct BenchEnv {
    /// PostgreSQL to create the scratch database in.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The oha binary (../shared/bench/setup-tools.sh installs it).
    #[arg(
        long,
        env = "OHA",
        default_value = "/tmp/clawloops-bench/tools/bin/oha"
    )]
    pub oha: std::path::PathBuf,
}

/// A fresh database (migrated) and the future that drops it.
pub async fn scratch_database(
    url: &str,
) -> Result<(PgPool, impl std::future::Future<Output = Result<()>>)> {
    let name = format!("clawloops_bench_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(60)
        .connect_with(options.database(&name))
        .await?;
    sqlx::migrate!("../../migrations").run(&pool).await?;
    let drop = async move {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        Ok(())
    };
    Ok((pool, drop))
}

/// Runs the docker CLI; its output, or an error with what it said.
pub async fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker").args(args).output().await?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes the containers, networks and volumes labelled `label=value` (best effort).
pub async fn remove_labelled(label: &str, value: &str) {
    let filter = format!("label={label}={value}");
    for (ls, rm) in [
        (
            ["ps", "-aq", "--filter"].as_slice(),
            ["rm", "-f"].as_slice(),
        ),
        (&["network", "ls", "-q", "--filter"], &["network", "rm"]),
        (&["volume", "ls", "-q", "--filter"], &["volume", "rm", "-f"]),
    ] {
        let mut list = ls.to_vec();
        list.push(&filter);
        let Ok(ids) = docker(&list).await else {
            continue;
        };
        let ids: Vec<&str> = ids.lines().collect();
        if !ids.is_empty() {
            let mut args = rm.to_vec();
            args.extend(ids);
            let _ = docker(&args).await;
        }
    }
}

/// A control plane served in this process (the benchmarks measure it without a second binary).
pub struct InProcess {
    pub state: clawloops_server::http::ServerState,
    background: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Serves `settings` with `pool` on `listener`, background work included.
    pub async fn start(
        settings: &clawloops_server::settings::Settings,
        pool: PgPool,
        listener: tokio::net::TcpListener,
    ) -> Result<InProcess> {
        use clawloops_server::{http, serve};
        let instance = serve::instance_id(&pool).await?;
        let state = serve::server_state(settings, pool, instance).await?;
        let background = serve::spawn_background(&state);
        let router = http::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(InProcess {
            state,
            background,
            server,
        })
    }

    /// Stops serving and the background work.
    pub fn stop(self) {
        for task in self.background {
            task.abort();
        }
        self.server.abort();
    }
}

/// The benchmarks' user `bench` (an admin) with `password`.
pub async fn bench_user(pool: &PgPool, password: &str) -> Result<()> {
    app::ssr::identity::bootstrap::create_admin(
        pool,
        "bench",
        app::ssr::identity::bootstrap::InitialPassword::Given(password.into()),
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The session id a sign-in answer sets, if any.
pub fn session_of(answer: &reqwest::Response) -> Option<String> {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("clawloops_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}
