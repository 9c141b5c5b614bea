use super::rules::{forward_jump, input_jump, rules_of};
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

/// `iptables-save -t mangle` of such a host (Docker leaves it empty).
const MANGLE_EMPTY: &str = "*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
";

fn fresh() -> Saved {
    Saved {
        filter: DOCKER_ONLY.into(),
        mangle: MANGLE_EMPTY.into(),
    }
}

/// Both tables with the rules in place (and another rule of someone else's in each hook).
fn installed(family: Family) -> Saved {
    let rules = chain_rules(family);
    let of = |chain: &str| {
        rules
            .iter()
            .filter(|r| r.starts_with(&format!("-A {chain} ")))
            .flat_map(|r| [r.as_str(), "\n"])
            .collect::<String>()
    };
    Saved {
        filter: format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:{INPUT_CHAIN} - [0:0]\n\
             :DOCKER-USER - [0:0]\n{}\n-A INPUT -i lo -j ACCEPT\n-A FORWARD -j DOCKER-USER\n\
             -A DOCKER-USER -j RETURN\n{}COMMIT\n",
            input_jump(),
            of(INPUT_CHAIN)
        ),
        mangle: format!(
            "*mangle\n:FORWARD ACCEPT [0:0]\n:{FORWARD_CHAIN} - [0:0]\n{}\n\
             -A FORWARD -o eth0 -j MARK --set-xmark 0x1/0xffffffff\n{}COMMIT\n",
            forward_jump(),
            of(FORWARD_CHAIN)
        ),
    }
}

#[test]
fn a_fresh_host_gets_both_chains_and_both_jumps_first() {
    let script = plan(&fresh(), &chain_rules(Family::V4)).expect("something to install");
    assert!(
        script.starts_with("*mangle\n:CLAWLOOPS-RUNTIMES-FWD - [0:0]\n"),
        "{script}"
    );
    assert!(script.contains("-I FORWARD 1 -j CLAWLOOPS-RUNTIMES-FWD\nCOMMIT\n*filter\n"));
    assert!(script.contains(":CLAWLOOPS-RUNTIMES-IN - [0:0]\n"));
    assert!(script.contains("-I INPUT 1 -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n"));
    assert!(
        !script.contains("DOCKER-USER"),
        "Docker's chain is not used"
    );
    assert!(!script.contains("-D "), "nothing to delete on a fresh host");
    assert!(script.ends_with("COMMIT\n"));
}

#[test]
fn the_old_layout_in_docker_user_is_replaced_by_the_mangle_table() {
    // Before: the forward chain in the filter table, hooked from DOCKER-USER, which Docker
    // deletes and re-inserts whenever it creates a network.
    let mut old = fresh();
    old.filter = old.filter.replace(
        ":DOCKER-USER - [0:0]\n",
        &format!(":DOCKER-USER - [0:0]\n:{FORWARD_CHAIN} - [0:0]\n"),
    ).replace(
        "-A DOCKER-USER -j RETURN\n",
        &format!("-A DOCKER-USER -j {FORWARD_CHAIN}\n-A DOCKER-USER -j RETURN\n-A {FORWARD_CHAIN} -j DROP\n"),
    );
    let script = plan(&old, &chain_rules(Family::V4)).expect("move");
    let mangle = script.find("*mangle").expect("mangle part");
    let filter = script.find("*filter").expect("filter part");
    assert!(
        mangle < filter,
        "the new rules are in before the old go: {script}"
    );
    assert!(script.contains("-D DOCKER-USER -j CLAWLOOPS-RUNTIMES-FWD\n"));
    assert!(script.contains("-F CLAWLOOPS-RUNTIMES-FWD\n-X CLAWLOOPS-RUNTIMES-FWD\n"));
    // With the old chain gone and the new one in place, nothing is left to do.
    let mut done = installed(Family::V4);
    assert_eq!(plan(&done, &chain_rules(Family::V4)), None);
    done.filter = done
        .filter
        .replace("COMMIT", &format!(":{FORWARD_CHAIN} - [0:0]\nCOMMIT"));
    assert!(
        plan(&done, &chain_rules(Family::V4))
            .expect("leftover")
            .contains("-X CLAWLOOPS-RUNTIMES-FWD")
    );
}

#[test]
fn rules_in_place_need_nothing_and_any_change_is_repaired() {
    let good = installed(Family::V4);
    assert_eq!(plan(&good, &chain_rules(Family::V4)), None);
    // A rule removed from our chain, our jump pushed down by another rule, or a second
    // copy of a jump: each is put right in one transaction.
    let mut missing = good.clone();
    missing.mangle = missing
        .mangle
        .replace("-A CLAWLOOPS-RUNTIMES-FWD -j DROP\n", "");
    assert!(plan(&missing, &chain_rules(Family::V4)).is_some());
    let mut pushed = good.clone();
    pushed.mangle = pushed.mangle.replace(
        "-A FORWARD -j CLAWLOOPS",
        "-A FORWARD -j ACCEPT\n-A FORWARD -j CLAWLOOPS",
    );
    let script = plan(&pushed, &chain_rules(Family::V4)).expect("repair");
    assert!(script.contains(
        "-D FORWARD -j CLAWLOOPS-RUNTIMES-FWD\n-I FORWARD 1 -j CLAWLOOPS-RUNTIMES-FWD\n"
    ));
    assert!(
        !script.contains("*filter"),
        "the input side was fine: {script}"
    );
    let mut twice = good.clone();
    twice.filter = twice.filter.replace(
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
    let [jumps, chains] = removal(&installed(Family::V4));
    let jumps = jumps.expect("jumps");
    assert!(jumps.contains("-D INPUT -i clr+ -j CLAWLOOPS-RUNTIMES-IN\n"));
    assert!(jumps.contains("*mangle\n-D FORWARD -j CLAWLOOPS-RUNTIMES-FWD\n"));
    let chains = chains.expect("chains");
    assert!(chains.contains("-X CLAWLOOPS-RUNTIMES-IN\n"));
    assert!(chains.contains("-X CLAWLOOPS-RUNTIMES-FWD\n"));
    assert_eq!(removal(&fresh()), [None, None]);
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
