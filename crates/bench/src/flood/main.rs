//! Flood benchmark: does a stream of made-up credentials — 2,000 requests a second with random,
//! well-formed API keys and session ids — slow down or break sign-in and forward-auth?
//!
//! One control plane (release build, in this process, its default pool of 10 connections) and
//! three phases of the same length, each measuring a person signing in again and again and,
//! with each new session, two forward-auth decisions (the first needs a database lookup, the
//! second is answered from memory):
//!
//! - quiet: nothing else happens;
//! - own pools (this code): half the flood at the gateway (`/v1/models`, random `clk_…` keys),
//!   half at forward-auth (random session ids); their lookups queue on the gateway's and
//!   forward-auth's own small pools (`gateway_key_lookups`, `entry_session_lookups`);
//! - shared pool (before): the same HTTP requests with keys and session ids of the wrong shape
//!   (refused without a lookup, so the server does the same HTTP work), and beside them the
//!   same lookups at the same rate made on the main pool, as the code before this change made
//!   them for every unknown key and session id.
//!
//! The flood is open-loop (sent on a 1 ms timer whether or not answers came back), with at most
//! `--outstanding` requests in flight; what could not be sent is counted. The load generator
//! shares the machine's two cores with the server and PostgreSQL.
//!
//! With `--db-delay-ms`, the server reaches PostgreSQL through a relay in this process that
//! holds every chunk that many milliseconds each way: a database across a network (a managed
//! PostgreSQL is typically 0.5–2 ms away), where each lookup holds its connection longer.

use anyhow::Result;
use clap::Parser;
use clawloops_bench::shared::{InProcess, bench_user, scratch_database, session_of};
use clawloops_server::settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod junk;
mod relay;
use junk::flood_until;
use relay::delaying_relay;

const DOMAIN: &str = "clawloops.localhost";
const PASSWORD: &str = "bench passphrase 1";

#[derive(Parser)]
#[command(about = "Sign-in and forward-auth latency while random keys and session ids flood in")]
struct Args {
    /// PostgreSQL to create the scratch database in.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Made-up credentials per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The most flood requests in flight at once.
    #[arg(long, default_value_t = 2000)]
    outstanding: usize,
    /// Milliseconds each way between the server and PostgreSQL (0: the local socket).
    #[arg(long, default_value_t = 0)]
    db_delay_ms: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Flood {
    None,
    OwnPools,
    SharedPool,
}

/// Latencies (ms) of one kind of measured request, and how many failed.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    failed: u64,
}

impl Series {
    fn add(&mut self, started: Instant, ok: bool) {
        self.ms.push(started.elapsed().as_secs_f64() * 1000.0);
        self.failed += u64::from(!ok);
    }

    fn cell(&self) -> String {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            v.get(clawloops_bench::load::quantile_index(v.len(), q))
                .copied()
                .unwrap_or(f64::NAN)
        };
        format!(
            "{:>7.1} {:>8.1} {:>5}/{:<4}",
            pick(0.5),
            pick(0.99),
            self.failed,
            v.len()
        )
    }
}

#[derive(Default)]
struct Measured {
    login: Series,
    first: Series,
    cached: Series,
}

/// What the flood did.
#[derive(Default)]
struct FloodCount {
    sent: AtomicU64,
    not_sent: AtomicU64,
    refused_401: AtomicU64,
    busy_503: AtomicU64,
    other: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (pool, drop_db) = scratch_database(&args.database_url).await?;
    let result = run(&args, pool.clone()).await;
    pool.close().await;
    drop_db.await?;
    result
}

