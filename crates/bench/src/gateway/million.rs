//! A million requests through the gateway, its resident memory sampled as they go, and the
//! usage log checked to have caught up.

use super::Args;
use anyhow::Result;
use clawloops_bench::load::{OhaLoad, Target, oha, rss_mib};
use std::time::{Duration, Instant};

/// Runs `args.million` requests at 64 connections and answers the highest resident memory seen.
pub async fn run(
    args: &Args,
    pool: &sqlx::PgPool,
    pid: u32,
    target: &Target,
    rss_loaded: f64,
) -> Result<f64> {
    // The highest resident memory seen, sampled every 5 s while the requests run.
    let peak = std::sync::Arc::new(std::sync::Mutex::new(0.0f64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = rss_mib(pid);
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_events")
        .fetch_one(pool)
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
        target,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    sampler.abort();
    let after_rss = rss_mib(pid);
    let peak = peak.lock().map_or(after_rss, |p| p.max(after_rss));
    // The usage log catches up within moments.
    let mut logged = 0;
    for _ in 0..120 {
        logged = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM usage_events")
            .fetch_one(pool)
            .await?
            - before;
        if logged >= i64::try_from(args.million).unwrap_or(i64::MAX) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "\n{} requests through ClawLoops in {secs:.0} s ({:.0}/s, {} errors); {} usage rows written; resident memory {rss_loaded:.1} MiB before → {after_rss:.1} MiB after (peak {peak:.1} MiB).",
        args.million, f.rps, f.not_2xx, logged
    );
    Ok(peak)
}
