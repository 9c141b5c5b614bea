//! The lockdown for each egress setting, and the reconciler repairing lost rules.

use super::*;

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_runtime_without_egress_reaches_the_model_gateway_and_nothing_else(pool: PgPool) {
    lockdown(pool, Egress::None).await;
}

#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn a_runtime_with_public_egress_still_reaches_nothing_of_the_host(pool: PgPool) {
    lockdown(pool, Egress::Public).await;
}

/// Rules lost (a flush, a reboot, another tool) come back at the reconciler's next pass, and a
/// runtime is refused again.
#[sqlx::test(migrator = "clawloops_server::database::MIGRATOR")]
async fn the_reconciler_puts_lost_rules_back(pool: PgPool) {
    let entry = Entry::start(pool.clone(), false).await;
    let admin = entry.admin().await;
    let alice = entry.user(&admin, "alice").await;
    entry
        .start_runtime(&alice, "alice", Duration::from_secs(60))
        .await;
    let firewall = Firewall::new(FirewallMode::Managed);
    assert!(firewall.is_installed().await.expect("readable"));
    // Only the jump goes (the chains stay, so other tests on this host keep their fence).
    let (ok, out) = {
        let out = std::process::Command::new("iptables")
            .args([
                "-w",
                "-D",
                "INPUT",
                "-i",
                "clr+",
                "-j",
                firewall::INPUT_CHAIN,
            ])
            .output()
            .expect("iptables");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !firewall.is_installed().await.expect("readable") {
        assert!(
            Instant::now() < deadline,
            "the reconciler did not repair the rules"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = entry.server.state.app.orchestrator().isolation();
    assert_eq!(status.result, Ok(clawloops_driver::Isolation::Enforced));
    // The admin runtimes page says so, with the egress setting.
    let (code, policy) = admin.call("admin/runtimes/policy", &[]).await;
    assert_eq!(code, 200, "{policy}");
    assert_eq!(policy["egress"], "none");
    assert_eq!(policy["firewall"], "enforced");
    assert!(policy["checked_at"].is_string(), "{policy}");
    let (code, _) = alice.call("admin/runtimes/policy", &[]).await;
    assert_eq!(code, 403, "admins only");
    let control_plane = target(entry.server.addr.ip(), entry.server.addr.port());
    let results = probe(&entry.container_of("alice"), &[control_plane]).await;
    assert!(blocked(&results[0].1), "{results:?}");
    entry.finish();
}
