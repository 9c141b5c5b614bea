//! The rule set as text, and the plan that brings a host's saved rules to it: pure functions
//! of `iptables-save` output, so every case is tested without touching a firewall.

use super::*;

/// The rules of both chains, as `iptables-save` prints them.
pub fn chain_rules(family: Family) -> Vec<String> {
    let all = format!("{BRIDGE_PREFIX}+");
    let input = |rule: &str| format!("-A {INPUT_CHAIN} {rule}");
    let forward = |rule: &str| format!("-A {FORWARD_CHAIN} {rule}");
    let mut rules = vec![input(
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    )];
    if family == Family::V6 {
        // Neighbour discovery (IPv6's ARP) only, so that what follows is refused at once
        // rather than left to time out.
        for kind in [135, 136] {
            rules.push(input(&format!(
                "-p ipv6-icmp -m icmp6 --icmpv6-type {kind} -j ACCEPT"
            )));
        }
    }
    rules.extend([
        input("-p tcp -j REJECT --reject-with tcp-reset"),
        input(&format!(
            "-j REJECT --reject-with {}",
            family.reject_other()
        )),
        forward(&format!("! -i {all} ! -o {all} -j RETURN")),
    ]);
    match family {
        Family::V4 => {
            rules.push(forward(
                "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            ));
            for port in [ENTRY_RUNTIME_PORT, RUNTIME_PORT] {
                rules.push(forward(&format!(
                    "-p tcp -m physdev --physdev-is-bridged -m tcp --dport {port} -j RETURN"
                )));
            }
            rules.push(forward("-m physdev --physdev-is-bridged -j DROP"));
            let public = format!("{}+", Egress::Public.bridge_prefix());
            for range in BLOCKED_V4 {
                rules.push(forward(&format!("-d {range} -i {public} -j DROP")));
            }
            rules.push(forward(&format!("-i {public} ! -o {all} -j RETURN")));
            rules.push(forward("-j DROP"));
        }
        Family::V6 => rules.push(forward("-j DROP")),
    }
    rules
}

/// The jump into the input chain (first rule of the filter table's INPUT).
pub(super) fn input_jump() -> String {
    format!("-A INPUT -i {BRIDGE_PREFIX}+ -j {INPUT_CHAIN}")
}

/// The jump into the forward chain (first rule of the mangle table's FORWARD).
pub(super) fn forward_jump() -> String {
    format!("-A FORWARD -j {FORWARD_CHAIN}")
}

/// `iptables-save` of the two tables the rules live in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// `-t filter`: the input chain (and, from before, perhaps the old forward chain).
    pub filter: String,
    /// `-t mangle`: the forward chain.
    pub mangle: String,
}

/// The rules of `chain` in one table's `iptables-save` text.
pub(super) fn rules_of<'a>(saved: &'a str, chain: &str) -> Vec<&'a str> {
    let prefix = format!("-A {chain} ");
    saved
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

pub(super) fn has_chain(saved: &str, chain: &str) -> bool {
    let head = format!(":{chain} ");
    saved.lines().any(|line| line.starts_with(&head))
}

/// The lines that make one table's chain `chain` hold `want` with `jump` (in `hook`) first and
/// once, or nothing when it already does. Declaring a chain under `--noflush` empties it.
pub(super) fn chain_plan(
    saved: &str,
    chain: &str,
    hook: &str,
    jump: &str,
    want: &[&str],
) -> Option<String> {
    let chain_ok = has_chain(saved, chain) && rules_of(saved, chain) == want;
    let hooked = rules_of(saved, hook);
    let jump_ok =
        hooked.first() == Some(&jump) && hooked.iter().filter(|r| **r == jump).count() == 1;
    if chain_ok && jump_ok {
        return None;
    }
    let mut lines = format!(":{chain} - [0:0]\n");
    for rule in want {
        lines.push_str(rule);
        lines.push('\n');
    }
    let spec = jump.trim_start_matches(&format!("-A {hook} "));
    for _ in hooked.iter().filter(|r| **r == jump) {
        let _ = writeln!(lines, "-D {hook} {spec}");
    }
    let _ = writeln!(lines, "-I {hook} 1 {spec}");
    Some(lines)
}

