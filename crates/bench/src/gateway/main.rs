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

use anyhow::Result;
use clap::Parser;
use clawloops_bench::load::{OhaLoad, oha, rss_mib};
use clawloops_bench::process::{spawn, wait_ready};
use clawloops_bench::shared::{BenchEnv, scratch_database};
use clawloops_testkit::free_port;

mod measure;
mod million;
mod report;
use measure::{AtRate, at_rate, body, max_rate, target};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let fake_port = free_port();
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
    let ll_port = free_port();
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
    let upstream = clawloops_bench::seed::Upstream {
        base_url: &direct,
        key: UPSTREAM_KEY,
        password: PASSWORD,
    };
    let key =
        clawloops_bench::seed::gateway_user(&pool, &key_file, &upstream, !args.no_limits).await?;
    let port = free_port();
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

    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
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

    let samples = if args.million > 0 {
        vec![
            million::run(
                args,
                &pool,
                ours_proc.pid(),
                &target(&ours, k, false),
                rss_loaded,
            )
            .await?,
        ]
    } else {
        Vec::new()
    };

    report::goals(&added, &maxes, &samples, rss_loaded);
    Ok(())
}
