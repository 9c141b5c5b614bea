//! `clawloops serve`: bind, open the database, serve until SIGTERM/SIGINT, shut down cleanly.

use crate::database::Database;
use crate::http::{self, HttpMetrics, ServerState};
use crate::settings::Settings;
use anyhow::Context;
use app::ssr::identity::auth::SessionPolicy;
use app::ssr::identity::bootstrap::{self, InitialPassword};
use app::ssr::{AppConfig, AppState};
use leptos::config::LeptosOptions;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the session cookie's signing key is derived for (changing it signs everyone out).
const SESSION_KEY_PURPOSE: &str = "session-cookie";
/// Runs the server until a shutdown signal arrives.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Bind first: a busy port is reported before any slow start-up work.
    let listener = TcpListener::bind(settings.listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set CLAWLOOPS_LISTEN_ADDR to another address)",
                settings.listen_addr
            )
        })?;
    let database = Database::open(&settings).await?;
    // Every replica must seal with the installation's one key: refuse before doing anything.
    crate::installation::check_key(&database.pool, &crate::installation::load_key(&settings)?)
        .await?;
    first_admin(&settings, &database.pool).await?;
    app::ssr::identity::auth::password::warm_up();
    let instance = instance_id(&database.pool).await?;
    let state = server_state(&settings, database.pool.clone(), instance).await?;
    let mut background = spawn_background(&state);
    let state_gateway = state.gateway.clone();
    background.push(tokio::spawn(delete_expired_sessions(database.pool.clone())));

    tracing::info!(url = %settings.public_url, listen = %settings.listen_addr, "ClawLoops is ready");
    let orchestrator = state.app.orchestrator().clone();
    let shutdown = crate::shutdown::Shutdown::new(settings.replicas, state.draining.clone());
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = shutdown
        .serve(
            |stop| axum::serve(listener, app).with_graceful_shutdown(stop),
            orchestrator.clone(),
            {
                let gateway = state_gateway.clone();
                move || gateway.close_streams()
            },
        )
        .await;
    state_gateway.shutdown().await;
    for task in background {
        task.abort();
    }
    orchestrator.hand_back().await;
    database.close().await?;
    served
}

/// Starts what runs beside the HTTP server: the orchestrator's workers and reconciler, the
/// forward-auth cache's change listener and the workspace activity writer.
pub fn spawn_background(state: &ServerState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = state.app.orchestrator().spawn();
    tasks.push(tokio::spawn(state.entry.clone().listen()));
    tasks.push(tokio::spawn(
        state
            .entry
            .clone()
            .flush_forever(std::time::Duration::from_secs(15)),
    ));
    tasks
}

/// This installation's id (made by the first migration); it labels the installation's Docker
/// objects so that two installations on one engine never touch each other's runtimes.
pub async fn instance_id(pool: &sqlx::PgPool) -> anyhow::Result<uuid::Uuid> {
    sqlx::query_scalar("SELECT id FROM instance")
        .fetch_one(pool)
        .await
        .context("reading the instance id")
}

