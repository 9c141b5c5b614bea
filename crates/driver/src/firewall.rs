//! The host firewall that keeps every runtime to the entry proxy.
//!
//! A runtime is untrusted code. Docker's `internal` networks only drop traffic the host
//! *forwards*; a packet a runtime addresses to the host itself (any of its addresses, reached
//! through the bridge's own address) goes through the host's INPUT chain, which Docker leaves
//! alone, so every host service listening on 0.0.0.0 (the control plane included) answered
//! runtimes. These rules close that, in both address families:
//!
//! - **INPUT** from a runtime bridge: only replies to connections the host opened (the runtime
//!   manager's health probes) and IPv6 neighbour discovery; everything else is refused at once
//!   (TCP reset), so an agent's tool fails fast instead of hanging.
//! - **Forwarded**, on a runtime bridge between the runtime and the entry proxy (the only two
//!   members of each runtime network): the runtime may open TCP to the proxy's runtime entry
//!   point ([`ENTRY_RUNTIME_PORT`], the model gateway's `/v1/` only) and the proxy may open TCP
//!   to the runtime's port ([`RUNTIME_PORT`]); nothing else, whatever Docker allows.
//! - **Forwarded out** of a runtime network: nothing with egress `none`; with egress `public`
//!   public addresses only (every private and special-purpose range stays blocked, the cloud
//!   metadata address among them). IPv6: nothing (runtimes have no IPv6).
//!
//! Runtime bridges are named by egress class (`clrn-…`, `clrp-…`; see [`bridge_name`]) so the
//! rules match them by prefix and never change as runtimes come and go: one static rule set
//! per host, shared by every installation on it, replaced atomically (`iptables-restore
//! --noflush`) and hooked first into INPUT and into Docker's `DOCKER-USER` chain (which Docker
//! keeps, and keeps first in FORWARD, across restarts; plain FORWARD where it does not exist).
//! [`Firewall::ensure`] installs the rules when missing or changed; the orchestrator calls it at
//! start and every reconciler period (5 s); [`Firewall::remove`] takes them away when the
//! installation goes.

use crate::DriverError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Every runtime bridge's name starts with this; the rules match `clr+`.
pub const BRIDGE_PREFIX: &str = "clr";
/// The entry proxy's port for runtimes (Traefik's `runtime` entry point).
pub const ENTRY_RUNTIME_PORT: u16 = 8001;
/// The port every runtime serves on (the entry proxy's only way in).
pub const RUNTIME_PORT: u16 = 18789;

/// The chain for traffic from runtimes to the host itself.
pub const INPUT_CHAIN: &str = "CLAWLOOPS-RUNTIMES-IN";
/// The chain for traffic the host forwards to, from or between runtime networks.
pub const FORWARD_CHAIN: &str = "CLAWLOOPS-RUNTIMES-FWD";

/// Private, shared, loopback, link-local (169.254.169.254 among them), documentation,
/// benchmarking, multicast and reserved IPv4 ranges: never reachable from a runtime, also with
/// public egress.
pub const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// What a runtime may reach beyond the entry proxy (an installation setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// Nothing: the entry proxy (the model gateway) only.
    #[default]
    None,
    /// Public internet addresses too; private ranges and the host stay blocked.
    Public,
}

impl Egress {
    /// The setting's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::None => "none",
            Egress::Public => "public",
        }
    }

    fn bridge_prefix(self) -> &'static str {
        match self {
            Egress::None => "clrn-",
            Egress::Public => "clrp-",
        }
    }
}

impl std::str::FromStr for Egress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Egress::None),
            "public" => Ok(Egress::Public),
            other => Err(format!(
                "runtime egress must be none or public, not {other:?}"
            )),
        }
    }
}

/// The bridge interface of runtime network `network` (15 characters, Linux's limit): the
/// egress class and a hash of the network's name.
pub fn bridge_name(egress: Egress, network: &str) -> String {
    let digest = Sha256::digest(network.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", egress.bridge_prefix())
}

/// Whether the firewall is this process's job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallMode {
    /// The runtime manager installs and re-checks the rules (needs root or CAP_NET_ADMIN on
    /// the Docker host, and `iptables`). Runtimes are not started without them.
    #[default]
    Managed,
    /// Someone else enforces the same isolation (compose's `runtime-firewall` service, a
    /// cluster's network policy); this process does not touch the host firewall.
    External,
}

