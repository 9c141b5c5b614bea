//! Child processes the benchmarks start (servers, proxies, fake upstreams): killed when
//! dropped, logging to a file, waited for until they answer.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub struct Child(tokio::process::Child);

impl Child {
    /// Its process id (0 once it has gone).
    pub fn pid(&self) -> u32 {
        self.0.id().unwrap_or(0)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Waits until `url` answers 2xx, for at most `within`.
pub async fn wait_ready(url: &str, within: Duration) -> Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + within;
    loop {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts `program` in `dir` (its output to `<name>.log` there), without `DATABASE_URL`.
pub fn spawn(program: &Path, args: &[&str], dir: &Path, env: &[(&str, String)]) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!(
        "{}.log",
        program.file_name().and_then(|n| n.to_str()).unwrap_or("child")
    )))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(Child(cmd.spawn().with_context(|| {
        format!("starting {}", program.display())
    })?))
}
