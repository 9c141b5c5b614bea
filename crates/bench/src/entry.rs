//! Forward-auth benchmark: how fast the control plane decides whether a workspace request may
//! pass, called directly (as Traefik calls it) and end to end through a real Traefik, each next
//! to a baseline measured in the same run on the same machine:
//!
//! - direct: `GET /internal/entry/auth` (a valid session for the owner's host → 200 with the
//!   identity headers) against `GET /healthz` of the same server (no decision at all);
//! - through Traefik: a workspace request (forward-auth, then the runtime) against the main
//!   host's `/healthz` (Traefik → control plane, no forward-auth).
//!
//! The load generator is oha (`../shared/bench/setup-tools.sh` installs it), one worker thread,
//! closed loop at 1 and 50 connections and a fixed rate with latency correction.

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_bench::load::{Figures, OhaLoad, Target, oha as run_oha, precise_fixed_rate};
use clawloops_bench::shared::{
    BenchEnv, InProcess, bench_user, docker, remove_labelled, scratch_database, session_of,
};
use clawloops_orchestrator::{Action, UserRef};
use clawloops_server::{serve, settings::Settings};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "clawloops.localhost";
const PASSWORD: &str = "bench passphrase 1";

#[derive(Parser)]
#[command(about = "Forward-auth decisions per second and latency, direct and through Traefik")]
struct Args {
    #[command(flatten)]
    env: BenchEnv,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// The fixed rate (requests per second) for the latency goal.
    #[arg(long, default_value_t = 5000)]
    rate: u32,
    /// Connections the fixed-rate runs may open (the shared harness's default).
    #[arg(long, default_value_t = 50)]
    rate_conc: u32,
    /// The entry proxy image (scripts/build-images.sh traefik).
    #[arg(long, default_value = clawloops_testkit::entry_proxy::TRAEFIK_IMAGE)]
    traefik_image: String,
}

/// One oha run against `url` with `headers` ("Name: value").
async fn oha(
    args: &Args,
    conc: u32,
    rate: Option<u32>,
    url: &str,
    headers: &[String],
) -> Result<Figures> {
    let target = Target {
        url: url.to_owned(),
        headers: headers
            .iter()
            .filter_map(|h| h.split_once(": "))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        body: None,
    };
    let load = OhaLoad {
        conc,
        seconds: args.duration,
        rate,
        requests: None,
    };
    run_oha(&args.env.oha, load, &target).await
}

fn row(label: &str, load: &str, f: Figures) {
    println!(
        "| {label:<44} | {load:<13} | {:>9.0} | {:>7.3} | {:>7.3} | {:>6} |",
        f.rps, f.p50_ms, f.p99_ms, f.not_2xx
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.env.oha.exists(),
        "oha not found at {} (run ../shared/bench/setup-tools.sh or pass --oha)",
        args.env.oha.display()
    );
    let (pool, drop_db) = scratch_database(&args.env.database_url).await?;
    let result = run(&args, pool.clone()).await;
    pool.close().await;
    drop_db.await?;
    result
}

async fn run(args: &Args, pool: sqlx::PgPool) -> Result<()> {
    let gateway = clawloops_testkit::entry_proxy::control_plane_ip().await?;
    let listener = tokio::net::TcpListener::bind((gateway, 0)).await?;
    let addr = listener.local_addr()?;
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let proxy = format!("clawloops-bench-entry-{}", addr.port());
    let data = tempfile::tempdir()?;

    let mut settings = Settings::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.listen_addr = addr;
    settings.public_url = format!("http://{DOMAIN}:{http_port}/").parse()?;
    settings.data_dir = data.path().to_path_buf();
    settings.trusted_proxies = vec!["172.16.0.0/12".parse()?];
    settings.entry.workspace_domain = Some(DOMAIN.into());
    settings.entry.cookie_domain = Some(DOMAIN.into());
    settings.entry.proxy_container = Some(proxy.clone());
    settings.runtime.browser_url = Some(format!("http://{{user}}.{DOMAIN}:{http_port}/"));
    settings.runtime.profile = clawloops_server::settings::RuntimeProfile::Stub;
    settings.runtime.image = format!("clawloops/runtime-stub:{}", env!("CARGO_PKG_VERSION"));
    settings.runtime.memory_mb = 128;
    let instance = serve::instance_id(&pool).await?;
    let server = InProcess::start(&settings, pool.clone(), listener).await?;
    let state = &server.state;

    // A user with a session.
    bench_user(&pool, PASSWORD).await?;
    let login = reqwest::Client::new()
        .post(format!("http://{addr}/api/auth/login"))
        .form(&[("username", "bench"), ("password", PASSWORD)])
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "login: {}", login.status());
    let session = session_of(&login).context("no session cookie")?;

    let outcome = async {
        start_traefik(args, &proxy, http_port, addr.port(), data.path()).await?;
        let user_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM users WHERE username = 'bench'")
                .fetch_one(&pool)
                .await?;
        let orchestrator = state.app.orchestrator();
        orchestrator
            .request(
                UserRef {
                    id: user_id,
                    username: "bench",
                },
                Action::Start,
                false,
                "bench",
            )
            .await?;
        let cookie = format!("Cookie: clawloops_session={session}");
        wait_routed(http_port, &cookie).await?;
        measure(args, addr, http_port, &cookie).await
    }
    .await;

    let _ = docker(&["rm", "-f", &proxy]).await;
    remove_labelled("org.clawloops.instance", &instance.to_string()).await;
    server.stop();
    outcome
}