/// The router state for a pool, this installation and these settings (the orchestrator's workers
/// are not started here; [`run`] starts them).
pub async fn server_state(
    settings: &Settings,
    pool: sqlx::PgPool,
    instance: uuid::Uuid,
) -> anyhow::Result<ServerState> {
    let sealer = crate::installation::load_key(settings)?;
    let session_key = tower_sessions::cookie::Key::from(&sealer.derive(SESSION_KEY_PURPOSE));
    let orchestrator = orchestrator(
        settings,
        pool.clone(),
        &instance.to_string(),
        sealer.clone(),
    )
    .await?;
    let gateway =
        crate::gateway::Gateway::start(pool.clone(), sealer.clone(), settings.gateway.clone())
            .await?;
    // A trip this replica opens holds the user's runtime at once (the reconciler keeps it).
    gateway.breaker.on_trip({
        let orchestrator = orchestrator.clone();
        Arc::new(move |user, reason| {
            let orchestrator = orchestrator.clone();
            tokio::spawn(async move {
                match orchestrator.hold(user, &reason).await {
                    Ok(hold) => tracing::info!(user = %user, ?hold, "runtime held by the breaker"),
                    Err(err) => {
                        tracing::warn!(user = %user, error = %err, "could not hold the runtime now; the reconciler will");
                    }
                }
            });
        })
    });
    let entry = Arc::new(
        crate::entry::EntryGate::new(
            pool.clone(),
            orchestrator.clone(),
            settings.entry.workspace_domain.clone(),
            http::SESSION_COOKIE,
            time::Duration::hours(i64::from(settings.session_absolute_hours)),
            settings.entry.session_lookups,
        )
        .serving_https(settings.public_url.scheme() == "https")
        .handing_off(settings.entry.handoff)
        .signing_sessions(session_key.clone()),
    );
    let build = crate::build_info();
    let metrics = Arc::new(HttpMetrics::new(&build, &gateway.metrics));
    let config = AppConfig {
        build,
        session_policy: SessionPolicy {
            idle: time::Duration::hours(i64::from(settings.session_idle_hours)),
            absolute: time::Duration::hours(i64::from(settings.session_absolute_hours)),
        },
        public_url: settings.public_url.to_string(),
        orchestrator,
        access_changed: Some({
            let entry = entry.clone();
            let gateway = gateway.clone();
            Arc::new(move |user| {
                entry.forget_user(user);
                gateway.invalidate();
            })
        }),
        models_changed: Some({
            let gateway = gateway.clone();
            Arc::new(move || gateway.invalidate())
        }),
        sealer,
        sso: app::ssr::identity::sso::Sso::new(settings.sso_providers.clone()),
    };
    Ok(ServerState {
        app: AppState::new(pool, config),
        leptos: leptos_options(settings),
        metrics,
        guard: http::request_guard::GuardConfig {
            public_origin: settings.public_url.origin().ascii_serialization(),
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        },
        // A browser that reached us over https never sends the session back over plain HTTP.
        cookie_secure: settings.cookie_secure || settings.public_url.scheme() == "https",
        cookie_domain: settings.entry.cookie_domain.clone(),
        draining: Arc::default(),
        session_key,
        entry,
        gateway,
    })
}

