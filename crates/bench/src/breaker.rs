//! The runaway-agent breaker: how long from the request that crosses a rule's threshold to the
//! runtime key refused, the trip in PostgreSQL (every replica refuses it from there) and the
//! runtime container frozen (Docker says `Paused`); and the gateway's latency with the breaker
//! counting every request against switched off, interleaved in the same run.
//!
//! A control plane served in this process on a scratch database, runtimes on the stub image,
//! the in-suite fake upstream.

use anyhow::{Context, Result};
use clap::Parser;
use clawloops_bench::load::quantile_index;
use clawloops_bench::seed::{Upstream, gateway_user};
use clawloops_bench::shared::{BenchEnv, InProcess, remove_labelled, scratch_database};
use clawloops_models::breaker::{self, Rules};
use clawloops_orchestrator::{Action, ObservedState, UserRef, repo};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench passphrase 1";
const UPSTREAM_KEY: &str = "sk-upstream-fake";
/// The repeat rule's threshold in the trip rounds.
const REPEATS: u32 = 5;

#[derive(Parser)]
#[command(about = "Breaker: threshold to key refused and container frozen; latency on vs off")]
struct Args {
    #[command(flatten)]
    env: BenchEnv,
    /// Trips measured.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Requests per latency block (four blocks each, on and off alternating).
    #[arg(long, default_value_t = 500)]
    requests: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (pool, drop_db) = scratch_database(&args.env.database_url).await?;
    let upstream = clawloops_testkit::upstream::start(Some(UPSTREAM_KEY)).await;
    let data = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut settings =
        clawloops_server::settings::Settings::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.listen_addr = addr;
    settings.public_url = format!("http://{addr}/").parse()?;
    settings.data_dir = data.path().to_path_buf();
    settings.secret_key_file = data.path().join("secret.key");
    settings.runtime.profile = clawloops_server::settings::RuntimeProfile::Stub;
    settings.runtime.image = clawloops_testkit::stub_image();
    settings.runtime.memory_mb = 128;
    let base_url = upstream.base_url();
    gateway_user(
        &pool,
        &settings.secret_key_file,
        &Upstream {
            base_url: &base_url,
            key: UPSTREAM_KEY,
            password: PASSWORD,
        },
        false,
    )
    .await?;
    let server = InProcess::start(&settings, pool.clone(), listener).await?;
    let instance = clawloops_server::serve::instance_id(&pool).await?;
    let outcome = run(&args, &server, &pool, &format!("http://{addr}")).await;
    server.stop();
    remove_labelled("org.clawloops.instance", &instance.to_string()).await;
    drop_db.await?;
    outcome
}

