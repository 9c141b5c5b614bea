//! `swarm-bench`: what ClawLoops' orchestration costs on a Docker Swarm next to a plain
//! `docker service create` of the same image, on the same swarm, in one run.
//!
//! 1. Start request → ready through the orchestrator (PostgreSQL task, rendered configuration
//!    as a secret, the runtime's overlay network, the pinned, hardened service, the engine's
//!    health check) against a plain service of the same image with the same health check and
//!    limits, polled the same way until its task runs.
//! 2. A burst: N users start at once, spread over the nodes, against N plain services at once.
//!
//! It needs the test swarm (`scripts/swarm.sh ensure /var/tmp/clawloops-swarm
//! clawloops/runtime-stub:0.1.0`, or `CLAWLOOPS_TEST_SWARM_DIR`) and `DATABASE_URL` pointing at
//! a PostgreSQL where it may create (and then drops) a scratch database.

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_bench::shared::scratch_database;
use clawloops_driver::swarm::SwarmDriver;
use clawloops_driver::{Limits, RuntimeDriver};
use clawloops_orchestrator::{
    Action, Orchestrator, READY_POLL, RuntimeSettings, TaskStatus, UserRef, repo,
};
use clawloops_testkit::swarm::Swarm;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod plain;

#[derive(Debug, Parser)]
#[command(about = "Runtime start-up and burst on a Docker Swarm against plain services")]
struct Args {
    /// PostgreSQL to create the scratch database in.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Sequential starts per method.
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Users starting at once in the burst.
    #[arg(long, default_value_t = 30)]
    burst: usize,
    #[arg(long, default_value = "clawloops/runtime-stub:0.1.0")]
    stub_image: String,
}

struct Bench {
    pool: PgPool,
    swarm: Swarm,
    driver: Arc<SwarmDriver>,
    instance: String,
}

fn settings(image: &str, concurrency: usize) -> RuntimeSettings {
    RuntimeSettings {
        profile_name: "stub".into(),
        image: image.into(),
        profile: RuntimeSettings::stub_profile(),
        limits: Limits {
            memory_mb: 256,
            cpus: 0.5,
            pids: 128,
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
    let swarm = Swarm::get(&[&args.stub_image]);
    let (pool, drop_db) = scratch_database(&args.database_url).await?;
    let instance = format!("bench-{}", Uuid::new_v4().simple());
    let driver = Arc::new(
        SwarmDriver::connect(&swarm.manager, &swarm.nodes, &instance)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let bench = Bench {
        pool,
        swarm,
        driver,
        instance,
    };
    let result = run(&bench, &args).await;
    bench.swarm.remove_installation(&bench.instance);
    bench.pool.close().await;
    drop_db.await?;
    result
}

async fn run(bench: &Bench, args: &Args) -> Result<()> {
    let image = bench.swarm.image(&args.stub_image);
    println!(
        "swarm-bench: orchestrated (ClawLoops) vs plain `docker service create`, {} nodes, one run",
        bench.swarm.nodes.len()
    );
    println!(
        "same image, health check, limits and {} ms poll on both sides\n",
        READY_POLL.as_millis()
    );
    println!("1. start request -> ready, sequential runs (median, min, max in ms)");
    bench
        .compare_single(&settings(&image, 4), args.runs)
        .await?;
    println!("\n2. burst: {} users start at once", args.burst);
    bench
        .burst(&settings(&image, args.burst), args.burst)
        .await?;
    Ok(())
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

    /// Sequential single starts, alternating orchestrated and plain.
    async fn compare_single(&self, settings: &RuntimeSettings, runs: usize) -> Result<()> {
        let orchestrator = self.orchestrator(settings);
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let user = Uuid::new_v4();
            let name = format!("single{run}");
            let who = UserRef {
                id: user,
                username: &name,
            };
            let started = Instant::now();
            let task = orchestrator
                .request(who, Action::Start, false, "bench")
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
                .request(who, Action::Delete, true, "bench")
                .await?;
            while orchestrator.run_next().await? {}
            plain.push(ms(self.plain_start(settings, &name, true).await?));
        }
        let (o_med, o_min, o_max) = stats(&mut ours);
        let (p_med, p_min, p_max) = stats(&mut plain);
        println!(
            "   {:<44} clawloops {:>6.0} ({:.0}-{:.0})   plain {:>6.0} ({:.0}-{:.0})   diff {:>+5.0} ms   ratio {:.2}",
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

    async fn burst(&self, settings: &RuntimeSettings, users: usize) -> Result<()> {
        let orchestrator = self.orchestrator(settings);
        let workers = orchestrator.spawn();
        let names: Vec<(Uuid, String)> = (0..users)
            .map(|i| (Uuid::new_v4(), format!("burst{i}")))
            .collect();
        let started = Instant::now();
        let requests = names.iter().map(|(id, name)| {
            orchestrator.request(
                UserRef {
                    id: *id,
                    username: name,
                },
                Action::Start,
                false,
                "bench",
            )
        });
        for result in futures_util::future::join_all(requests).await {
            result?;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let (succeeded, failed) = loop {
            let (succeeded, failed): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                        count(*) FILTER (WHERE status IN ('failed', 'canceled'))
                   FROM runtime_tasks WHERE action = 'start' AND user_id = ANY($1)",
            )
            .bind(names.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .fetch_one(&self.pool)
            .await?;
            if usize::try_from(succeeded + failed).unwrap_or(0) >= users
                || Instant::now() > deadline
            {
                break (succeeded, failed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ours = started.elapsed();
        for worker in workers {
            worker.abort();
        }
        let seen = self
            .driver
            .list()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for runtime in seen.iter().filter(|o| o.is_up()) {
            *per_node
                .entry(runtime.node.clone().unwrap_or_default())
                .or_default() += 1;
        }

        let started = Instant::now();
        let plain = names
            .iter()
            .map(|(_, name)| self.plain_start(settings, name, false));
        let results = futures_util::future::join_all(plain).await;
        let plain_time = started.elapsed();
        let plain_ok = results.iter().filter(|r| r.is_ok()).count();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            println!("   plain service error: {e}");
        }
        println!(
            "   clawloops: {succeeded}/{users} ready, {failed} failed, total {:.2} s; per node {per_node:?}",
            ours.as_secs_f64()
        );
        println!(
            "   plain:     {plain_ok}/{users} running, total {:.2} s",
            plain_time.as_secs_f64()
        );
        println!(
            "   ratio clawloops/plain: {:.2}",
            ours.as_secs_f64() / plain_time.as_secs_f64()
        );
        Ok(())
    }
}
