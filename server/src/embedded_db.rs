//! The private PostgreSQL cluster used when no database URL is configured.
//!
//! It lives in `<data_dir>/postgres`, made with the system's `initdb` the first time and
//! started with `pg_ctl` on every start after. It listens on a Unix socket inside its own
//! directory only (no TCP), so trust authentication reaches nobody but its owner and root.
//! PostgreSQL refuses to run as root; when we are root it runs as the `postgres` user.

use crate::settings::Settings;
use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::process::Command;

/// The database ClawLoops uses inside the cluster.
pub const DATABASE: &str = "clawloops";
/// Only names the socket file; nothing listens on TCP.
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes by the kernel.
const MAX_SOCKET_PATH: usize = 107;
/// The cluster's own settings, rewritten on every start so they always match this code.
const CONF_FILE: &str = "clawloops.conf";

/// A private cluster under the data directory.
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    bin_dir: PathBuf,
    /// `Some("postgres")` when we are root and must switch user to run the server.
    run_as: Option<String>,
}

impl EmbeddedPostgres {
    /// Finds the PostgreSQL binaries and works out where the cluster lives. Creates nothing.
    pub fn locate(settings: &Settings) -> anyhow::Result<Self> {
        let data_dir = absolute(&settings.data_dir)?;
        let dir = data_dir.join("postgres");
        let socket = dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "the data directory path {} is too long for PostgreSQL's socket \
                 (limit {MAX_SOCKET_PATH} bytes); set CLAWLOOPS_DATA_DIR to a shorter path",
                data_dir.display()
            );
        }
        let bin_dir = find_bin_dir(settings.postgres_bin_dir.as_deref())?;
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then(|| "postgres".to_owned());
        Ok(EmbeddedPostgres {
            dir,
            bin_dir,
            run_as,
        })
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Connection options for the ClawLoops database in this cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE)
    }

    fn options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username("postgres")
            .database(database)
    }

    /// A URL for tools (psql, sqlx, tests) that reaches the same database.
    pub fn url(&self) -> String {
        self.connect_options().to_url_lossy().to_string()
    }

    /// Creates the cluster if needed, starts it if it is not running, and creates the
    /// ClawLoops database if missing. Returns `true` when this call started the server.
    pub async fn ensure_running(&self) -> anyhow::Result<bool> {
        self.prepare_dir().await?;
        if !self.dir.join("PG_VERSION").exists() {
            self.init().await?;
        }
        self.write_conf()?;
        let started = if self.is_running().await? {
            tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL already running");
            false
        } else {
            self.start().await?;
            true
        };
        self.ensure_database().await?;
        Ok(started)
    }

    /// Stops the cluster (fast shutdown: connections are closed, data is safe).
    pub async fn stop(&self) -> anyhow::Result<()> {
        if !self.dir.join("PG_VERSION").exists() || !self.is_running().await? {
            return Ok(());
        }
        let out = self
            .pg_command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()
            .await
            .context("running pg_ctl stop")?;
        check(&out, "pg_ctl stop")?;
        tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    async fn prepare_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        set_mode(&self.dir, 0o700)?;
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let pg_user = nix::unistd::User::from_name(user)
            .context("looking up the postgres user")?
            .with_context(|| {
                format!("running as root needs the `{user}` system user (from Debian's postgresql package)")
            })?;
        nix::unistd::chown(&self.dir, Some(pg_user.uid), Some(pg_user.gid))
            .with_context(|| format!("giving {} to {user}", self.dir.display()))?;
        // The parents must let the postgres user through (a clone under /root does not).
        let out = Command::new("runuser")
            .args(["-u", user, "--", "test", "-w"])
            .arg(&self.dir)
            .output()
            .await
            .context("running runuser")?;
        if !out.status.success() {
            bail!(
                "the `{user}` user cannot reach {}: PostgreSQL runs as that user. Set \
                 CLAWLOOPS_DATA_DIR to a directory it can reach (the default for root is \
                 /var/lib/clawloops), or let it traverse the parent directories",
                self.dir.display()
            );
        }
        Ok(())
    }

    async fn init(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.dir.display(), "creating the embedded PostgreSQL cluster");
        let out = self
            .pg_command("initdb")
            .arg("-D")
            .arg(&self.dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .await
            .context("running initdb")?;
        check(&out, "initdb")?;
        let main_conf = self.dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&main_conf)
            .with_context(|| format!("reading {}", main_conf.display()))?;
        text.push_str("\n# Added by ClawLoops.\ninclude_if_exists = '");
        text.push_str(CONF_FILE);
        text.push_str("'\n");
        std::fs::write(&main_conf, text)
            .with_context(|| format!("writing {}", main_conf.display()))?;
        Ok(())
    }

    fn write_conf(&self) -> anyhow::Result<()> {
        let dir = self.dir.display().to_string().replace('\'', "''");
        let conf = format!(
            "# Written by ClawLoops on every start; edits here are replaced.\n\
             listen_addresses = ''\n\
             port = {PORT}\n\
             unix_socket_directories = '{dir}'\n\
             unix_socket_permissions = 0700\n\
             logging_collector = off\n"
        );
        let path = self.dir.join(CONF_FILE);
        std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
        // Readable by the postgres user when we are root (root created the file).
        set_mode(&path, 0o644)
    }

    async fn is_running(&self) -> anyhow::Result<bool> {
        let out = self
            .pg_command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.dir)
            .output()
            .await
            .context("running pg_ctl status")?;
        // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => check(&out, "pg_ctl status").map(|()| false),
        }
    }

    async fn start(&self) -> anyhow::Result<()> {
        let log = self.dir.join("server.log");
        let out = self
            .pg_command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"])
            .output()
            .await
            .context("running pg_ctl start")?;
        if !out.status.success() {
            let tail = std::fs::read_to_string(&log)
                .map(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(8)..].join("\n")
                })
                .unwrap_or_default();
            bail!(
                "the embedded PostgreSQL in {} did not start: {}\n{tail}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL started");
        Ok(())
    }

    async fn ensure_database(&self) -> anyhow::Result<()> {
        let mut conn = self
            .options_for("postgres")
            .connect()
            .await
            .context("connecting to the embedded PostgreSQL")?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .context("looking for the clawloops database")?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .await
                .context("creating the clawloops database")?;
        }
        conn.close().await.ok();
        Ok(())
    }

    fn pg_command(&self, program: &str) -> Command {
        let binary = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        // A working directory the postgres user can read, whatever ours is.
        cmd.current_dir("/");
        cmd.kill_on_drop(true);
        cmd
    }
}

fn find_bin_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
            return Ok(dir.to_owned());
        }
        bail!(
            "postgres_bin_dir {} does not contain pg_ctl and initdb",
            dir.display()
        );
    }
    // Debian: /usr/lib/postgresql/<major>/bin; take the newest major version installed.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql: \
         install Debian's `postgresql` package (the start script does), set \
         CLAWLOOPS_POSTGRES_BIN_DIR, or set CLAWLOOPS_DATABASE_URL to use an existing database"
    )
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", path.display()))
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}
