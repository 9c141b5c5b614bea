use crate::ssr::identity::auth::SessionPolicy;
use clawloops_orchestrator::Orchestrator;
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

/// Told about a change that can turn a workspace "allow" into "deny" for a user (sign-out,
/// disable), right after it is committed. Other replicas learn it from PostgreSQL's
/// notification; this spares the process that made the change from waiting for it.
pub type AccessChanged = Arc<dyn Fn(uuid::Uuid) + Send + Sync>;

/// Told that the registry, a key or a limit changed (right after the commit), so this
/// process's gateway drops what it cached; other replicas hear it from PostgreSQL.
pub type ModelsChanged = Arc<dyn Fn() + Send + Sync>;

struct Inner {
    access_changed: Option<AccessChanged>,
    models_changed: Option<ModelsChanged>,
    sealer: clawloops_models::Sealer,
    pool: PgPool,
    build: BuildInfo,
    started_at: OffsetDateTime,
    session_policy: SessionPolicy,
    public_url: String,
    orchestrator: Orchestrator,
    sso: crate::ssr::identity::sso::Sso,
}

/// What [`AppState::new`] needs besides the pool.
#[derive(Clone)]
pub struct AppConfig {
    pub access_changed: Option<AccessChanged>,
    pub models_changed: Option<ModelsChanged>,
    /// Seals provider credentials.
    pub sealer: clawloops_models::Sealer,
    /// Build facts of the running binary.
    pub build: BuildInfo,
    /// Session lifetimes.
    pub session_policy: SessionPolicy,
    /// Where people reach ClawLoops, without a trailing slash (for links in invitations).
    pub public_url: String,
    /// Runtimes: desired state, tasks, reconciler.
    pub orchestrator: Orchestrator,
    /// The single sign-on providers.
    pub sso: crate::ssr::identity::sso::Sso,
}

impl AppState {
    /// Builds the state; `started_at` is taken as now.
    pub fn new(pool: PgPool, config: AppConfig) -> Self {
        AppState(Arc::new(Inner {
            access_changed: config.access_changed,
            models_changed: config.models_changed,
            sealer: config.sealer,
            pool,
            build: config.build,
            started_at: OffsetDateTime::now_utc(),
            session_policy: config.session_policy,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            orchestrator: config.orchestrator,
            sso: config.sso,
        }))
    }

    /// Session lifetimes.
    pub fn session_policy(&self) -> SessionPolicy {
        self.0.session_policy
    }

    /// The runtime orchestrator.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.0.orchestrator
    }

    /// The single sign-on providers.
    pub fn sso(&self) -> &crate::ssr::identity::sso::Sso {
        &self.0.sso
    }

    /// The public address, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }

    /// The sealer for secrets at rest.
    pub fn sealer(&self) -> &clawloops_models::Sealer {
        &self.0.sealer
    }

    /// Call after committing a change to models, credentials, keys or limits.
    pub fn models_changed(&self) {
        if let Some(hook) = &self.0.models_changed {
            hook();
        }
    }

    /// Reports a committed change to `user`'s access (see [`AccessChanged`]).
    pub fn access_changed(&self, user: uuid::Uuid) {
        if let Some(hook) = &self.0.access_changed {
            hook(user);
        }
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
