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
/// The shortest time a transaction may sit idle before PostgreSQL ends its session.
const MIN_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(10);

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
        // A transaction left open by a process that stopped answering (paused, cut off) ends
        // after this: the locks it held (a task row, the claim lock) must not outlive the
        // task leases, or every other replica's workers would wait for it for ever.
        let silence = settings.replicas.task_lease.max(MIN_IDLE_IN_TRANSACTION);
        let options = options.options([(
            "idle_in_transaction_session_timeout",
            silence.as_millis().to_string(),
        )]);
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

/// Lookups any stranger can cause (API keys at the gateway, session ids at forward-auth), on
/// a small pool of their own to the same database as the main one: at most `size` at once,
/// each waiting at most `wait` for its turn. A flood of made-up keys or session ids queues
/// here and is told to come back ([`LookupError::Busy`]); it never takes the main pool's
/// connections, which stay free for sign-in, pages and the background work.
pub struct Lookups {
    turns: tokio::sync::Semaphore,
    pool: PgPool,
    wait: Duration,
}

/// Why a lookup was not made.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Every turn is taken (and stayed taken for the whole wait).
    #[error("every lookup is taken")]
    Busy,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Lookups {
    pub fn new(main: &PgPool, size: u32, wait: Duration) -> Lookups {
        Lookups {
            // One turn per connection: whoever has a turn finds a connection (or the database
            // is unreachable, which is then told apart from being busy).
            turns: tokio::sync::Semaphore::new(usize::try_from(size).unwrap_or(usize::MAX)),
            pool: PgPoolOptions::new()
                .max_connections(size)
                .min_connections(0)
                .idle_timeout(Duration::from_secs(60))
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with((*main.connect_options()).clone()),
            wait,
        }
    }

    /// Runs `lookup` on the lookups' own pool once a turn is free.
    pub async fn run<T, F>(&self, lookup: impl FnOnce(PgPool) -> F) -> Result<T, LookupError>
    where
        F: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let Ok(Ok(_turn)) = tokio::time::timeout(self.wait, self.turns.acquire()).await else {
            return Err(LookupError::Busy);
        };
        Ok(lookup(self.pool.clone()).await?)
    }
}

/// The pool settings used everywhere (tests included).
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}