/// An address family's tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4 = 0,
    V6 = 1,
}

impl Family {
    fn tool(self, what: &str) -> String {
        match self {
            Family::V4 => format!("iptables{what}"),
            Family::V6 => format!("ip6tables{what}"),
        }
    }

    fn reject_other(self) -> &'static str {
        match self {
            Family::V4 => "icmp-admin-prohibited",
            Family::V6 => "icmp6-adm-prohibited",
        }
    }
}

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

/// The jump into the input chain (first rule of INPUT).
fn input_jump() -> String {
    format!("-A INPUT -i {BRIDGE_PREFIX}+ -j {INPUT_CHAIN}")
}

/// The jump into the forward chain (first rule of `hook`).
fn forward_jump(hook: &str) -> String {
    format!("-A {hook} -j {FORWARD_CHAIN}")
}

/// The rules of `chain` in an `iptables-save -t filter` text.
fn rules_of<'a>(saved: &'a str, chain: &str) -> Vec<&'a str> {
    let prefix = format!("-A {chain} ");
    saved
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

fn has_chain(saved: &str, chain: &str) -> bool {
    let head = format!(":{chain} ");
    saved.lines().any(|line| line.starts_with(&head))
}

/// Docker's chain for the administrator's rules when it exists, else FORWARD itself.
fn forward_hook(saved: &str) -> &'static str {
    if has_chain(saved, "DOCKER-USER") {
        "DOCKER-USER"
    } else {
        "FORWARD"
    }
}

/// What [`plan`] found: the `iptables-restore --noflush` input that makes the rules right, or
/// nothing when they already are. `want` is [`chain_rules`], or how this host's iptables prints
/// them back.
pub fn plan(saved: &str, want: &[String]) -> Option<String> {
    let hook = forward_hook(saved);
    let jumps = [("INPUT", input_jump()), (hook, forward_jump(hook))];
    let chains_ok = [INPUT_CHAIN, FORWARD_CHAIN]
        .iter()
        .all(|c| has_chain(saved, c))
        && rules_of(saved, INPUT_CHAIN)
            .into_iter()
            .chain(rules_of(saved, FORWARD_CHAIN))
            .eq(want.iter().map(String::as_str));
    let jumps_ok = jumps.iter().all(|(chain, jump)| {
        let rules = rules_of(saved, chain);
        rules.first() == Some(&jump.as_str()) && rules.iter().filter(|r| **r == jump).count() == 1
    });
    if chains_ok && jumps_ok {
        return None;
    }
    // One transaction: both chains flushed and refilled (declaring a chain under --noflush
    // empties it), every old copy of the jumps removed and one put back first.
    let mut script = format!("*filter\n:{INPUT_CHAIN} - [0:0]\n:{FORWARD_CHAIN} - [0:0]\n");
    for rule in want {
        script.push_str(rule);
        script.push('\n');
    }
    for (chain, jump) in &jumps {
        let copies = rules_of(saved, chain)
            .iter()
            .filter(|r| **r == jump)
            .count();
        let spec = jump.trim_start_matches(&format!("-A {chain} "));
        for _ in 0..copies {
            script.push_str(&format!("-D {chain} {spec}\n"));
        }
        script.push_str(&format!("-I {chain} 1 {spec}\n"));
    }
    script.push_str("COMMIT\n");
    Some(script)
}

/// The `iptables-restore --noflush` inputs that take the rules away: the jumps first (a chain
/// in use cannot be deleted), then the chains.
pub fn removal(saved: &str) -> [Option<String>; 2] {
    let mut jumps = String::new();
    for chain in ["INPUT", "DOCKER-USER", "FORWARD"] {
        for rule in rules_of(saved, chain) {
            if rule.ends_with(&format!("-j {INPUT_CHAIN}"))
                || rule.ends_with(&format!("-j {FORWARD_CHAIN}"))
            {
                jumps.push_str(&rule.replacen("-A ", "-D ", 1));
                jumps.push('\n');
            }
        }
    }
    let chains: Vec<&str> = [INPUT_CHAIN, FORWARD_CHAIN]
        .into_iter()
        .filter(|c| has_chain(saved, c))
        .collect();
    let jumps = (!jumps.is_empty()).then(|| format!("*filter\n{jumps}COMMIT\n"));
    let chains = (!chains.is_empty()).then(|| {
        let mut script = String::from("*filter\n");
        for chain in chains {
            script.push_str(&format!("-F {chain}\n-X {chain}\n"));
        }
        script.push_str("COMMIT\n");
        script
    });
    [jumps, chains]
}

