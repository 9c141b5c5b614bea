//! Several control-plane replicas: how long the reconciler is without a leader when the leader
//! is killed (`kill -9`, repeated: median and max), and forward-auth'd workspace requests
//! through a real Traefik with one replica against three (load-balanced, health-checked), in
//! the same run on the same machine.
//!
//! The replicas are `clawloops serve` processes (the binary next to this one: build both with
//! the same profile) on a scratch database; runtimes are the stub image.

use anyhow::{Context, Result, bail};
use clap::Parser;
use clawloops_bench::load::{OhaLoad, Target, oha};
use clawloops_bench::process::{Child, spawn, wait_ready};
use clawloops_bench::shared::{
    BenchEnv, bench_user, docker, remove_labelled, scratch_database, session_of,
};
use clawloops_testkit::entry_proxy;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DOMAIN: &str = "clawloops.localhost";
const PASSWORD: &str = "bench passphrase 1";
const REPLICAS: usize = 3;

#[derive(Parser)]
#[command(about = "Reconciler failover time and forward-auth through Traefik, 1 vs 3 replicas")]
struct Args {
    #[command(flatten)]
    env: BenchEnv,
    /// Times the leader is killed.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections of the throughput runs.
    #[arg(long, default_value_t = 50)]
    conc: u32,
    /// The `clawloops` binary (default: next to this benchmark).
    #[arg(long)]
    clawloops: Option<PathBuf>,
}

struct Replicas {
    bin: PathBuf,
    ip: IpAddr,
    ports: Vec<u16>,
    env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl Replicas {
    fn launch(&mut self, i: usize) -> Result<()> {
        let dir = self.dir.path().join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir)?;
        let mut env = self.env.clone();
        env.push((
            "CLAWLOOPS_LISTEN_ADDR",
            format!("{}:{}", self.ip, self.ports[i]),
        ));
        env.push(("CLAWLOOPS_DATA_DIR", dir.display().to_string()));
        self.children[i] = Some(spawn(&self.bin, &["serve"], &dir, &env)?);
        Ok(())
    }

    async fn ready(&self, i: usize) -> Result<()> {
        wait_ready(
            &format!("http://{}:{}/readyz", self.ip, self.ports[i]),
            Duration::from_secs(60),
        )
        .await
    }

    /// The replicas that say they lead the reconciler.
    async fn leaders(&self, client: &reqwest::Client) -> Vec<usize> {
        let mut leaders = Vec::new();
        for (i, port) in self.ports.iter().enumerate() {
            if self.children[i].is_none() {
                continue;
            }
            let url = format!("http://{}:{port}/metrics", self.ip);
            if let Ok(res) = client.get(url).send().await
                && res
                    .text()
                    .await
                    .is_ok_and(|t| t.lines().any(|l| l == "clawloops_reconciler_leader 1"))
            {
                leaders.push(i);
            }
        }
        leaders
    }

