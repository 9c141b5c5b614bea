//! Load generators: oha (closed loop, or its own fixed rate), and an exact open-loop pacer that
//! also times the first byte of each answer.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub not_2xx: u64,
}

/// A request to send again and again.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// A JSON body to POST (GET without one).
    pub body: Option<String>,
}

impl Target {
    /// oha's arguments for this request.
    fn oha_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (name, value) in &self.headers {
            args.extend(["-H".to_owned(), format!("{name}: {value}")]);
        }
        if let Some(body) = &self.body {
            args.extend([
                "-m".to_owned(),
                "POST".to_owned(),
                "-T".to_owned(),
                "application/json".to_owned(),
                "-d".to_owned(),
                body.clone(),
            ]);
        }
        args.push(self.url.clone());
        args
    }
}

/// How oha runs: `conc` connections for `seconds` (or `requests` in all), at a fixed `rate`
/// (with latency correction) or as fast as the target answers.
#[derive(Debug, Clone, Copy)]
pub struct OhaLoad {
    pub conc: u32,
    pub seconds: u64,
    pub rate: Option<u32>,
    pub requests: Option<u64>,
}

/// Runs oha (one worker thread, JSON output) and reads its figures.
pub async fn oha(oha: &Path, load: OhaLoad, target: &Target) -> Result<Figures> {
    let mut cmd = tokio::process::Command::new(oha);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--worker-threads",
        "1",
        "-w",
        "-t",
        "10s",
    ])
    .args(["-c", &load.conc.to_string()]);
    match load.requests {
        Some(n) => cmd.args(["-n", &n.to_string()]),
        None => cmd.args(["-z", &format!("{}s", load.seconds)]),
    };
    if let Some(rate) = load.rate {
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let out = cmd
        .args(target.oha_args())
        .output()
        .await
        .context("running oha (see --oha)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let doc: Value = serde_json::from_slice(&out.stdout).context("oha's JSON")?;
    let ms = |key: &str| doc["latencyPercentiles"][key].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let count = |key: &str, pick: fn(&str) -> bool| {
        doc[key].as_object().map_or(0, |codes| {
            codes
                .iter()
                .filter(|(code, _)| pick(code))
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum::<u64>()
        })
    };
    Ok(Figures {
        rps: doc["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        not_2xx: count("statusCodeDistribution", |c| !c.starts_with('2'))
            + count("errorDistribution", |_| true),
    })
}

/// An open-loop run at an exactly even fixed rate: a pacing thread wakes at each request's due
/// time (nanosleep, accurate to tens of microseconds) and hands it to a single-threaded async
/// client, which sends it over a pool of keep-alive connections. Latency counts from the due
/// time, so a stalled server cannot hide its queueing. oha's fixed-rate mode sends on a 1 ms
/// timer instead, i.e. in bursts of rate/1000 requests, and counts from the tick.
///
/// Returns the figures for the whole answer and for its first body byte.
pub fn precise_fixed_rate(target: Target, rate: u32, seconds: u64) -> Result<(Figures, Figures)> {
    // (due time, counted): the first second warms the connection pool and is not counted.
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, bool)>();
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let client_thread = std::thread::spawn(move || -> Result<(Figures, Figures)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut header_map = reqwest::header::HeaderMap::new();
            for (name, value) in &target.headers {
                header_map.insert(
                    reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
                    reqwest::header::HeaderValue::from_str(value)?,
                );
            }
            if target.body.is_some() {
                header_map.insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/json"),
                );
            }
            let client = reqwest::Client::builder()
                .default_headers(header_map)
                .pool_max_idle_per_host(1024)
                .no_proxy()
                .build()?;
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(u32, u32, bool)>();
            let mut started = Instant::now();
            let body = target.body.clone().map(reqwest::Body::from);
            while let Some((due, counted)) = due_rx.recv().await {
                if !counted {
                    started = Instant::now();
                }
                let request = match &body {
                    Some(_) => client
                        .post(&target.url)
                        .body(target.body.clone().unwrap_or_default()),
                    None => client.get(&target.url),
                };
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let mut first = None;
                    let ok = match request.send().await {
                        Ok(mut res) => {
                            let mut ok = res.status().is_success();
                            loop {
                                match res.chunk().await {
                                    Ok(Some(_)) => {
                                        first.get_or_insert_with(|| due.elapsed());
                                    }
                                    Ok(None) => break,
                                    Err(_) => {
                                        ok = false;
                                        break;
                                    }
                                }
                            }
                            ok
                        }
                        Err(_) => false,
                    };
                    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                    let whole = due.elapsed();
                    if counted {
                        let _ = done.send((us(whole), us(first.unwrap_or(whole)), ok));
                    }
                });
            }
            drop(done_tx);
            let mut whole = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
            let mut first = Vec::with_capacity(whole.capacity());
            let mut failed = 0u64;
            while let Some((w, f, ok)) = done_rx.recv().await {
                whole.push(w);
                first.push(f);
                failed += u64::from(!ok);
            }
            let elapsed = started.elapsed().as_secs_f64();
            let figures = |mut micros: Vec<u32>| {
                micros.sort_unstable();
                let pick = |q: f64| {
                    micros
                        .get(quantile_index(micros.len(), q))
                        .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
                };
                Figures {
                    rps: micros.len() as f64 / elapsed,
                    p50_ms: pick(0.50),
                    p99_ms: pick(0.99),
                    not_2xx: failed,
                }
            };
            Ok((figures(whole), figures(first)))
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

/// Resident memory of a process and its children, in MiB (from /proc).
pub fn rss_mib(pid: u32) -> f64 {
    let mut total_kib = 0u64;
    let mut pending = vec![pid];
    while let Some(p) = pending.pop() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            total_kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    total_kib as f64 / 1024.0
}

/// The index of quantile `q` (0–1) in `len` sorted samples (nearest rank; 0 when empty).
pub fn quantile_index(len: usize, q: f64) -> usize {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a share of a length: between 0 and the length"
    )]
    let rank = (len as f64 * q).ceil() as usize;
    rank.clamp(1, len.max(1)) - 1
}
