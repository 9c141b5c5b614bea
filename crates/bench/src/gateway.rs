//! Model gateway benchmark. One run, one machine, one fast fake upstream (the shared harness's
//! `fake-upstream`), three ways to reach it:
//!
//! - direct: the fake upstream itself (the baseline);
//! - ClawLoops: our gateway (`clawloops serve`, release build, its own process) with a personal
//!   key, per-user limits (requests and tokens per minute, a token budget) and usage
//!   accounting all switched on;
//! - LiteLLM: the proxy (pinned, one worker, master key, no database), as the reference.
//!
//! For each: latency at fixed rates (whole answer for plain requests, first byte for streamed
//! ones), the most it sustains closed-loop without errors, and resident memory; then a million
//! requests through our gateway with its memory sampled along the way.

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_bench::load::{Figures, OhaLoad, Target, oha, precise_fixed_rate, rss_mib};
use clawloops_bench::shared::{BenchEnv, bench_user, scratch_database};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench passphrase 1";
const UPSTREAM_KEY: &str = "sk-upstream-fake";
const LITELLM_KEY: &str = "sk-bench-master";

#[derive(Parser)]
#[command(
    about = "Latency added, maximum rate and memory: direct vs ClawLoops' gateway vs LiteLLM"
)]
struct Args {
    #[command(flatten)]
    env: BenchEnv,
    /// The shared harness's fake upstream (`setup-litellm.sh install` builds it).
    #[arg(
        long,
        env = "FAKE_UPSTREAM",
        default_value = "/tmp/clawloops-bench/fake-upstream-target/release/fake-upstream"
    )]
    fake_upstream: PathBuf,
    /// The litellm executable (scripts/test.sh installs the pinned one).
    #[arg(long, env = "LITELLM_BIN")]
    litellm: PathBuf,
    /// The clawloops binary (default: next to this one; build it with --release too).
    #[arg(long)]
    clawloops: Option<PathBuf>,
    /// Seconds per fixed-rate run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Fixed rates for the direct and ClawLoops runs.
    #[arg(long, value_delimiter = ',', default_values_t = [25, 100, 1000])]
    rates: Vec<u32>,
    /// The fixed rate LiteLLM is measured at (well under its maximum).
    #[arg(long, default_value_t = 10)]
    litellm_rate: u32,
    /// Leave the user without limits (to see what enforcing them costs).
    #[arg(long)]
    no_limits: bool,
    /// Requests for the memory-flatness run (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    million: u64,
}

/// A child process killed when dropped.
struct Child(tokio::process::Child);