async fn run(args: &Args, server: &InProcess, pool: &sqlx::PgPool, base: &str) -> Result<()> {
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bench'")
        .fetch_one(pool)
        .await?;
    let orchestrator = server.state.app.orchestrator();
    orchestrator
        .request(
            UserRef {
                id: user,
                username: "bench",
            },
            Action::Start,
            false,
            "bench",
        )
        .await?;
    let container = wait_running(pool, user).await?;
    let key = {
        let mut conn = pool.acquire().await?;
        clawloops_models::keys::runtime_key(&mut conn, server.state.app.sealer(), user, false)
            .await?
    };
    let client = reqwest::Client::new();
    let chat = |content: String| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({
                "model": "fake-model",
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 16
            }))
            .send()
    };

    // Latency: the breaker counting every request (no rule can trip) against switched off.
    let counting = Rules {
        enabled: true,
        spend_per_minute_nano: None,
        requests_per_minute: None,
        repeats: None,
        errors: None,
        ..Rules::default()
    };
    let off = Rules {
        enabled: false,
        ..counting.clone()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for block in 0..8 {
        let on = block % 2 == 1;
        set_rules(pool, if on { &counting } else { &off }).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..args.requests {
            let started = Instant::now();
            let res = chat(format!("block {block} words {}", words(i))).await?;
            anyhow::ensure!(res.status().is_success(), "latency run: {}", res.status());
            res.bytes().await?;
            let took = started.elapsed().as_secs_f64() * 1000.0;
            if on { &mut with } else { &mut without }.push(took);
        }
    }
    let (p50_on, p99_on) = quantiles(&mut with);
    let (p50_off, p99_off) = quantiles(&mut without);
    println!("gateway latency, {} requests each, sequential:", with.len());
    println!("  breaker off:      p50 {p50_off:.3} ms   p99 {p99_off:.3} ms");
    println!("  breaker counting: p50 {p50_on:.3} ms   p99 {p99_on:.3} ms");
    println!(
        "  ratio on/off:     p50 {:.3}   p99 {:.3}",
        p50_on / p50_off,
        p99_on / p99_off
    );

    // Trips: the same request until the threshold, then how long until each effect.
    let trip_rules = Rules {
        repeats: Some(REPEATS),
        repeat_window_secs: 120,
        cooldown_minutes: 0,
        ..counting
    };
    set_rules(pool, &trip_rules).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docker = bollard::Docker::connect_with_local_defaults()?;
    let (mut refused, mut recorded, mut frozen) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let same = format!("round {round}: retry the failing step");
        for _ in 1..REPEATS {
            anyhow::ensure!(chat(same.clone()).await?.status().is_success());
        }
        // The request that crosses the threshold: the clock starts as it is sent.
        let crossing = Instant::now();
        anyhow::ensure!(chat(same.clone()).await?.status().is_success());
        let (mut key_at, mut row_at, mut frozen_at) = (None, None, None);
        while key_at.is_none() || row_at.is_none() || frozen_at.is_none() {
            anyhow::ensure!(
                crossing.elapsed() < Duration::from_secs(30),
                "round {round} never completed"
            );
            if key_at.is_none() && chat(same.clone()).await?.status() == 403 {
                key_at = Some(crossing.elapsed());
            }
            if row_at.is_none() && open_trip(pool, user).await? {
                row_at = Some(crossing.elapsed());
            }
            if frozen_at.is_none() {
                let state = docker.inspect_container(&container, None).await?.state;
                if state.and_then(|s| s.paused) == Some(true) {
                    frozen_at = Some(crossing.elapsed());
                }
            }
        }
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        println!(
            "trip {}: key refused {:.1} ms, trip in PostgreSQL {:.1} ms, container frozen {:.1} ms",
            round + 1,
            ms(key_at),
            ms(row_at),
            ms(frozen_at)
        );
        refused.push(ms(key_at));
        recorded.push(ms(row_at));
        frozen.push(ms(frozen_at));
        // Resume, as an admin would, and wait until the key works again.
        let mut conn = pool.acquire().await?;
        breaker::resume(&mut conn, user, "bench", true).await?;
        orchestrator.release(user, "bench").await?;
        let back = Instant::now();
        while !chat(format!("resumed {round} {}", words(round)))
            .await?
            .status()
            .is_success()
        {
            anyhow::ensure!(
                back.elapsed() < Duration::from_secs(10),
                "the key never worked again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "over {} trips (goal < 1000 ms): key refused max {:.1} ms, trip recorded max {:.1} ms, container frozen max {:.1} ms",
        args.rounds,
        worst(&refused),
        worst(&recorded),
        worst(&frozen)
    );
    Ok(())
}

/// Distinct request texts (numbers alone would make them the same to the repeat rule).
fn words(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "alpha", "beta", "gamma", "delta", "eta", "theta", "iota", "kappa",
    ];
    let mut n = i;
    let mut out = Vec::new();
    loop {
        out.push(WORDS[n % 8]);
        n /= 8;
        if n == 0 {
            break;
        }
    }
    out.join(" ")
}

fn quantiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[quantile_index(samples.len(), q)];
    (at(0.5), at(0.99))
}

async fn set_rules(pool: &sqlx::PgPool, rules: &Rules) -> Result<()> {
    let mut conn = pool.acquire().await?;
    breaker::save_settings(&mut conn, rules, None, "bench").await?;
    Ok(())
}

async fn open_trip(pool: &sqlx::PgPool, user: uuid::Uuid) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    Ok(breaker::open_for(&mut conn, user).await?.is_some())
}

/// Waits until the user's runtime runs; its container.
async fn wait_running(pool: &sqlx::PgPool, user: uuid::Uuid) -> Result<String> {
    let started = Instant::now();
    loop {
        let mut conn = pool.acquire().await?;
        if let Some(b) = repo::get(&mut conn, user).await?
            && b.observed() == ObservedState::Running
        {
            return b
                .container_id
                .context("a running runtime without a container");
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the runtime never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
