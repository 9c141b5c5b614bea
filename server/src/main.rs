//! The `clawloops` binary.

use clap::Parser;
use clawloops_server::{
    cli::{Cli, Command, DbAction},
    database, embedded_db, serve,
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
        Command::Migrate => {
            let db = database::Database::open(&settings).await?;
            db.close().await
        }
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