/// What [`Firewall::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The rules were in place.
    Unchanged,
    /// The rules were missing or changed, and are now as they should be.
    Installed,
    /// Not this process's job ([`FirewallMode::External`]).
    External,
}

/// The host firewall for runtimes.
#[derive(Debug, Default)]
pub struct Firewall {
    mode: FirewallMode,
    /// One check or change at a time in this process (other processes are covered by
    /// iptables' own atomic transactions and a retry). Holds the rules per family as this
    /// host's iptables prints them back, once seen (it may spell a match differently).
    printed: tokio::sync::Mutex<[Option<Vec<String>>; 2]>,
    /// When the rules were last found (or made) right.
    last_ok: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Firewall {
    pub fn new(mode: FirewallMode) -> Firewall {
        Firewall {
            mode,
            printed: tokio::sync::Mutex::new([None, None]),
            last_ok: std::sync::Mutex::new(None),
        }
    }

    /// As [`Firewall::ensure`], but a check that succeeded within `max_age` stands (a runtime
    /// start need not read the whole filter table when the reconciler did a moment ago).
    pub async fn ensure_within(&self, max_age: Duration) -> Result<Outcome, DriverError> {
        let fresh = self
            .last_ok
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|at| at.elapsed() < max_age);
        if fresh {
            return Ok(Outcome::Unchanged);
        }
        self.ensure().await
    }

    pub fn mode(&self) -> FirewallMode {
        self.mode
    }

