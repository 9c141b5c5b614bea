//! Gathers the [`SystemStatus`] from the process and the database.

use crate::api::status::{DatabaseStatus, ReplicaStatus, SystemStatus};
use crate::ssr::AppState;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How long the status page waits for the database before calling it down.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Takes a status snapshot.
pub async fn snapshot(state: &AppState) -> SystemStatus {
    let build = state.build();
    SystemStatus {
        version: build.version.to_owned(),
        git_commit: build.git_commit.map(str::to_owned),
        built_at: build.built_at,
        started_at: state.started_at(),
        checked_at: OffsetDateTime::now_utc(),
        database: database(state.pool()).await,
        replicas: replicas(state).await,
    }
}

/// The replicas as they report themselves; none when the database does not answer.
async fn replicas(state: &AppState) -> Vec<ReplicaStatus> {
    let orchestrator = state.orchestrator();
    let listed = tokio::time::timeout(
        DB_TIMEOUT,
        clawloops_orchestrator::presence::list(state.pool()),
    )
    .await;
    let Ok(Ok(replicas)) = listed else {
        return Vec::new();
    };
    replicas
        .into_iter()
        .map(|r| ReplicaStatus {
            this: r.id == orchestrator.replica_id(),
            leader: r.leader_since.is_some(),
            draining: r.draining_at.is_some(),
            id: r.id,
            hostname: r.hostname,
            version: r.version,
            started_at: r.started_at,
            seen_at: r.seen_at,
        })
        .collect()
}

async fn database(pool: &PgPool) -> DatabaseStatus {
    let started = Instant::now();
    match tokio::time::timeout(DB_TIMEOUT, read_database(pool)).await {
        Ok(Ok(facts)) => facts.into_status(started.elapsed()),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "status: database query failed");
            down()
        }
        Err(_) => {
            tracing::warn!("status: database did not answer within {DB_TIMEOUT:?}");
            down()
        }
    }
}

fn down() -> DatabaseStatus {
    DatabaseStatus::Down {
        message: "The database is not reachable. The control plane keeps retrying.".into(),
    }
}

struct DatabaseFacts {
    server_version: String,
    migrations_applied: i64,
    latest_migration: Option<String>,
    instance_id: uuid::Uuid,
    installed_at: OffsetDateTime,
}

impl DatabaseFacts {
    fn into_status(self, round_trip: Duration) -> DatabaseStatus {
        DatabaseStatus::Up {
            server_version: self.server_version,
            migrations_applied: self.migrations_applied,
            latest_migration: self.latest_migration,
            instance_id: self.instance_id.to_string(),
            installed_at: self.installed_at,
            round_trip_ms: round_trip.as_secs_f64() * 1000.0,
        }
    }
}

async fn read_database(pool: &PgPool) -> Result<DatabaseFacts, sqlx::Error> {
    // One statement, one round trip: the figure shown is the database's own latency.
    let row = sqlx::query!(
        r#"
        SELECT current_setting('server_version') AS "server_version!",
               (SELECT count(*) FROM _sqlx_migrations WHERE success) AS "migrations_applied!",
               (SELECT description FROM _sqlx_migrations WHERE success
                 ORDER BY version DESC LIMIT 1) AS latest_migration,
               i.id AS instance_id,
               i.created_at AS installed_at
          FROM instance i
        "#
    )
    .fetch_one(pool)
    .await?;
    Ok(DatabaseFacts {
        server_version: row.server_version,
        migrations_applied: row.migrations_applied,
        latest_migration: row.latest_migration,
        instance_id: row.instance_id,
        installed_at: row.installed_at,
    })
}