impl Child {
    fn pid(&self) -> u32 {
        self.0.id().unwrap_or(0)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(url: &str, within: Duration) -> Result<()> {
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

fn spawn(program: &Path, args: &[&str], dir: &Path, env: &[(&str, String)]) -> Result<Child> {
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

fn body(stream: bool) -> String {
    format!(
        r#"{{"model":"fake-model","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":16,"stream":{stream}}}"#
    )
}

fn target(base: &str, key: Option<&str>, stream: bool) -> Target {
    Target {
        url: format!("{base}/chat/completions"),
        headers: key
            .map(|k| vec![("Authorization".to_owned(), format!("Bearer {k}"))])
            .unwrap_or_default(),
        body: Some(body(stream)),
    }
}

/// Plain and streamed latency at one fixed rate.
struct AtRate {
    plain: Figures,
    first_byte: Figures,
}

async fn at_rate(base: &str, key: Option<&str>, rate: u32, seconds: u64) -> Result<AtRate> {
    let plain_target = target(base, key, false);
    let stream_target = target(base, key, true);
    let plain =
        tokio::task::spawn_blocking(move || precise_fixed_rate(plain_target, rate, seconds))
            .await??
            .0;
    let first_byte =
        tokio::task::spawn_blocking(move || precise_fixed_rate(stream_target, rate, seconds))
            .await??
            .1;
    Ok(AtRate { plain, first_byte })
}

/// The highest error-free closed-loop rate over `concs`.
async fn max_rate(args: &Args, target: &Target, concs: &[u32]) -> Result<(Figures, u32)> {
    let mut best: Option<(Figures, u32)> = None;
    let mut misses = 0;
    for &conc in concs {
        let f = oha(
            &args.env.oha,
            OhaLoad {
                conc,
                seconds: 5,
                rate: None,
                requests: None,
            },
            target,
        )
        .await?;
        if f.not_2xx > 0 {
            break;
        }
        // Two steps in a row without a 3 % gain end the ramp (one could be noise).
        if best.is_none_or(|(b, _)| f.rps > b.rps * 1.03) {
            best = Some((f, conc));
            misses = 0;
        } else {
            misses += 1;
            if best.is_some_and(|(b, _)| f.rps > b.rps) {
                best = Some((f, conc));
            }
            if misses == 2 {
                break;
            }
        }
    }
    best.context("no error-free run")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for (what, path) in [
        ("oha", &args.env.oha),
        ("fake-upstream", &args.fake_upstream),
        ("litellm", &args.litellm),
    ] {
        anyhow::ensure!(
            path.exists(),
            "{what} not found at {} (see --help)",
            path.display()
        );
    }
    let clawloops = match &args.clawloops {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("clawloops"),
    };
    anyhow::ensure!(
        clawloops.exists(),
        "{} not found: cargo build --release -p server --bin clawloops",
        clawloops.display()
    );
    let (pool, drop_db) = scratch_database(&args.env.database_url).await?;
    let result = run(&args, &clawloops, pool.clone()).await;
    pool.close().await;
    drop_db.await?;
    result
}

async fn run(args: &Args, clawloops: &Path, pool: sqlx::PgPool) -> Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path();

    // The fake upstream (one thread: the rest of the machine is for what is measured).
    let fake_port = free_port()?;
    let _fake = spawn(
        &args.fake_upstream,
        &[
            "--listen",
            &format!("127.0.0.1:{fake_port}"),
            "--threads",
            "1",
        ],
        dir,
        &[],
    )?;
    let direct = format!("http://127.0.0.1:{fake_port}/v1");
    wait_ready(
        &format!("http://127.0.0.1:{fake_port}/health"),
        Duration::from_secs(10),
    )
    .await?;

    // LiteLLM in front of it.
    let ll_port = free_port()?;
    std::fs::write(
        dir.join("litellm.yaml"),
        format!(
            "model_list:\n  - model_name: fake-model\n    litellm_params:\n      model: openai/fake-model\n      api_base: {direct}\n      api_key: {UPSTREAM_KEY}\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
        ),
    )?;
    let litellm = spawn(
        &args.litellm,
        &[
            "--config",
            "litellm.yaml",
            "--host",
            "127.0.0.1",
            "--port",
            &ll_port.to_string(),
        ],
        dir,
        &[("LITELLM_LOCAL_MODEL_COST_MAP", "True".into())],
    )?;
    let via_litellm = format!("http://127.0.0.1:{ll_port}/v1");

    // ClawLoops: a user with limits and a key, the fake upstream registered as a model.
    let key_file = dir.join("secret.key");
    let sealer = clawloops_models::Sealer::load_or_create(&key_file)?;
    bench_user(&pool, PASSWORD).await?;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bench'")
        .fetch_one(&pool)
        .await?;
    let credential = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO provider_credentials (id, name, sealed, hint) VALUES ($1, 'fake', $2, '…fake')")
        .bind(credential)
        .bind(sealer.seal(clawloops_models::seal::CREDENTIAL, credential, UPSTREAM_KEY)?)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO models (alias, upstream_kind, base_url, upstream_model, credential_id, is_default,
             price_input_micro, price_output_micro)
         VALUES ('fake-model', 'openai-compatible', $1, 'fake-model', $2, true, 150000, 600000)",
    )
    .bind(&direct)
    .bind(credential)
    .execute(&pool)
    .await?;
    if !args.no_limits {
        sqlx::query(
            "INSERT INTO user_limits (user_id, rpm, tpm, budget_tokens, budget_period)
             VALUES ($1, 1000000, 2000000000, 1000000000000, 'month')",
        )
        .bind(user_id)
        .execute(&pool)
        .await?;
    }
    let key = clawloops_models::keys::generate()?;
    sqlx::query("INSERT INTO api_keys (id, user_id, kind, name, prefix, hash) VALUES ($1, $2, 'personal', 'bench', $3, $4)")
        .bind(key.id)
        .bind(user_id)
        .bind(&key.prefix)
        .bind(&key.hash)
        .execute(&pool)
        .await?;
    let port = free_port()?;
    // The scratch database, on the same server as DATABASE_URL.
    let mut db_url = reqwest::Url::parse(&args.env.database_url)?;
    db_url.set_path(&format!(
        "/{}",
        pool.connect_options().get_database().unwrap_or_default()
    ));
    let ours_proc = spawn(
        clawloops,
        &["serve"],
        dir,
        &[
            ("CLAWLOOPS_LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("CLAWLOOPS_DATABASE_URL", db_url.to_string()),
            ("CLAWLOOPS_DATA_DIR", dir.join("data").display().to_string()),
            ("CLAWLOOPS_SECRET_KEY_FILE", key_file.display().to_string()),
            ("CLAWLOOPS_LOG_LEVEL", "warn".into()),
            ("CLAWLOOPS_RUNTIME_PROFILE", "stub".into()),
            // One key drives up to 256 connections here: the per-key cap is a policy, not part
            // of what this measures.
            ("CLAWLOOPS_GATEWAY_KEY_CONCURRENCY", "1024".into()),
        ],
    )?;
    let ours = format!("http://127.0.0.1:{port}/v1");
    wait_ready(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(60),
    )
    .await?;
    wait_ready(
        &format!("http://127.0.0.1:{ll_port}/health/liveliness"),
        Duration::from_secs(120),
    )
    .await?;
    let k = Some(key.secret.as_str());
    let ll = Some(LITELLM_KEY);

    // Every target answers a plain and a streamed request correctly first.
    let client = reqwest::Client::builder().no_proxy().build()?;
    for (name, base, key) in [
        ("direct", &direct, None),
        ("ClawLoops", &ours, k),
        ("LiteLLM", &via_litellm, ll),
    ] {
        for stream in [false, true] {
            let t = target(base, key, stream);
            let mut req = client
                .post(&t.url)
                .header("content-type", "application/json")
                .body(body(stream));
            for (n, v) in &t.headers {
                req = req.header(n, v);
            }
            let res = req.send().await?;
            let status = res.status();
            let text = res.text().await?;
            anyhow::ensure!(status.is_success(), "{name} check: {status} {text}");
            anyhow::ensure!(
                if stream {
                    text.contains("[DONE]")
                } else {
                    text.contains("\"usage\"")
                },
                "{name} check: {text}"
            );
        }
    }
    let rss_idle = rss_mib(ours_proc.pid());
    let ll_rss_idle = rss_mib(litellm.pid());
    // Warm-up (discarded).
    let _ = oha(
        &args.env.oha,
        OhaLoad {
            conc: 16,
            seconds: 3,
            rate: None,
            requests: None,
        },
        &target(&ours, k, false),
    )
    .await?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nModel gateway, one run on {cores} cores. Fixed rates: exact open-loop pacing, {} s each; latency of the whole answer (plain) and of its first byte (streamed).\n",
        args.duration
    );
    println!(
        "| target | rate | plain p50 ms | plain p99 ms | stream 1st byte p50 ms | stream 1st byte p99 ms | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, rate: u32, r: &AtRate| {
        println!(
            "| {name} | {rate}/s | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            r.plain.p50_ms,
            r.plain.p99_ms,
            r.first_byte.p50_ms,
            r.first_byte.p99_ms,
            r.plain.not_2xx + r.first_byte.not_2xx
        );
    };
    let mut added = Vec::new();
    for &rate in &args.rates {
        let d = at_rate(&direct, None, rate, args.duration).await?;
        row("direct", rate, &d);
        let o = at_rate(&ours, k, rate, args.duration).await?;
        row("ClawLoops", rate, &o);
        added.push((rate, d, o));
    }
    let d_ll = at_rate(&direct, None, args.litellm_rate, args.duration).await?;
    row("direct", args.litellm_rate, &d_ll);
    let l = at_rate(&via_litellm, ll, args.litellm_rate, args.duration).await?;
    row("LiteLLM", args.litellm_rate, &l);

    println!("\nAdded latency (target minus direct, same rate, same run):\n");
    println!("| through | rate | plain p50 | plain p99 | 1st byte p50 | 1st byte p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (rate, d, o) in &added {
        println!(
            "| ClawLoops | {rate}/s | +{:.3} ms | +{:.3} ms | +{:.3} ms | +{:.3} ms |",
            o.plain.p50_ms - d.plain.p50_ms,
            o.plain.p99_ms - d.plain.p99_ms,
            o.first_byte.p50_ms - d.first_byte.p50_ms,
            o.first_byte.p99_ms - d.first_byte.p99_ms
        );
    }
    println!(
        "| LiteLLM | {}/s | +{:.3} ms | +{:.3} ms | +{:.3} ms | +{:.3} ms |",
        args.litellm_rate,
        l.plain.p50_ms - d_ll.plain.p50_ms,
        l.plain.p99_ms - d_ll.plain.p99_ms,
        l.first_byte.p50_ms - d_ll.first_byte.p50_ms,
        l.first_byte.p99_ms - d_ll.first_byte.p99_ms
    );

    println!(
        "\nMost sustained without errors (closed loop, oha one worker thread, 5 s per step):\n"
    );
    println!("| target | mode | req/s | at connections | p99 ms |");
    println!("|---|---|---:|---:|---:|");
    let wide = [8, 16, 32, 64, 128, 256];
    let mut maxes = Vec::new();
    for (name, base, key, concs) in [
        ("direct", &direct, None, &wide[..]),
        ("ClawLoops", &ours, k, &wide[..]),
        ("LiteLLM", &via_litellm, ll, &[1, 2, 4, 8, 16, 32][..]),
    ] {
        for stream in [false, true] {
            let (f, c) = max_rate(args, &target(base, key, stream), concs).await?;
            println!(
                "| {name} | {} | {:.0} | {c} | {:.2} |",
                if stream { "stream" } else { "plain" },
                f.rps,
                f.p99_ms
            );
            maxes.push((name, stream, f.rps));
        }
    }
    let rss_loaded = rss_mib(ours_proc.pid());
    let ll_rss_loaded = rss_mib(litellm.pid());
    println!(
        "\nResident memory: ClawLoops {rss_idle:.1} MiB idle → {rss_loaded:.1} MiB after the runs; LiteLLM {ll_rss_idle:.0} → {ll_rss_loaded:.0} MiB."
    );

    // A million requests, memory sampled as they go.
    let mut samples = Vec::new();
    if args.million > 0 {
        let pid = ours_proc.pid();
        let sampler = tokio::spawn(async move {
            let mut out = Vec::new();
            let start = Instant::now();
            loop {
                out.push((start.elapsed().as_secs(), rss_mib(pid)));
                tokio::time::sleep(Duration::from_secs(5)).await;
                if out.len() > 2000 {
                    break out;
                }
            }
        });
        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_events")
            .fetch_one(&pool)
            .await?;
        let started = Instant::now();
        let f = oha(
            &args.env.oha,
            OhaLoad {
                conc: 64,
                seconds: 0,
                rate: None,
                requests: Some(args.million),
            },
            &target(&ours, k, false),
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        sampler.abort();
        let after_rss = rss_mib(pid);
        // The usage log catches up within moments.
        let mut logged = 0;
        for _ in 0..120 {
            logged = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM usage_events")
                .fetch_one(&pool)
                .await?
                - before;
            if logged >= i64::try_from(args.million).unwrap_or(i64::MAX) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        samples.push(after_rss);
        println!(
            "\n{} requests through ClawLoops in {secs:.0} s ({:.0}/s, {} errors); {} usage rows written; resident memory {rss_loaded:.1} MiB before → {after_rss:.1} MiB after.",
            args.million, f.rps, f.not_2xx, logged
        );
    }

    let best = |name: &str, stream: bool| {
        maxes
            .iter()
            .find(|m| m.0 == name && m.1 == stream)
            .map_or(0.0, |m| m.2)
    };
    let (ours_plain, ours_stream) = (best("ClawLoops", false), best("ClawLoops", true));
    let (ll_plain, ll_stream) = (best("LiteLLM", false), best("LiteLLM", true));
    let p99_1000 = added
        .iter()
        .find(|(r, _, _)| *r == 1000)
        .map(|(_, d, o)| o.plain.p99_ms - d.plain.p99_ms);
    let peak = samples.iter().copied().fold(rss_loaded, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nGoals:");
    if let Some(p) = p99_1000 {
        println!(
            "- added p99 under 1 ms at 1,000/s: +{p:.3} ms — {}",
            verdict(p < 1.0)
        );
    }
    println!(
        "- plain ≥ 5,000/s and ≥ 50 × LiteLLM: {ours_plain:.0}/s = {:.0} × LiteLLM's {ll_plain:.0}/s — {}",
        ours_plain / ll_plain.max(1.0),
        verdict(ours_plain >= 5000.0 && ours_plain >= 50.0 * ll_plain)
    );
    println!(
        "- streaming ≥ 2,000/s and ≥ 50 × LiteLLM: {ours_stream:.0}/s = {:.0} × LiteLLM's {ll_stream:.0}/s — {}",
        ours_stream / ll_stream.max(1.0),
        verdict(ours_stream >= 2000.0 && ours_stream >= 50.0 * ll_stream)
    );
    println!(
        "- resident memory under 60 MiB: peak {peak:.1} MiB — {}",
        verdict(peak < 60.0)
    );
    Ok(())
}
