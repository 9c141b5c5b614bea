use sqlx::PgPool;
use std::sync::Arc;
use time::OffsetDateTime;

/// What the binary knows about its own build.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The crate version.
    pub version: &'static str,
    /// The git commit the binary was built from, when known.
    pub git_commit: Option<&'static str>,
    /// When the binary was built.
    pub built_at: OffsetDateTime,
}

/// The state every server function and page render can reach (through Leptos context).
/// Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    pool: PgPool,
    build: BuildInfo,
    started_at: OffsetDateTime,
}

impl AppState {
    /// Builds the state; `started_at` is taken as now.
    pub fn new(pool: PgPool, build: BuildInfo) -> Self {
        AppState(Arc::new(Inner {
            pool,
            build,
            started_at: OffsetDateTime::now_utc(),
        }))
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    /// Build facts of the running binary.
    pub fn build(&self) -> &BuildInfo {
        &self.0.build
    }

    /// When this process started serving.
    pub fn started_at(&self) -> OffsetDateTime {
        self.0.started_at
    }
}
