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
//! --noflush`) and hooked first into the filter table's INPUT and the **mangle** table's
//! FORWARD. Not Docker's `DOCKER-USER` chain: Docker re-creates its jump from FORWARD into
//! `DOCKER-USER` by deleting it and inserting it again each time it creates a network, and in
//! that window forwarded traffic met only Docker's own rules (which let containers on one bridge
//! talk freely): a runtime's connection to the entry proxy's other ports got through now and
//! then. Docker never touches the mangle table, whose FORWARD chain every forwarded packet
//! (bridged ones too) passes before the filter table's.
//! [`Firewall::ensure`] installs the rules when missing or changed (and takes away the old
//! layout's chain in the filter table); the orchestrator calls it at start and every reconciler
//! period (5 s); [`Firewall::remove`] takes them away when the installation goes.

use crate::DriverError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::Duration;

mod rules;
use rules::installed_rules;
pub use rules::{Saved, chain_rules, plan, removal};

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
    let hex = digest.iter().take(5).fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
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
                    let spelled = installed_rules(&saved);
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
            for (table, text) in [("filter", &saved.filter), ("mangle", &saved.mangle)] {
                for line in text
                    .lines()
                    .filter(|l| l.contains(INPUT_CHAIN) || l.contains(FORWARD_CHAIN))
                {
                    lines.push(format!("{tag} {table} {line}"));
                }
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

async fn save(family: Family) -> Result<Saved, DriverError> {
    let tool = family.tool("-save");
    Ok(Saved {
        filter: run(&tool, &["-t", "filter"], None).await?,
        mangle: run(&tool, &["-t", "mangle"], None).await?,
    })
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
mod tests;
