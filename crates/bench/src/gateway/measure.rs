//! The measurements: a request (plain or streamed) to a target, latency at a fixed rate, and the
//! most a target sustains closed-loop without errors.

use super::Args;
use anyhow::{Context, Result};
use clawloops_bench::load::{Figures, OhaLoad, Target, oha, precise_fixed_rate};

pub(super) fn body(stream: bool) -> String {
    format!(
        r#"{{"model":"fake-model","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":16,"stream":{stream}}}"#
    )
}

pub(super) fn target(base: &str, key: Option<&str>, stream: bool) -> Target {
    Target {
        url: format!("{base}/chat/completions"),
        headers: key
            .map(|k| vec![("Authorization".to_owned(), format!("Bearer {k}"))])
            .unwrap_or_default(),
        body: Some(body(stream)),
    }
}

/// Plain and streamed latency at one fixed rate.
pub(super) struct AtRate {
    pub(super) plain: Figures,
    pub(super) first_byte: Figures,
}

pub(super) async fn at_rate(
    base: &str,
    key: Option<&str>,
    rate: u32,
    seconds: u64,
) -> Result<AtRate> {
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
pub(super) async fn max_rate(
    args: &Args,
    target: &Target,
    concs: &[u32],
) -> Result<(Figures, u32)> {
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
