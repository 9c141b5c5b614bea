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

mod shared;

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_orchestrator::{Action, UserRef};
use clawloops_server::{http, serve, settings::Settings};
use serde_json::Value;
use shared::{docker, scratch_database};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DOMAIN: &str = "clawloops.localhost";
const PASSWORD: &str = "bench passphrase 1";

#[derive(Parser)]
#[command(about = "Forward-auth decisions per second and latency, direct and through Traefik")]
struct Args {
    /// PostgreSQL to create the scratch database in.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The oha binary.
    #[arg(
        long,
        env = "OHA",
        default_value = "/tmp/clawloops-bench/tools/bin/oha"
    )]
    oha: PathBuf,
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
    #[arg(long, default_value = "clawloops/traefik:3.7.15")]
    traefik_image: String,
}

/// One oha run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    not_2xx: u64,
}

async fn oha(
    args: &Args,
    conc: u32,
    rate: Option<u32>,
    url: &str,
    headers: &[String],
) -> Result<Figures> {
    let mut cmd = tokio::process::Command::new(&args.oha);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--worker-threads",
        "1",
        "-w",
    ])
    .args([
        "-t",
        "10s",
        "-z",
        &format!("{}s", args.duration),
        "-c",
        &conc.to_string(),
    ]);
    if let Some(rate) = rate {
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .arg(url)
        .output()
        .await
        .context("running oha (see --oha)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let doc: Value = serde_json::from_slice(&out.stdout).context("oha's JSON")?;
    let ms = |key: &str| doc["latencyPercentiles"][key].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let not_2xx = doc["statusCodeDistribution"]
        .as_object()
        .map(|codes| {
            codes
                .iter()
                .filter(|(code, _)| !code.starts_with('2'))
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
        + doc["errorDistribution"]
            .as_object()
            .map(|e| e.values().map(|n| n.as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
    Ok(Figures {
        rps: doc["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        not_2xx,
    })
}

/// An open-loop run at an exactly even fixed rate: a pacing thread wakes at each request's due
/// time (nanosleep, accurate to tens of microseconds) and hands it to a single-threaded async
/// client, which sends it over a pool of keep-alive connections. Latency counts from the due
/// time, so a stalled server cannot hide its queueing. oha's fixed-rate mode sends on a 1 ms
/// timer instead, i.e. in bursts of rate/1000 requests, and counts from the tick: at 5,000/s
/// that alone puts half a millisecond of queueing into its figures.
fn precise_fixed_rate(
    url: String,
    headers: Vec<(String, String)>,
    rate: u32,
    seconds: u64,
) -> Result<Figures> {
    // (due time, counted): the first second warms the connection pool and is not counted.
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, bool)>();
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let client_thread = std::thread::spawn(move || -> Result<Figures> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut header_map = reqwest::header::HeaderMap::new();
            for (name, value) in &headers {
                header_map.insert(
                    reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
                    reqwest::header::HeaderValue::from_str(value)?,
                );
            }
            let client = reqwest::Client::builder()
                .default_headers(header_map)
                .pool_max_idle_per_host(256)
                .no_proxy()
                .build()?;
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(u32, bool)>();
            let mut started = Instant::now();
            while let Some((due, counted)) = due_rx.recv().await {
                if !counted {
                    started = Instant::now();
                }
                let (client, url, done) = (client.clone(), url.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let ok = match client.get(&url).send().await {
                        Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let micros = u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if counted {
                        let _ = done.send((micros, ok));
                    }
                });
            }
            drop(done_tx);
            let mut micros = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
            let mut failed = 0u64;
            while let Some((us, ok)) = done_rx.recv().await {
                micros.push(us);
                failed += u64::from(!ok);
            }
            let elapsed = started.elapsed().as_secs_f64();
            micros.sort_unstable();
            let pick = |q: f64| {
                let i =
                    ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len().max(1)) - 1;
                micros.get(i).map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
            };
            Ok(Figures {
                rps: micros.len() as f64 / elapsed,
                p50_ms: pick(0.50),
                p99_ms: pick(0.99),
                not_2xx: failed,
            })
        })
    });
    // The pacer.
    let warm = u64::from(rate);
    let start = Instant::now();
    for i in 0..warm + total {
        let due = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if due_tx.send((due, i >= warm)).is_err() {
            break;
        }
    }
    drop(due_tx);
    client_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
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
        args.oha.exists(),
        "oha not found at {} (run ../shared/bench/setup-tools.sh or pass --oha)",
        args.oha.display()
    );
    let (pool, drop_db) = scratch_database(&args.database_url).await?;
    let result = run(&args, pool.clone()).await;
    pool.close().await;
    drop_db.await?;
    result
}

async fn run(args: &Args, pool: sqlx::PgPool) -> Result<()> {
    let gateway: std::net::IpAddr = docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ])
    .await?
    .parse()?;
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
    let state = serve::server_state(&settings, pool.clone(), instance).await?;
    let background = serve::spawn_background(&state);
    let router = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // A user with a session.
    app::ssr::bootstrap::create_admin(
        &pool,
        "bench",
        app::ssr::bootstrap::InitialPassword::Given(PASSWORD.into()),
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let login = reqwest::Client::new()
        .post(format!("http://{addr}/api/auth/login"))
        .form(&[("username", "bench"), ("password", PASSWORD)])
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "login: {}", login.status());
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("clawloops_session="))
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_owned();

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
    for kind in [["ps", "-aq"], ["network", "ls"], ["volume", "ls"]] {
        let mut list = kind.to_vec();
        if kind[0] == "network" || kind[0] == "volume" {
            list.push("-q");
        }
        let filter = format!("label=org.clawloops.instance={instance}");
        list.extend(["--filter", &filter]);
        if let Ok(ids) = docker(&list).await {
            for id in ids.lines() {
                let rm: &[&str] = match kind[0] {
                    "ps" => &["rm", "-f"],
                    "network" => &["network", "rm"],
                    _ => &["volume", "rm", "-f"],
                };
                let mut argv = rm.to_vec();
                argv.push(id);
                let _ = docker(&argv).await;
            }
        }
    }
    for task in background {
        task.abort();
    }
    server.abort();
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
    clawloops_server::entry_proxy::write_config(&dir, cp_port, None)?;
    let run = clawloops_server::entry_proxy::run_args(
        name,
        http_port,
        cp_port,
        DOMAIN,
        &dir,
        &args.traefik_image,
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
        std::thread::available_parallelism().map_or(0, |n| n.get())
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
    let base_exact =
        tokio::task::spawn_blocking(move || precise_fixed_rate(health_url, Vec::new(), rate, secs))
            .await??;
    row(
        "direct: /healthz (baseline, no decision)",
        &precise_load,
        base_exact,
    );
    let fixed =
        tokio::task::spawn_blocking(move || precise_fixed_rate(auth_url, pairs, rate, secs))
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