    /// Makes the rules right in both families (IPv6 only where the kernel has it). An error
    /// means runtimes must not start: it says what to fix.
    pub async fn ensure(&self) -> Result<Outcome, DriverError> {
        if self.mode == FirewallMode::External {
            return Ok(Outcome::External);
        }
        let mut printed = self.printed.lock().await;
        let mut outcome = Outcome::Unchanged;
        for family in families() {
            let slot = &mut printed[family as usize];
            let want = slot.clone().unwrap_or_else(|| chain_rules(family));
            // Another process may change the rules between our read and our write (the
            // transaction then fails on a jump it no longer finds): read again and retry.
            let mut attempt = 0;
            let mut written = false;
            loop {
                let saved = save(family).await?;
                let Some(script) = plan(&saved, &want) else {
                    break;
                };
                if written && slot.is_none() {
                    // Just written, yet read back differently: this iptables prints a rule
                    // in other words. Its own words are the reference from now on.
                    let spelled: Vec<String> = [INPUT_CHAIN, FORWARD_CHAIN]
                        .iter()
                        .flat_map(|c| rules_of(&saved, c))
                        .map(str::to_owned)
                        .collect();
                    if spelled.len() == want.len() {
                        *slot = Some(spelled);
                        break;
                    }
                }
                match restore(family, &script).await {
                    Ok(()) => {
                        outcome = Outcome::Installed;
                        written = true;
                    }
                    Err(err) if attempt < 4 => {
                        tracing::debug!(error = %err, "retrying the runtime firewall");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        if let Ok(mut last) = self.last_ok.lock() {
            *last = Some(std::time::Instant::now());
        }
        Ok(outcome)
    }

    /// Whether the rules are in place as they should be, in every family (read only).
    pub async fn is_installed(&self) -> Result<bool, DriverError> {
        let printed = self.printed.lock().await;
        for family in families() {
            let want = printed[family as usize]
                .clone()
                .unwrap_or_else(|| chain_rules(family));
            if plan(&save(family).await?, &want).is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes the rules away (the installation is being removed).
    pub async fn remove(&self) -> Result<(), DriverError> {
        let _one = self.printed.lock().await;
        for family in families() {
            for script in removal(&save(family).await?).into_iter().flatten() {
                restore(family, &script).await?;
            }
        }
        Ok(())
    }

    /// Both families' rules as installed now (`iptables-save` lines of the chains and jumps).
    pub async fn installed(&self) -> Result<Vec<String>, DriverError> {
        let mut lines = Vec::new();
        for family in families() {
            let saved = save(family).await?;
            let tag = match family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            };
            for line in saved
                .lines()
                .filter(|l| l.contains(INPUT_CHAIN) || l.contains(FORWARD_CHAIN))
            {
                lines.push(format!("{tag} {line}"));
            }
        }
        Ok(lines)
    }
}

/// IPv4 always; IPv6 where the kernel has it.
fn families() -> Vec<Family> {
    let mut all = vec![Family::V4];
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        all.push(Family::V6);
    }
    all
}

async fn save(family: Family) -> Result<String, DriverError> {
    let out = run(&family.tool("-save"), &["-t", "filter"], None).await?;
    Ok(out)
}

async fn restore(family: Family, script: &str) -> Result<(), DriverError> {
    run(
        &family.tool("-restore"),
        &["--noflush", "--wait"],
        Some(script),
    )
    .await
    .map(drop)
}

/// Runs an iptables tool; its failure becomes an error that says what to do.
async fn run(tool: &str, args: &[&str], input: Option<&str>) -> Result<String, DriverError> {
    use tokio::io::AsyncWriteExt;
    let isolation = |why: String| {
        DriverError::Isolation(format!(
            "{why}. The runtime manager installs host firewall rules that keep runtimes away from \
             the host: run it as root (or with CAP_NET_ADMIN) on the Docker host with iptables \
             installed, or set runtime_firewall = \"external\" if you enforce the same rules \
             yourself"
        ))
    };
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| isolation(format!("cannot run {tool}: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| isolation(format!("writing to {tool}: {e}")))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| isolation(format!("{tool} did not finish within 30 s")))?
        .map_err(|e| isolation(format!("{tool}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(isolation(format!("{tool} failed: {}", err.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `iptables-save -t filter` of a host where Docker 20.10 runs and nothing else.
    const DOCKER_ONLY: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
";

    fn installed(family: Family, hook: &str) -> String {
        let mut text = format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:{INPUT_CHAIN} - [0:0]\n\
             :{FORWARD_CHAIN} - [0:0]\n:DOCKER-USER - [0:0]\n{}\n-A INPUT -i lo -j ACCEPT\n\
             -A FORWARD -j DOCKER-USER\n",
            input_jump()
        );
        if hook == "DOCKER-USER" {
            text.push_str(&format!(
                "{}\n-A DOCKER-USER -j RETURN\n",
                forward_jump(hook)
            ));
        }
        for rule in chain_rules(family) {
            text.push_str(&rule);
            text.push('\n');
        }
        text + "COMMIT\n"
    }

    #[test]
    fn a_fresh_host_gets_both_chains_and_both_jumps_first() {
        let script = plan(DOCKER_ONLY, &chain_rules(Family::V4)).expect("something to install");
        assert!(script.starts_with("*filter\n:CLAWLOOPS-RUNTIMES-IN - [0:0]\n"));
        assert!(script.contains("-I INPUT 1 -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n"));
        assert!(script.contains("-I DOCKER-USER 1 -j CLAWLOOPS-RUNTIMES-FWD\n"));
        assert!(!script.contains("-D "), "nothing to delete on a fresh host");
        assert!(script.ends_with("COMMIT\n"));
        // Without Docker's chain the forward rules hook into FORWARD itself.
        let bare = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
        let script = plan(bare, &chain_rules(Family::V6)).expect("something to install");
        assert!(script.contains("-I FORWARD 1 -j CLAWLOOPS-RUNTIMES-FWD\n"));
    }

    #[test]
    fn rules_in_place_need_nothing_and_any_change_is_repaired() {
        let good = installed(Family::V4, "DOCKER-USER");
        assert_eq!(plan(&good, &chain_rules(Family::V4)), None);
        // A rule removed from our chain, our jump pushed down by another rule, or a second
        // copy of a jump: each is put right in one transaction.
        let missing = good.replace("-A CLAWLOOPS-RUNTIMES-FWD -j DROP\n", "");
        assert!(plan(&missing, &chain_rules(Family::V4)).is_some());
        let pushed = good.replace(
            "-A INPUT -i clr+",
            "-A INPUT -p tcp -j ACCEPT\n-A INPUT -i clr+",
        );
        let script = plan(&pushed, &chain_rules(Family::V4)).expect("repair");
        assert!(script.contains("-D INPUT -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n-I INPUT 1 -i clr+"));
        let twice = good.replace(
            "-A INPUT -i lo -j ACCEPT\n",
            "-A INPUT -i lo -j ACCEPT\n-A INPUT -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n",
        );
        let script = plan(&twice, &chain_rules(Family::V4)).expect("repair");
        assert_eq!(script.matches("-D INPUT -i clr+").count(), 2);
        assert_eq!(script.matches("-I INPUT 1 -i clr+").count(), 1);
    }

    #[test]
    fn public_egress_still_blocks_the_host_private_ranges_and_metadata() {
        let rules = chain_rules(Family::V4);
        let position = |needle: &str| {
            rules
                .iter()
                .position(|r| r.contains(needle))
                .unwrap_or_else(|| panic!("no rule with {needle}"))
        };
        let allow_public = position("-i clrp-+ ! -o clr+ -j RETURN");
        for range in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
        ] {
            assert!(position(&format!("-d {range} -i clrp-+ -j DROP")) < allow_public);
        }
        // Egress none has no allowing rule at all: it falls to the final DROP.
        assert!(!rules.iter().any(|r| r.contains("clrn")));
        assert_eq!(
            rules.last().map(String::as_str),
            Some("-A CLAWLOOPS-RUNTIMES-FWD -j DROP")
        );
        // Input from runtimes: replies only, then refused.
        assert_eq!(
            rules_of(&rules.join("\n"), INPUT_CHAIN).len(),
            3,
            "{rules:?}"
        );
        // IPv6: nothing forwarded at all.
        let v6 = chain_rules(Family::V6);
        assert!(v6.iter().any(|r| r.ends_with("icmp6-adm-prohibited")));
        assert_eq!(
            v6.last().map(String::as_str),
            Some("-A CLAWLOOPS-RUNTIMES-FWD -j DROP")
        );
    }

    #[test]
    fn removal_takes_the_jumps_before_the_chains() {
        let [jumps, chains] = removal(&installed(Family::V4, "DOCKER-USER"));
        let jumps = jumps.expect("jumps");
        assert!(jumps.contains("-D INPUT -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n"));
        assert!(jumps.contains("-D DOCKER-USER -j CLAWLOOPS-RUNTIMES-FWD\n"));
        let chains = chains.expect("chains");
        assert!(chains.contains("-X CLAWLOOPS-RUNTIMES-IN\n"));
        assert_eq!(removal(DOCKER_ONLY), [None, None]);
    }

    #[tokio::test]
    async fn a_recent_check_stands_for_a_runtime_start() {
        let firewall = Firewall::new(FirewallMode::Managed);
        let checked = std::time::Instant::now();
        *firewall.last_ok.lock().expect("lock") = Some(checked);
        let outcome = firewall
            .ensure_within(Duration::from_secs(10))
            .await
            .expect("fresh");
        assert_eq!(outcome, Outcome::Unchanged);
        // Not checked again: the time of the last check did not move.
        assert_eq!(*firewall.last_ok.lock().expect("lock"), Some(checked));
        let external = Firewall::new(FirewallMode::External);
        assert_eq!(
            external.ensure().await.expect("external"),
            Outcome::External
        );
    }

    #[test]
    fn bridge_names_fit_linux_and_tell_the_egress_class() {
        let none = bridge_name(Egress::None, "clawloops-0123abcd-rt-ana-net");
        let public = bridge_name(Egress::Public, "clawloops-0123abcd-rt-ana-net");
        assert_eq!(none.len(), 15);
        assert!(none.starts_with("clrn-") && public.starts_with("clrp-"));
        assert_eq!(none[5..], public[5..]);
        assert_ne!(
            none,
            bridge_name(Egress::None, "clawloops-0123abcd-rt-bob-net")
        );
        assert_eq!("public".parse(), Ok(Egress::Public));
        assert!("open".parse::<Egress>().is_err());
    }
}
