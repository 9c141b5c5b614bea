//! The goals the gateway is held to, checked against this run's figures.

use super::measure::AtRate;

/// Prints each goal with its figure and whether it was met: added p99 at 1,000/s, the most
/// sustained plain and streamed rates against LiteLLM's, and peak resident memory.
pub fn goals(
    added: &[(u32, AtRate, AtRate)],
    maxes: &[(&str, bool, f64)],
    samples: &[f64],
    rss_loaded: f64,
) {
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
}