async fn start_traefik(
    args: &Args,
    name: &str,
    http_port: u16,
    cp_port: u16,
    data: &std::path::Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data.join("traefik");
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o755))?;
    clawloops_testkit::entry_proxy::write_config(&dir, cp_port, None)?;
    let run = clawloops_testkit::entry_proxy::run_args(
        name,
        http_port,
        cp_port,
        DOMAIN,
        &dir,
        &args.traefik_image,
        // The shipped per-client limits (200/s) would turn this one-address load into 429s:
        // this measures proxying, so they are lifted far above what it sends.
        &[
            "CLAWLOOPS_ENTRY_RATE_PER_CLIENT=1000000".to_owned(),
            "CLAWLOOPS_ENTRY_BURST_PER_CLIENT=1000000".to_owned(),
            "CLAWLOOPS_ENTRY_IN_FLIGHT_PER_CLIENT=100000".to_owned(),
        ],
    );
    docker(&run.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    Ok(())
}

/// Waits until the user's runtime answers through Traefik (started, healthy, routed).
async fn wait_routed(http_port: u16, cookie: &str) -> Result<()> {
    let client = reqwest::Client::builder()
        .resolve(
            &format!("bench.{DOMAIN}"),
            SocketAddr::from(([127, 0, 0, 1], http_port)),
        )
        .build()?;
    let (name, value) = cookie.split_once(": ").context("cookie")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let res = client
            .get(format!("http://bench.{DOMAIN}:{http_port}/healthz"))
            .header(name, value)
            .send()
            .await;
        if res.as_ref().is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the workspace never answered through Traefik: {res:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn measure(args: &Args, addr: SocketAddr, http_port: u16, cookie: &str) -> Result<()> {
    let auth = format!("http://{addr}/internal/entry/auth");
    let health = format!("http://{addr}/healthz");
    let forwarded = vec![
        cookie.to_owned(),
        format!("X-Forwarded-Host: bench.{DOMAIN}:{http_port}"),
        "X-Forwarded-Method: GET".to_owned(),
        "X-Forwarded-Proto: http".to_owned(),
        "X-Forwarded-Uri: /chat".to_owned(),
        "X-Forwarded-For: 203.0.113.7".to_owned(),
    ];
    // Through Traefik: oha connects to 127.0.0.1 and names the host in the Host header.
    let main_host = format!("http://127.0.0.1:{http_port}/healthz");
    let workspace = main_host.clone();
    let main_headers = vec![format!("Host: {DOMAIN}:{http_port}")];
    let mut ws_headers = vec![
        format!("Host: bench.{DOMAIN}:{http_port}"),
        cookie.to_owned(),
    ];
    ws_headers.push("X-Forwarded-For: 203.0.113.7".to_owned());

    // Warm-up (discarded): connection pools, caches, JIT-free but page-cache warm.
    let _ = oha(args, 10, None, &auth, &forwarded).await?;
    let _ = oha(args, 10, None, &workspace, &ws_headers).await?;

    println!(
        "\nForward-auth, {} s per run, oha with one worker thread, {} cores, same run:\n",
        args.duration,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("| what | load | req/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---|---:|---:|---:|---:|");
    let base1 = oha(args, 1, None, &health, &[]).await?;
    row("direct: /healthz (baseline, no decision)", "c=1", base1);
    let auth1 = oha(args, 1, None, &auth, &forwarded).await?;
    row("direct: forward-auth decision (allow)", "c=1", auth1);
    let base50 = oha(args, 50, None, &health, &[]).await?;
    row("direct: /healthz (baseline, no decision)", "c=50", base50);
    let auth50 = oha(args, 50, None, &auth, &forwarded).await?;
    row("direct: forward-auth decision (allow)", "c=50", auth50);
    let fixed_load = format!("{}/s fixed", args.rate);
    let base_fixed = oha(args, args.rate_conc, Some(args.rate), &health, &[]).await?;
    row(
        "direct: /healthz (baseline, no decision)",
        &fixed_load,
        base_fixed,
    );
    let fixed_oha = oha(args, args.rate_conc, Some(args.rate), &auth, &forwarded).await?;
    row(
        "direct: forward-auth decision (allow)",
        &fixed_load,
        fixed_oha,
    );
    let pairs: Vec<(String, String)> = forwarded
        .iter()
        .filter_map(|h| h.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let precise_load = format!("{}/s exact", args.rate);
    let (health_url, auth_url, rate, secs) =
        (health.clone(), auth.clone(), args.rate, args.duration);
    let base_exact = tokio::task::spawn_blocking(move || {
        precise_fixed_rate(
            Target {
                url: health_url,
                headers: Vec::new(),
                body: None,
            },
            rate,
            secs,
        )
        .map(|f| f.0)
    })
    .await??;
    row(
        "direct: /healthz (baseline, no decision)",
        &precise_load,
        base_exact,
    );
    let fixed = tokio::task::spawn_blocking(move || {
        precise_fixed_rate(
            Target {
                url: auth_url,
                headers: pairs,
                body: None,
            },
            rate,
            secs,
        )
        .map(|f| f.0)
    })
    .await??;
    row(
        "direct: forward-auth decision (allow)",
        &precise_load,
        fixed,
    );
    let tbase1 = oha(args, 1, None, &main_host, &main_headers).await?;
    row("Traefik → control plane /healthz (baseline)", "c=1", tbase1);
    let tws1 = oha(args, 1, None, &workspace, &ws_headers).await?;
    row("Traefik → forward-auth → runtime", "c=1", tws1);
    let tbase50 = oha(args, 50, None, &main_host, &main_headers).await?;
    row(
        "Traefik → control plane /healthz (baseline)",
        "c=50",
        tbase50,
    );
    let tws50 = oha(args, 50, None, &workspace, &ws_headers).await?;
    row("Traefik → forward-auth → runtime", "c=50", tws50);

    println!();
    println!(
        "direct decisions: {:.0}/s at c=50 ({:.2} × the no-decision baseline's {:.0}/s); p99 {:.3} ms at exactly {}/s (baseline {:.3} ms; oha's 1 ms-timer figure {:.3} ms, baseline {:.3} ms)",
        auth50.rps,
        auth50.rps / base50.rps,
        base50.rps,
        fixed.p99_ms,
        args.rate,
        base_exact.p99_ms,
        fixed_oha.p99_ms,
        base_fixed.p99_ms
    );
    println!(
        "through Traefik: {:.0}/s at c=50 ({:.2} × plain proxying's {:.0}/s); p50 {:.3} ms vs {:.3} ms at c=1 (+{:.3} ms for forward-auth and the runtime hop)",
        tws50.rps,
        tws50.rps / tbase50.rps,
        tbase50.rps,
        tws1.p50_ms,
        tbase1.p50_ms,
        tws1.p50_ms - tbase1.p50_ms
    );
    println!(
        "goal (direct): ≥ 10,000 decisions/s — {}; p99 < 1 ms at 5,000/s — {}",
        if auth50.rps >= 10_000.0 {
            "met"
        } else {
            "NOT met"
        },
        if fixed.p99_ms < 1.0 && args.rate >= 5000 {
            "met"
        } else {
            "NOT met"
        }
    );
    let errors = [auth1, auth50, fixed_oha, fixed, tws1, tws50]
        .iter()
        .map(|f| f.not_2xx)
        .sum::<u64>();
    anyhow::ensure!(
        errors == 0,
        "{errors} requests were not allowed: the figures are not of allowed decisions"
    );
    Ok(())
}