async fn run(args: &Args, scratch: sqlx::PgPool) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let data = tempfile::tempdir()?;
    let mut settings = Settings::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.listen_addr = addr;
    settings.public_url = format!("http://{DOMAIN}:{}/", addr.port()).parse()?;
    settings.data_dir = data.path().to_path_buf();
    settings.entry.workspace_domain = Some(DOMAIN.into());
    settings.entry.cookie_domain = Some(DOMAIN.into());
    settings.runtime.profile = clawloops_server::settings::RuntimeProfile::Stub;
    // The server's own pool, as configured by default (the scratch pool is larger).
    let mut options = (*scratch.connect_options()).clone();
    if args.db_delay_ms > 0 {
        let dir = options
            .get_socket()
            .cloned()
            .unwrap_or_else(|| options.get_host().into());
        let socket = dir.join(format!(".s.PGSQL.{}", options.get_port()));
        let port = delaying_relay(socket, Duration::from_millis(args.db_delay_ms)).await?;
        // A fresh set of options: a Unix socket, once set, would win over the host.
        options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(port)
            .username(options.get_username())
            .database(options.get_database().unwrap_or("postgres"))
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    }
    let pool = clawloops_server::database::pool_options(settings.database_max_connections)
        .connect_with(options)
        .await?;
    let server = InProcess::start(&settings, pool.clone(), listener).await?;
    bench_user(&pool, PASSWORD).await?;

    println!(
        "flood-bench: {} made-up credentials/s for {} s per phase; database {} ms away; main \
         pool {} connections, gateway_key_lookups {}, entry_session_lookups {}",
        args.rate,
        args.seconds,
        args.db_delay_ms,
        settings.database_max_connections,
        settings.gateway.key_lookups,
        settings.entry.session_lookups
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.outstanding)
        .timeout(Duration::from_secs(10))
        .build()?;
    // Warm-up: connections, caches, the password hasher's first run.
    let _ = measure(&client, addr, Duration::from_secs(2)).await?;
    let mut rows = Vec::new();
    for (label, flood) in [
        ("quiet (no flood)", Flood::None),
        ("flood, own pools (this code)", Flood::OwnPools),
        ("flood, shared pool (before)", Flood::SharedPool),
        ("quiet again", Flood::None),
    ] {
        let count = Arc::new(FloodCount::default());
        let stop = Arc::new(tokio::sync::Notify::new());
        let flooder = (flood != Flood::None).then(|| {
            tokio::spawn(flood_until(
                flood,
                args.rate,
                args.outstanding,
                client.clone(),
                addr,
                pool.clone(),
                count.clone(),
                stop.clone(),
            ))
        });
        let measured = measure(&client, addr, Duration::from_secs(args.seconds)).await?;
        stop.notify_one();
        if let Some(f) = flooder {
            f.await?;
        }
        rows.push((label, measured, count));
    }

    println!();
    println!(
        "| {:<30} | {:<25} | {:<25} | {:<25} | flood: sent, not sent, 401, 503, other |",
        "phase", "sign-in p50 p99 ms failed", "fwd-auth new session", "fwd-auth cached"
    );
    println!("|{}|", ["---"; 5].join("|"));
    for (label, m, c) in &rows {
        println!(
            "| {label:<30} | {} | {} | {} | {}, {}, {}, {}, {} |",
            m.login.cell(),
            m.first.cell(),
            m.cached.cell(),
            c.sent.load(Ordering::Relaxed),
            c.not_sent.load(Ordering::Relaxed),
            c.refused_401.load(Ordering::Relaxed),
            c.busy_503.load(Ordering::Relaxed),
            c.other.load(Ordering::Relaxed),
        );
    }
    println!(
        "\n(failed = not 200 for sign-in; 503/500 for forward-auth, whose other answers — here \
         409, the runtime is not running — are decisions made)"
    );

    server.stop();
    pool.close().await;
    Ok(())
}

/// Signs in, then asks forward-auth twice with the new session, over and over for `length`.
async fn measure(client: &reqwest::Client, addr: SocketAddr, length: Duration) -> Result<Measured> {
    let mut m = Measured::default();
    let end = Instant::now() + length;
    let auth = format!("http://{addr}/internal/entry/auth");
    while Instant::now() < end {
        let started = Instant::now();
        let login = client
            .post(format!("http://{addr}/api/auth/login"))
            .form(&[("username", "bench"), ("password", PASSWORD)])
            .send()
            .await;
        let session = login.as_ref().ok().and_then(session_of);
        let ok = login.is_ok_and(|r| r.status().is_success());
        m.login.add(started, ok);
        if let Some(session) = session {
            for series in [&mut m.first, &mut m.cached] {
                let started = Instant::now();
                let res = client
                    .get(&auth)
                    .header(
                        "x-forwarded-host",
                        format!("bench.{DOMAIN}:{}", addr.port()),
                    )
                    .header("cookie", format!("clawloops_session={session}"))
                    .send()
                    .await;
                let decided = res.is_ok_and(|r| r.status().as_u16() < 500);
                series.add(started, decided);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(m)
}