/// The runtime orchestrator with the in-process Docker driver.
async fn orchestrator(
    settings: &Settings,
    pool: sqlx::PgPool,
    instance: &str,
    sealer: clawloops_models::Sealer,
) -> anyhow::Result<clawloops_orchestrator::Orchestrator> {
    use crate::settings::RuntimeProfile;
    use clawloops_orchestrator::RuntimeSettings as Runtime;
    let r = &settings.runtime;
    let driver: Arc<dyn clawloops_driver::RuntimeDriver> = match (
        &r.engine,
        &r.manager.url,
        &r.manager.secret,
    ) {
        (crate::settings::Engine::Swarm(swarm), _, _) => {
            tracing::info!(manager = %swarm.manager, nodes = swarm.nodes.len(), "runtimes run on a Docker Swarm");
            let mut driver = clawloops_driver::swarm::SwarmDriver::connect(
                &swarm.manager,
                &swarm.nodes,
                instance,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(entry) = &settings.entry.proxy_container {
                driver = driver.with_entry_proxy(&swarm.entry_node, entry);
            }
            for gap in clawloops_driver::RuntimeDriver::hardening_gaps(&driver) {
                tracing::warn!(gap = %gap, "the swarm cannot enforce part of the runtime hardening");
            }
            Arc::new(driver)
        }
        (crate::settings::Engine::Kubernetes(kube), _, _) => {
            tracing::info!(namespace = %kube.driver.namespace, "runtimes run on Kubernetes");
            Arc::new(
                clawloops_driver::kubernetes::KubeDriver::connect(
                    kube.api_url.as_ref().map(url::Url::as_str),
                    kube.driver.clone(),
                    instance,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        (_, Some(url), Some(secret)) => {
            tracing::info!(runtime_manager = %url, "split mode: runtimes are driven by the runtime manager");
            Arc::new(
                clawloops_driver::remote::RemoteDriver::new(url, secret.expose_secret(), instance)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        _ => Arc::new(
            clawloops_driver::docker::DockerDriver::connect(
                instance,
                &runtime_config_dir(settings),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_subnet_pool(r.network_pool)
            .with_firewall(r.firewall)
            .with_entry_proxy(settings.entry.proxy_container.clone()),
        ),
    };
    let runtime = Runtime {
        profile_name: match r.profile {
            RuntimeProfile::Openclaw => "openclaw".into(),
            RuntimeProfile::Stub => "stub".into(),
        },
        image: r.image.clone(),
        profile: runtime_profile(r.profile),
        limits: clawloops_driver::Limits {
            memory_mb: r.memory_mb,
            cpus: r.cpus,
            pids: r.pids,
            disk_mb: r.disk_mb,
        },
        concurrency: r.concurrency,
        ready_timeout: std::time::Duration::from_secs(r.ready_timeout_secs),
        stop_grace: std::time::Duration::from_secs(30),
        reconcile_every: std::time::Duration::from_secs(5),
        disk_check_every: std::time::Duration::from_secs(r.disk_check_secs),
        model_base_url: r.model_gateway_url.clone(),
        models: vec!["default".into()],
        browser_url_template: r.browser_url.clone(),
        idle_stop_minutes: r.idle_stop_minutes,
        max_lifetime_minutes: r.max_lifetime_hours.map(|h| h * 60),
        egress: r.egress,
    };
    let coordination = clawloops_orchestrator::Coordination {
        task_lease: settings.replicas.task_lease,
        leader_lease: settings.replicas.leader_lease,
        ..Default::default()
    };
    Ok(
        clawloops_orchestrator::Orchestrator::new(pool, driver, runtime, instance)
            .with_model_keys(sealer)
            .with_coordination(coordination),
    )
}

/// Where the in-process driver (or the runtime manager) writes runtime configurations.
/// How runtimes of this kind are run (user, mounts, environment).
pub fn runtime_profile(kind: crate::settings::RuntimeProfile) -> clawloops_driver::Profile {
    use crate::settings::RuntimeProfile;
    use clawloops_orchestrator::RuntimeSettings as Runtime;
    match kind {
        RuntimeProfile::Openclaw => Runtime::openclaw_profile(),
        RuntimeProfile::Stub => Runtime::stub_profile(),
    }
}

pub fn runtime_config_dir(settings: &Settings) -> std::path::PathBuf {
    settings.data_dir.join("runtimes")
}

/// Makes the first admin when there is none: with the password from
/// `initial_admin_password_file`, or a one-time password printed here once.
pub async fn first_admin(settings: &Settings, pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let initial = match &settings.initial_admin_password_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            InitialPassword::Given(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        None => InitialPassword::OneTime,
    };
    let created = bootstrap::ensure_first_admin(pool, initial)
        .await
        .map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))?;
    if let Some(created) = created {
        match created.one_time_password {
            Some(password) => tracing::warn!(
                username = %created.username,
                "created the first admin. One-time password (shown only now, must be changed at \
                 first sign-in): {password}"
            ),
            None => tracing::info!(username = %created.username, "created the first admin"),
        }
    }
    Ok(())
}

/// Removes expired sessions every hour.
async fn delete_expired_sessions(pool: sqlx::PgPool) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match app::ssr::identity::repo::sessions::delete_expired(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "removed expired sessions"),
            Err(err) => tracing::warn!(error = %err, "could not remove expired sessions"),
        }
    }
}

/// Leptos' options from our settings (not from LEPTOS_* variables, so the binary runs the
/// same whether or not cargo-leptos started it). Asset names are hashed when the build wrote
/// `hash.txt` beside this binary (release builds: `hash-files` in Cargo.toml).
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    let hashed = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(HASH_FILE)))
        .is_some_and(|file| file.is_file());
    LeptosOptions::builder()
        .output_name("clawloops")
        .site_root(settings.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(settings.listen_addr)
        .hash_files(hashed)
        .hash_file(HASH_FILE.into())
        .build()
}

/// The file naming the hashed assets, beside the binary (cargo-leptos writes it there).
const HASH_FILE: &str = "hash.txt";

pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