/// The lines that take away every jump into `chain` (from any chain of the table) and then
/// the chain itself, or nothing when the table has neither.
pub(super) fn chain_removal(saved: &str, chain: &str) -> (String, String) {
    let mut jumps = String::new();
    for line in saved.lines() {
        if line.starts_with("-A ") && line.ends_with(&format!(" -j {chain}")) {
            jumps.push_str(&line.replacen("-A ", "-D ", 1));
            jumps.push('\n');
        }
    }
    let drop = if has_chain(saved, chain) {
        format!("-F {chain}\n-X {chain}\n")
    } else {
        String::new()
    };
    (jumps, drop)
}

/// A restore script of the given tables' lines (empty ones left out), or nothing.
pub(super) fn script(tables: &[(&str, &str)]) -> Option<String> {
    let mut out = String::new();
    for (table, lines) in tables {
        if !lines.is_empty() {
            let _ = write!(out, "*{table}\n{lines}COMMIT\n");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// What [`plan`] found: the `iptables-restore --noflush` input that makes the rules right, or
/// nothing when they already are. `want` is [`chain_rules`], or how this host's iptables prints
/// them back. The mangle table comes first, so that moving from the old layout (the forward
/// chain in the filter table, hooked from `DOCKER-USER`) never leaves forwarded traffic
/// unfiltered in between.
pub fn plan(saved: &Saved, want: &[String]) -> Option<String> {
    let of = |chain: &str| -> Vec<&str> {
        let prefix = format!("-A {chain} ");
        want.iter()
            .map(String::as_str)
            .filter(|r| r.starts_with(&prefix))
            .collect()
    };
    let mangle = chain_plan(
        &saved.mangle,
        FORWARD_CHAIN,
        "FORWARD",
        &forward_jump(),
        &of(FORWARD_CHAIN),
    );
    let input = chain_plan(
        &saved.filter,
        INPUT_CHAIN,
        "INPUT",
        &input_jump(),
        &of(INPUT_CHAIN),
    );
    let (old_jumps, old_chain) = chain_removal(&saved.filter, FORWARD_CHAIN);
    if mangle.is_none() && input.is_none() && old_jumps.is_empty() && old_chain.is_empty() {
        return None;
    }
    let filter = format!("{}{old_jumps}{old_chain}", input.unwrap_or_default());
    script(&[("mangle", &mangle.unwrap_or_default()), ("filter", &filter)])
}

/// The `iptables-restore --noflush` inputs that take the rules away: the jumps first (a chain
/// in use cannot be deleted), then the chains.
pub fn removal(saved: &Saved) -> [Option<String>; 2] {
    let (in_jumps, in_chain) = chain_removal(&saved.filter, INPUT_CHAIN);
    let (old_jumps, old_chain) = chain_removal(&saved.filter, FORWARD_CHAIN);
    let (fwd_jumps, fwd_chain) = chain_removal(&saved.mangle, FORWARD_CHAIN);
    [
        script(&[
            ("mangle", &fwd_jumps),
            ("filter", &format!("{in_jumps}{old_jumps}")),
        ]),
        script(&[
            ("mangle", &fwd_chain),
            ("filter", &format!("{in_chain}{old_chain}")),
        ]),
    ]
}

/// Both chains' rules as they are in `saved`, in [`chain_rules`]' order.
pub(super) fn installed_rules(saved: &Saved) -> Vec<String> {
    rules_of(&saved.filter, INPUT_CHAIN)
        .into_iter()
        .chain(rules_of(&saved.mangle, FORWARD_CHAIN))
        .map(str::to_owned)
        .collect()
}
