//! Policies the orchestrator enforces: stopping idle runtimes, trusting only the entry
//! proxy's address, workspace disk limits.

use super::harness::*;
use clawloops_driver::Phase;
use clawloops_driver::docker::DockerDriver;
use clawloops_orchestrator::{
    Action, DesiredState, ObservedState, RuntimeSettings, StopKind, TaskStatus, UserRef,
};
use sqlx::PgPool;
use std::process::Command;
use uuid::Uuid;

#[sqlx::test(migrations = "../../migrations")]
async fn unused_runtimes_are_stopped_after_the_idle_time_and_say_why(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine");
    let settings = RuntimeSettings {
        idle_stop_minutes: 60,
        max_lifetime_minutes: Some(8 * 60),
        ..settings()
    };
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, settings);
    let (ana, ana_name) = user("ana");
    let (bob, bob_name) = user("bob");
    let (cy, cy_name) = user("cy");
    for u in [(ana, &ana_name), (bob, &bob_name), (cy, &cy_name)] {
        h.request((u.0, u.1.as_str()), Action::Start).await;
    }
    h.drain().await;
    // ana: used 2 hours ago; bob: used a minute ago but running for 9 hours; cy: in use.
    sqlx::query(
        "UPDATE runtimes SET ready_at = now() - interval '3 hours',
                last_active_at = now() - interval '2 hours' WHERE user_id = $1",
    )
    .bind(ana)
    .execute(&pool)
    .await
    .expect("age ana");
    sqlx::query(
        "UPDATE runtimes SET ready_at = now() - interval '9 hours',
                last_active_at = now() - interval '1 minute' WHERE user_id = $1",
    )
    .bind(bob)
    .execute(&pool)
    .await
    .expect("age bob");
    // Planned stops are known before they happen (the dashboard shows them).
    let planned = h
        .orchestrator
        .planned_stop(&h.binding(cy).await)
        .expect("planned");
    assert!(matches!(planned.kind, StopKind::Idle(60)), "{planned:?}");

    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.stopped_idle, 2, "{report:?}");
    h.drain().await;
    let ana_row = h.binding(ana).await;
    assert_eq!(
        (ana_row.desired(), ana_row.observed()),
        (DesiredState::Stopped, ObservedState::Stopped)
    );
    assert_eq!(
        ana_row.stop_reason.as_deref(),
        Some("Stopped after 1 hour without workspace use.")
    );
    let bob_row = h.binding(bob).await;
    assert_eq!(bob_row.observed(), ObservedState::Stopped);
    assert!(
        bob_row
            .stop_reason
            .as_deref()
            .is_some_and(|r| r.contains("8 hours")),
        "{:?}",
        bob_row.stop_reason
    );
    assert_eq!(h.binding(cy).await.observed(), ObservedState::Running);
    let running: Vec<_> = h
        .containers()
        .await
        .into_iter()
        .filter(|c| c.phase == Phase::Running)
        .map(|c| c.runtime_id)
        .collect();
    assert_eq!(running, ["rt-cy"]);

    // A user's own setting wins (0 = never), and starting again clears the reason.
    h.orchestrator
        .set_idle_stop(cy, Some(0))
        .await
        .expect("override");
    sqlx::query(
        "UPDATE runtimes SET last_active_at = now() - interval '5 hours' WHERE user_id = $1",
    )
    .bind(cy)
    .execute(&pool)
    .await
    .expect("age cy");
    assert_eq!(
        h.orchestrator.reconcile().await.expect("pass").stopped_idle,
        0
    );
    h.request((ana, &ana_name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(ana).await.stop_reason, None);
    // Activity from forward-auth restarts the idle clock (and never moves it backwards).
    let later = time::OffsetDateTime::now_utc();
    let earlier = later - time::Duration::hours(1);
    h.orchestrator
        .touch_activity(&[(ana, later)])
        .await
        .expect("touch");
    h.orchestrator
        .touch_activity(&[(ana, earlier)])
        .await
        .expect("touch");
    let seen = h.binding(ana).await.last_active_at.expect("seen");
    assert!((seen - later).abs() < time::Duration::seconds(1));
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn with_an_entry_proxy_the_runtime_trusts_only_its_address(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    // Any container can play the proxy here; the real Traefik is in the server's entry tests.
    let proxy = format!("clawloops-test-proxy-{}", &instance[5..17]);
    let image = settings().image;
    let out = Command::new("docker")
        .args(["run", "-d", "--name", &proxy, &image])
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine")
        .with_entry_proxy(Some(proxy.clone()));
    let h = Harness::with_driver(pool, instance, config_root, driver, settings());
    let (id, name) = user("ana");
    let task = h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(task.id).await.status(), TaskStatus::Succeeded);

    // The proxy sits at the second address of the runtime's /28; the config trusts it alone
    // and names the owner; no token is rendered.
    let binding = h.binding(id).await;
    let inspect = |format: &str, what: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, what])
            .output()
            .expect("inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let network = format!(
        "{}-net",
        inspect("{{.Name}}", binding.container_id.as_deref().expect("id")).trim_start_matches('/')
    );
    let proxy_ip = inspect(
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        &proxy,
    );
    let subnet = inspect("{{range .IPAM.Config}}{{.Subnet}}{{end}}", &network);
    let base: std::net::Ipv4Addr = subnet.split('/').next().expect("net").parse().expect("ip");
    assert_eq!(
        proxy_ip,
        std::net::Ipv4Addr::from(u32::from(base) + 2).to_string()
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.config_dir("rt-ana").join("openclaw.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["gateway"]["auth"]["mode"], "trusted-proxy");
    assert_eq!(
        config["gateway"]["trustedProxies"],
        serde_json::json!([proxy_ip])
    );
    assert_eq!(
        config["gateway"]["auth"]["trustedProxy"]["allowUsers"],
        serde_json::json!(["ana"])
    );
    assert!(!config.to_string().contains(&binding.gateway_token));

    // Taken off the network by hand (or recreated): the reconciler joins it again.
    let out = Command::new("docker")
        .args(["network", "disconnect", &network, &proxy])
        .output()
        .expect("disconnect");
    assert!(out.status.success());
    h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(
        inspect(
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            &proxy
        ),
        proxy_ip
    );

    // Deleting the runtime disconnects the proxy and removes the network.
    h.request((id, &name), Action::Delete).await;
    h.drain().await;
    let out = Command::new("docker")
        .args(["network", "inspect", &network])
        .output()
        .expect("inspect");
    assert!(!out.status.success(), "network removed");
    let _ = Command::new("docker").args(["rm", "-f", &proxy]).output();
    h.cleanup();
}

/// Writes `bytes` of data into a runtime's workspace volume from a throwaway container (as a
/// user of the workspace would from inside it).
fn fill_workspace(volume: &str, bytes: usize) {
    let status = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{volume}:/ws"))
        .args(["clawloops/debian:bookworm-min", "bash", "-c"])
        .arg(format!("head -c {bytes} /dev/urandom > /ws/blob && sync"))
        .status()
        .expect("docker run");
    assert!(status.success(), "filling {volume}");
}

/// On an engine that cannot hold a volume to a size (this machine's: ext4 and a kernel without
/// quota support), the limit is measured: a running workspace over its limit is stopped with
/// the reason in words, may not start again until the limit is raised, and starts once it is.
/// A user with no limit (0) is measured and left alone.
#[sqlx::test(migrations = "../../migrations")]
async fn a_workspace_over_its_disk_limit_is_stopped_and_may_not_start_until_raised(pool: PgPool) {
    let instance = format!("test-{}", Uuid::new_v4().simple());
    let config_root = tempfile::tempdir().expect("tempdir");
    let driver = DockerDriver::connect(&instance, config_root.path())
        .await
        .expect("Docker engine");
    let engine_enforced = driver.volume_quotas().await.expect("quota probe");
    let mut settings = settings();
    settings.limits.disk_mb = Some(2);
    let h = Harness::with_driver(pool.clone(), instance, config_root, driver, settings);
    let (ana, ana_name) = user("ana");
    let (bo, bo_name) = user("bo");
    h.request((ana, &ana_name), Action::Start).await;
    h.request((bo, &bo_name), Action::Start).await;
    h.drain().await;
    h.orchestrator
        .set_limits(
            bo,
            clawloops_orchestrator::LimitOverride {
                disk_mb: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("no limit for bo");

    // Under the limit: measured, nothing stopped.
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!((report.measured, report.stopped), (2, 0), "{report:?}");
    assert_eq!(report.engine_enforced, engine_enforced);
    let small = h.binding(ana).await.disk_used_bytes.expect("measured");
    assert!(small < 1024 * 1024, "a new workspace is small: {small}");

    let volume = |name: &str| {
        let prefix = clawloops_driver::spec::name_prefix(&h.instance);
        format!("{prefix}-rt-{name}-workspace")
    };
    if engine_enforced {
        // Where the engine enforces the limit, the write itself fails past it; nothing more
        // to test here (this machine's kernel has no quota support: see the doc).
        return h.cleanup();
    }
    fill_workspace(&volume("ana"), 3 * 1024 * 1024);
    fill_workspace(&volume("bo"), 3 * 1024 * 1024);
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!(report.stopped, 1, "only ana has a limit: {report:?}");
    h.drain().await;
    let row = h.binding(ana).await;
    assert_eq!(
        (row.desired(), row.observed()),
        (DesiredState::Stopped, ObservedState::Stopped)
    );
    let used = row.disk_used_bytes.expect("measured").unsigned_abs();
    assert!(used >= 3 * 1024 * 1024, "{used}");
    let reason = row.stop_reason.expect("a reason");
    assert!(
        reason.contains("more than its limit of 2 MiB"),
        "the reason says why: {reason}"
    );
    assert_eq!(h.binding(bo).await.observed(), ObservedState::Running);

    // A start is refused while over the limit, with words for the user.
    let refused = h
        .orchestrator
        .request(
            UserRef {
                id: ana,
                username: &ana_name,
            },
            Action::Start,
            false,
            "test",
        )
        .await;
    match refused {
        Err(clawloops_orchestrator::OrchestratorError::WorkspaceFull(message)) => {
            assert!(message.contains("cannot start"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.binding(ana).await.desired(), DesiredState::Stopped);

    // Raised: it starts, and the next measurement leaves it running.
    h.orchestrator
        .set_limits(
            ana,
            clawloops_orchestrator::LimitOverride {
                disk_mb: Some(64),
                ..Default::default()
            },
        )
        .await
        .expect("raise");
    let task = h.request((ana, &ana_name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.task(task.id).await.status(), TaskStatus::Succeeded);
    let report = h.orchestrator.check_disks().await.expect("check");
    assert_eq!(report.stopped, 0, "{report:?}");
    assert_eq!(h.binding(ana).await.observed(), ObservedState::Running);
    h.cleanup();
}