    async fn one_leader(&self, client: &reqwest::Client) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let [one] = self.leaders(client).await[..] {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!("no single leader within a minute");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
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
    let result = run(&args, &pool).await;
    pool.close().await;
    drop_db.await?;
    result
}

async fn run(args: &Args, pool: &sqlx::PgPool) -> Result<()> {
    let bin = match &args.clawloops {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("clawloops"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found (cargo build --bin clawloops, same profile)",
        bin.display()
    );
    let ip = entry_proxy::control_plane_ip().await?;
    let http_port = clawloops_testkit::free_port();
    let proxy = format!("clawloops-bench-replicas-{http_port}");
    let database_url =
        sqlx::ConnectOptions::to_url_lossy(pool.connect_options().as_ref()).to_string();
    let key = {
        use base64::Engine as _;
        let bytes = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let env = vec![
        ("CLAWLOOPS_DATABASE_URL", database_url),
        ("CLAWLOOPS_SECRET_KEY", key),
        (
            "CLAWLOOPS_PUBLIC_URL",
            format!("http://{DOMAIN}:{http_port}/"),
        ),
        ("CLAWLOOPS_WORKSPACE_DOMAIN", DOMAIN.to_owned()),
        (
            "CLAWLOOPS_TRUSTED_PROXIES",
            r#"["172.16.0.0/12"]"#.to_owned(),
        ),
        ("CLAWLOOPS_ENTRY_PROXY_CONTAINER", proxy.clone()),
        (
            "CLAWLOOPS_RUNTIME_BROWSER_URL",
            format!("http://{{user}}.{DOMAIN}:{http_port}/"),
        ),
        ("CLAWLOOPS_RUNTIME_PROFILE", "stub".to_owned()),
        ("CLAWLOOPS_RUNTIME_IMAGE", clawloops_testkit::stub_image()),
        ("CLAWLOOPS_RUNTIME_MEMORY_MB", "128".to_owned()),
        ("CLAWLOOPS_RUNTIME_FIREWALL", "external".to_owned()),
        ("CLAWLOOPS_LEADER_LEASE_SECS", "2".to_owned()),
        ("CLAWLOOPS_LOG_LEVEL", "warn".to_owned()),
    ];
    let mut replicas = Replicas {
        bin,
        ip,
        ports: (0..REPLICAS)
            .map(|_| clawloops_testkit::free_port())
            .collect(),
        env,
        dir: tempfile::tempdir()?,
        children: (0..REPLICAS).map(|_| None).collect(),
    };
    for i in 0..REPLICAS {
        replicas.launch(i)?;
        replicas.ready(i).await?;
    }
    let instance: uuid::Uuid = sqlx::query_scalar("SELECT id FROM instance")
        .fetch_one(pool)
        .await?;
    let outcome = async {
        failover(args, &mut replicas).await?;
        throughput(args, &replicas, pool, &proxy, http_port).await
    }
    .await;
    let _ = docker(&["rm", "-f", &proxy]).await;
    drop(replicas);
    remove_labelled("org.clawloops.instance", &instance.to_string()).await;
    outcome
}

async fn failover(args: &Args, replicas: &mut Replicas) -> Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut took = Vec::new();
    for _ in 0..args.rounds {
        let leader = replicas.one_leader(&client).await?;
        replicas.children[leader] = None; // killed (SIGKILL on drop)
        let killed = Instant::now();
        let next = replicas.one_leader(&client).await?;
        took.push(killed.elapsed());
        anyhow::ensure!(next != leader, "the killed replica still leads");
        replicas.launch(leader)?;
        replicas.ready(leader).await?;
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nReconciler failover after kill -9 of the leader ({} replicas, leader lease 2 s, {} rounds): median {:.0} ms, max {:.0} ms, min {:.0} ms",
        REPLICAS,
        took.len(),
        ms(took[took.len() / 2]),
        ms(took[took.len() - 1]),
        ms(took[0])
    );
    Ok(())
}

async fn throughput(
    args: &Args,
    replicas: &Replicas,
    pool: &sqlx::PgPool,
    proxy: &str,
    http_port: u16,
) -> Result<()> {
    bench_user(pool, PASSWORD).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{}:{}", replicas.ip, replicas.ports[0]);
    let login = client
        .post(format!("{base}/api/auth/login"))
        .form(&[("username", "bench"), ("password", PASSWORD)])
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "login: {}", login.status());
    let session = session_of(&login).context("no session cookie")?;
    let cookie = format!("clawloops_session={session}");
    let start = client
        .post(format!("{base}/api/runtime/command"))
        .header("cookie", &cookie)
        .form(&[("command", "start")])
        .send()
        .await?;
    anyhow::ensure!(start.status().is_success(), "start: {}", start.status());

    let dir = replicas.dir.path().join("traefik");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(replicas.dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    println!(
        "\nWorkspace requests through Traefik (forward-auth, then the runtime), oha c={} for {} s, {} cores:\n",
        args.conc,
        args.duration,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("| control plane | req/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|");
    let mut figures = Vec::new();
    for count in [1, REPLICAS] {
        let ports = &replicas.ports[..count];
        let mut extra = vec![
            "CLAWLOOPS_ENTRY_RATE_PER_CLIENT=1000000".to_owned(),
            "CLAWLOOPS_ENTRY_BURST_PER_CLIENT=1000000".to_owned(),
            "CLAWLOOPS_ENTRY_IN_FLIGHT_PER_CLIENT=100000".to_owned(),
        ];
        if count > 1 {
            entry_proxy::write_replicated_config(&dir, None)?;
            extra.extend(entry_proxy::replicated_env(ports));
        } else {
            entry_proxy::write_config(&dir, ports[0], None)?;
        }
        let _ = docker(&["rm", "-f", proxy]).await;
        let run = entry_proxy::run_args(
            proxy,
            http_port,
            ports[0],
            DOMAIN,
            &dir,
            entry_proxy::TRAEFIK_IMAGE,
            &extra,
        );
        docker(&run.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        let target = Target {
            url: format!("http://127.0.0.1:{http_port}/healthz"),
            headers: vec![
                ("Host".to_owned(), format!("bench.{DOMAIN}:{http_port}")),
                ("Cookie".to_owned(), cookie.clone()),
            ],
            body: None,
        };
        wait_routed(&target).await?;
        let load = |seconds| OhaLoad {
            conc: args.conc,
            seconds,
            rate: None,
            requests: None,
        };
        let _warm = oha(&args.env.oha, load(2), &target).await?;
        let f = oha(&args.env.oha, load(args.duration), &target).await?;
        println!(
            "| {count} replica{} | {:.0} | {:.3} | {:.3} | {} |",
            if count > 1 { "s" } else { "" },
            f.rps,
            f.p50_ms,
            f.p99_ms,
            f.not_2xx
        );
        figures.push(f);
    }
    if let [one, three] = &figures[..] {
        println!(
            "\n{REPLICAS} replicas / 1 replica: {:.2}× the requests per second (same run, same machine)",
            three.rps / one.rps
        );
    }
    Ok(())
}

/// Waits until the workspace answers through Traefik (started, healthy, routed, checked).
async fn wait_routed(target: &Target) -> Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut request = client.get(&target.url);
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        if request.send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the workspace never answered through Traefik");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
