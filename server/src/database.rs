//! Opening the database (embedded or external) and applying migrations.

use crate::embedded_db::EmbeddedPostgres;
use crate::settings::Settings;
use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

/// The schema migrations in the repository's `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a pooled connection before the database counts as down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long start-up waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open, migrated database, and the embedded cluster behind it when there is one.
pub struct Database {
    /// The connection pool.
    pub pool: PgPool,
    /// The embedded cluster, when this process started it (and so stops it on close).
    owned_cluster: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured database, or starts the embedded one, then migrates.
    pub async fn open(settings: &Settings) -> anyhow::Result<Database> {
        let (options, where_, owned_cluster) = match &settings.database_url {
            Some(url) => {
                let options: PgConnectOptions = url
                    .expose_secret()
                    .parse()
                    .context("the setting `database_url` is not a valid PostgreSQL URL")?;
                let shown = settings.database_url_redacted().unwrap_or_default();
                (options, shown, None)
            }
            None => {
                let cluster = EmbeddedPostgres::locate(settings)?;
                let started = cluster.ensure_running().await?;
                let shown = format!("the embedded PostgreSQL in {}", cluster.dir().display());
                (cluster.connect_options(), shown, started.then_some(cluster))
            }
        };
        let pool = connect(options, settings.database_max_connections)
            .await
            .with_context(|| format!("cannot reach the database at {where_}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .context("applying database migrations")?;
        tracing::info!(database = %where_, "database ready");
        Ok(Database {
            pool,
            owned_cluster,
        })
    }

    /// Closes the pool and stops the embedded cluster if this process started it.
    pub async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(cluster) = self.owned_cluster {
            cluster.stop().await?;
        }
        Ok(())
    }
}

/// A pool whose first connection has been made (so a bad address fails at start, clearly).
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = pool_options(max_connections).connect_lazy_with(options);
    tokio::time::timeout(CONNECT_TIMEOUT, pool.acquire())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}"))??;
    Ok(pool)
}

/// The pool settings used everywhere (tests included).
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}
