//! `runtime-bench`: how much ClawLoops' orchestration costs next to plain Docker, on this
//! machine, in one run.
//!
//! 1. Start request → healthy through the orchestrator (PostgreSQL task, rendered config,
//!    private network, volume, hardened container, health poll) against `docker run` of the
//!    same image plus the same health poll — for the tiny stub image and for OpenClaw.
//! 2. A burst: N users start at once (stub image), against N plain `docker run`s at once.
//! 3. One reconciler pass over M bindings (the burst's running runtimes among them).
//!
//! It needs the Docker engine, the images from `scripts/build-images.sh`, and `DATABASE_URL`
//! pointing at a PostgreSQL where it may create (and then drops) a scratch database.

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_bench::shared::{docker, remove_labelled, scratch_database};
use clawloops_driver::docker::DockerDriver;
use clawloops_driver::{Limits, Profile, RuntimeDriver};
use clawloops_orchestrator::{
    Action, Orchestrator, READY_POLL, RuntimeSettings, TaskStatus, UserRef, repo,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod burst;
mod plain;

#[derive(Debug, Parser)]
#[command(about = "Runtime start-up, burst and reconciler benchmarks against plain Docker")]
struct Args {
    /// PostgreSQL to create the scratch database in.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Sequential starts per method with the stub image.
    #[arg(long, default_value_t = 9)]
    stub_runs: usize,
    /// Sequential starts per method with the OpenClaw image (0 skips it).
    #[arg(long, default_value_t = 3)]
    openclaw_runs: usize,
    /// Users starting at once in the burst.
    #[arg(long, default_value_t = 50)]
    burst: usize,
    /// The orchestrator's start concurrency during the burst.
    #[arg(long, default_value_t = 50)]
    burst_concurrency: usize,
    /// Bindings in the reconciler pass.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
    /// Reconciler passes to time.
    #[arg(long, default_value_t = 20)]
    passes: usize,
    #[arg(long, default_value = "clawloops/runtime-stub:0.1.0")]
    stub_image: String,
    #[arg(long, default_value = "clawloops/openclaw:2026.9.6")]
    openclaw_image: String,
}

/// The orchestrator, its driver and the scratch database it works in.
struct Bench {
    pool: PgPool,
    driver: Arc<DockerDriver>,
    instance: String,
    _config_root: tempfile::TempDir,
    plain_dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn settings(
    profile_name: &str,
    image: &str,
    profile: Profile,
    concurrency: usize,
) -> RuntimeSettings {
    RuntimeSettings {
        profile_name: profile_name.into(),
        image: image.into(),
        profile,
        limits: Limits {
            memory_mb: 1536,
            cpus: 1.0,
            pids: 512,
            disk_mb: None,
        },
        concurrency,
        ready_timeout: Duration::from_secs(120),
        stop_grace: Duration::from_secs(10),
        reconcile_every: Duration::from_secs(3600),
        disk_check_every: Duration::from_secs(3600),
        model_base_url: "http://gateway.invalid/v1".into(),
        models: vec!["bench-model".into()],
        browser_url_template: None,
        idle_stop_minutes: 0,
        max_lifetime_minutes: None,
        egress: Default::default(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (pool, drop_db) = scratch_database(&args.database_url).await?;
    let instance = format!("bench-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir()?;
    let driver = Arc::new(
        DockerDriver::connect(&instance, config_root.path())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let bench = Bench {
        pool,
        driver,
        instance,
        _config_root: config_root,
        plain_dir: tempfile::tempdir()?,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?,
    };
    docker(&["network", "create", &plain_network(&bench)]).await?;
    let result = run(&bench, &args).await;
    bench.remove_everything().await;
    bench.pool.close().await;
    drop_db.await?;
    result
}

async fn run(bench: &Bench, args: &Args) -> Result<()> {
    println!("runtime-bench: orchestrated (ClawLoops) vs plain docker run, same machine, one run");
    println!(
        "health poll every {} ms and the same memory, CPU and process limits on both sides\n",
        READY_POLL.as_millis()
    );
    println!("1. start request -> healthy, sequential runs (median, min, max in ms)");
    let stub = settings("stub", &args.stub_image, RuntimeSettings::stub_profile(), 4);
    bench.compare_single(&stub, args.stub_runs).await?;
    if args.openclaw_runs > 0 {
        let openclaw = settings(
            "openclaw",
            &args.openclaw_image,
            RuntimeSettings::openclaw_profile(),
            4,
        );
        bench.compare_single(&openclaw, args.openclaw_runs).await?;
    }

    println!(
        "\n2. burst: {} users start at once (stub image, orchestrator concurrency {})",
        args.burst, args.burst_concurrency
    );
    let burst = settings(
        "stub",
        &args.stub_image,
        RuntimeSettings::stub_profile(),
        args.burst_concurrency,
    );
    bench.burst(&burst, args.burst).await?;

    println!(
        "\n3. reconciler: one pass over {} bindings ({} of them running containers)",
        args.bindings, args.burst
    );
    bench.reconcile(&burst, args.bindings, args.passes).await?;
    Ok(())
}

/// The network the plain `docker run` containers share.
fn plain_network(bench: &Bench) -> String {
    format!("{}-plain", bench.instance)
}

fn stats(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0.0);
    (
        median,
        samples.first().copied().unwrap_or(0.0),
        samples.last().copied().unwrap_or(0.0),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Bench {
    fn orchestrator(&self, settings: &RuntimeSettings) -> Orchestrator {
        Orchestrator::new(
            self.pool.clone(),
            self.driver.clone(),
            settings.clone(),
            &self.instance,
        )
    }

    /// Sequential single starts, alternating orchestrated and plain so that drift in the
    /// machine's load hits both alike.
    async fn compare_single(&self, settings: &RuntimeSettings, runs: usize) -> Result<()> {
        let orchestrator = self.orchestrator(settings);
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let user = Uuid::new_v4();
            let name = format!("single{run}");
            let started = Instant::now();
            let task = orchestrator
                .request(
                    UserRef {
                        id: user,
                        username: &name,
                    },
                    Action::Start,
                    false,
                    "bench",
                )
                .await?;
            while orchestrator.run_next().await? {}
            let took = started.elapsed();
            let mut conn = self.pool.acquire().await?;
            let task = repo::get_task(&mut conn, task.id)
                .await?
                .context("task vanished")?;
            if task.status() != TaskStatus::Succeeded {
                bail!("start failed: {:?}", task.error);
            }
            ours.push(ms(took));
            orchestrator
                .request(
                    UserRef {
                        id: user,
                        username: &name,
                    },
                    Action::Delete,
                    true,
                    "bench",
                )
                .await?;
            while orchestrator.run_next().await? {}

            plain.push(ms(self
                .plain_start(settings, &format!("single{run}"), true)
                .await?));
        }
        let (o_med, o_min, o_max) = stats(&mut ours);
        let (p_med, p_min, p_max) = stats(&mut plain);
        println!(
            "   {:<34} clawloops {:>7.0} ({:.0}-{:.0})   plain {:>7.0} ({:.0}-{:.0})   diff {:>+6.0} ms   ratio {:.2}",
            settings.image,
            o_med,
            o_min,
            o_max,
            p_med,
            p_min,
            p_max,
            o_med - p_med,
            o_med / p_med
        );
        Ok(())
    }

    /// Removes every container, network and volume the run made.
    async fn remove_everything(&self) {
        for label in ["org.clawloops.instance", "org.clawloops.bench"] {
            remove_labelled(label, &self.instance.to_string()).await;
        }
        let _ = docker(&["network", "rm", &plain_network(self)]).await;
    }
}
