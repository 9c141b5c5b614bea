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
    /// Run the runtime manager alone (split mode): the only process that speaks to Docker,
    /// serving the control plane over an internal API that needs the shared secret.
    RuntimeManager,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage the embedded PostgreSQL used when no database URL is set.
    Db {
        /// What to do with it.
        #[command(subcommand)]
        action: DbAction,
    },
    /// Exit 0 when `url` answers 2xx within 3 seconds, 1 otherwise (container health checks;
    /// the image has no curl).
    Health {
        /// What to ask, e.g. http://127.0.0.1:3000/readyz.
        url: String,
    },
    /// Print the Docker host's IPv4 address on a bridge network of the local engine (where a
    /// container on that network reaches a process on the host), e.g. to listen there.
    DockerHostAddress {
        /// The network.
        #[arg(default_value = "bridge")]
        network: String,
    },
    /// The host firewall that keeps runtimes to the entry proxy (the runtime manager installs
    /// it by itself; this is for operators and for a separate firewall service).
    RuntimeFirewall {
        /// What to do.
        #[command(subcommand)]
        action: FirewallAction,
    },
    /// Manage admin accounts from the command line.
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// Admin account actions.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an admin account. Without --password-file a one-time password is printed,
    /// which must be changed at first sign-in.
    Create {
        /// The new account's username.
        #[arg(long)]
        username: String,
        /// A file holding the password (its first line is used).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Give an account a new one-time password (printed) and end its sessions.
    ResetPassword {
        /// The account's username.
        #[arg(long)]
        username: String,
    },
}

/// Runtime firewall actions.
#[derive(Debug, Subcommand)]
pub enum FirewallAction {
    /// Print the installed rules (exit 1 when they are missing or changed).
    Status,
    /// Install the rules, or repair them; with --watch, check again every 5 seconds until
    /// stopped.
    Install {
        /// Keep checking (a firewall service beside a runtime manager that does not manage it).
        #[arg(long)]
        watch: bool,
    },
    /// Remove the rules (the installation is being removed).
    Remove,
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
