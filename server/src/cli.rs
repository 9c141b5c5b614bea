//! The command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// ClawLoops: isolated OpenClaw runtimes for every member of your team.
#[derive(Debug, Parser)]
#[command(name = "clawloops", version, about)]
pub struct Cli {
    /// A TOML settings file. `CLAWLOOPS_*` environment variables override its values.
    #[arg(long, short, env = "CLAWLOOPS_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (migrating the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage the embedded PostgreSQL used when no database URL is set.
    Db {
        /// What to do with it.
        #[command(subcommand)]
        action: DbAction,
    },
}

/// Embedded database actions.
#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Create (first time) and start the private cluster, then print its connection URL.
    Up,
    /// Stop the private cluster.
    Down,
    /// Print the connection URL of the private cluster.
    Url,
}
