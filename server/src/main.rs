//! The `clawloops` binary.

use clap::Parser;
use clawloops_server::{
    cli::{AdminAction, Cli, Command, DbAction, FirewallAction},
    database, embedded_db, runtime_manager, serve,
    settings::Settings,
    telemetry,
};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("clawloops: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("clawloops: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("clawloops: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::run(settings).await,
        Command::RuntimeManager => runtime_manager::run(settings).await,
        Command::Migrate => {
            let db = database::Database::open(&settings).await?;
            db.close().await
        }
        Command::Admin { action } => admin(action, &settings).await,
        Command::Health { url } => {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .no_proxy()
                .build()?;
            let status = client.get(&url).send().await?.status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}");
            Ok(())
        }
        Command::DockerHostAddress { network } => {
            let address = clawloops_driver::host::local_host_address(&network)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{address}");
            Ok(())
        }
        Command::RuntimeFirewall { action } => runtime_firewall(action).await,
        Command::Db { action } => {
            let embedded = embedded_db::EmbeddedPostgres::locate(&settings)?;
            match action {
                DbAction::Up => {
                    embedded.ensure_running().await?;
                    println!("{}", embedded.url());
                }
                DbAction::Down => embedded.stop().await?,
                DbAction::Url => println!("{}", embedded.url()),
            }
            Ok(())
        }
    }
}

async fn admin(action: AdminAction, settings: &Settings) -> anyhow::Result<()> {
    use app::ssr::identity::bootstrap::{self, InitialPassword};
    let db = database::Database::open(settings).await?;
    let result = match action {
        AdminAction::Create {
            username,
            password_file,
        } => {
            let initial = match password_file {
                Some(file) => {
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        anyhow::anyhow!("cannot read the password file {}: {e}", file.display())
                    })?;
                    InitialPassword::Given(text.lines().next().unwrap_or_default().to_owned())
                }
                None => InitialPassword::OneTime,
            };
            bootstrap::create_admin(&db.pool, &username, initial, "cli")
                .await
                .map(|created| match created.one_time_password {
                    Some(password) => println!(
                        "Created admin {}. One-time password (must be changed at first sign-in): {password}",
                        created.username
                    ),
                    None => println!("Created admin {}.", created.username),
                })
        }
        AdminAction::ResetPassword { username } => {
            bootstrap::reset_password(&db.pool, &username, "cli")
                .await
                .map(|password| {
                    println!(
                        "New one-time password for {} (must be changed at next sign-in; all their sessions ended): {password}",
                        username.trim().to_lowercase()
                    );
                })
        }
    };
    db.close().await?;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// `clawloops runtime-firewall …`.
async fn runtime_firewall(action: FirewallAction) -> anyhow::Result<()> {
    use clawloops_driver::firewall::{Firewall, FirewallMode, Outcome};
    let firewall = Firewall::new(FirewallMode::Managed);
    let error = |e: clawloops_driver::DriverError| anyhow::anyhow!("{e}");
    match action {
        FirewallAction::Status => {
            for line in firewall.installed().await.map_err(error)? {
                println!("{line}");
            }
            anyhow::ensure!(
                firewall.is_installed().await.map_err(error)?,
                "the runtime firewall is missing or changed (`clawloops runtime-firewall install` repairs it)"
            );
            Ok(())
        }
        FirewallAction::Install { watch } => loop {
            match firewall.ensure().await {
                Ok(Outcome::Installed) => tracing::info!("runtime firewall installed"),
                Ok(_) => {}
                Err(err) if watch => tracing::error!(error = %err, "runtime firewall"),
                Err(err) => return Err(error(err)),
            }
            if !watch {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                () = serve::shutdown_signal() => return Ok(()),
            }
        },
        FirewallAction::Remove => firewall.remove().await.map_err(error),
    }
}
