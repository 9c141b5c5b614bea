//! `clawloops serve`: bind, open the database, serve until SIGTERM/SIGINT, shut down cleanly.

use crate::database::Database;
use crate::http::{self, HttpMetrics, ServerState};
use crate::settings::Settings;
use anyhow::Context;
use app::ssr::AppState;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use tokio::net::TcpListener;

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
    let state = server_state(&settings, database.pool.clone());

    tracing::info!(url = %settings.public_url, listen = %settings.listen_addr, "ClawLoops is ready");
    let served = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP");
    tracing::info!("shutting down");
    database.close().await?;
    served
}

/// The router state for a pool and these settings.
pub fn server_state(settings: &Settings, pool: sqlx::PgPool) -> ServerState {
    let build = crate::build_info();
    let metrics = Arc::new(HttpMetrics::new(&build));
    ServerState {
        app: AppState::new(pool, build),
        leptos: leptos_options(settings),
        metrics,
    }
}

/// Leptos' options from our settings (not from LEPTOS_* variables, so the binary runs the
/// same whether or not cargo-leptos started it).
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("clawloops")
        .site_root(settings.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(settings.listen_addr)
        .build()
}

async fn shutdown_signal() {
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
