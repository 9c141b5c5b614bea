//! `clawloops runtime-manager`: the driver alone, for split mode. It needs no database; it
//! serves the control plane's driver calls (shared secret, allowed addresses only) until
//! SIGTERM/SIGINT.

use crate::settings::Settings;
use anyhow::Context;
use clawloops_driver::docker::DockerDriver;
use clawloops_driver::remote::service;
use secrecy::ExposeSecret;
use std::net::SocketAddr;

/// Runs the runtime manager until a shutdown signal arrives.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let manager = &settings.runtime.manager;
    let secret = manager.secret.as_ref().context(
        "the runtime manager needs a shared secret: set CLAWLOOPS_RUNTIME_MANAGER_SECRET \
         (at least 32 characters, the same value as the control plane's)",
    )?;
    let listener = tokio::net::TcpListener::bind(manager.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set CLAWLOOPS_RUNTIME_MANAGER_LISTEN to another address)",
                manager.listen
            )
        })?;
    let router = router(&settings, secret.expose_secret()).await?;
    tracing::info!(
        listen = %manager.listen,
        allowed = ?manager.allowed_clients,
        "the runtime manager is ready"
    );
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(crate::serve::shutdown_signal())
    .await
    .context("serving the runtime manager API")
}

/// The runtime manager's router for these settings (tests serve it on their own listener).
pub async fn router(settings: &Settings, secret: &str) -> anyhow::Result<axum::Router> {
    // The instance placeholder is replaced per call by the caller's installation.
    let driver = DockerDriver::connect("unset", &crate::serve::runtime_config_dir(settings))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_subnet_pool(settings.runtime.network_pool)
        .with_firewall(settings.runtime.firewall)
        .with_entry_proxy(settings.entry.proxy_container.clone());
    // Fence runtimes off before the first call: a host this manager serves never has runtime
    // networks without the rules (a failure is reported to every caller and retried).
    if let Err(err) = driver.firewall().ensure().await {
        tracing::error!(error = %err, "the runtime firewall could not be installed");
    }
    // Runtimes are run as this manager's own settings say (profile, image, egress), whatever
    // a caller sends; it serves the first installation that calls it and no other (written
    // down beside the runtimes' configuration).
    let config_root = crate::serve::runtime_config_dir(settings);
    service::router(
        driver,
        service::Access {
            secret: secret.to_owned(),
            allowed_clients: settings.runtime.manager.allowed_clients.clone(),
            pin: Some(config_root.join(".installation")),
        },
        service::Policy {
            profile: crate::serve::runtime_profile(settings.runtime.profile),
            images: vec![settings.runtime.image.clone()],
            egress: settings.runtime.egress,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))
}
