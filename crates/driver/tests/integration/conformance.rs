//! One conformance suite every driver passes: the local Docker driver, the runtime manager in
//! front of it (split mode), and the Swarm driver on a real multi-node swarm. Each engine
//! brings a [`Target`]: its driver, and the engine-side facts the suite cannot learn through
//! the driver (how a runtime is hardened, whether a workspace exists, what a runtime reaches).

use crate::support::{CONFIG, GRACE, running, until};
use async_trait::async_trait;
use clawloops_driver::{DriverError, Phase, RuntimeDriver, RuntimeSpec};

/// What the engine made of a runtime, read from the engine itself.
#[derive(Debug, PartialEq)]
pub struct Hardening {
    pub read_only_root: bool,
    pub no_capabilities: bool,
    /// `None` where the engine cannot set it (Swarm services at API 1.41), which the driver
    /// reports instead of hiding.
    pub no_new_privileges: Option<bool>,
    pub memory_bytes: i64,
    /// `None` where the engine has no per-runtime process limit (Kubernetes sets it per node),
    /// which the driver reports instead of hiding.
    pub pids: Option<i64>,
    pub user: String,
}

#[async_trait]
pub trait Target: Send + Sync {
    fn driver(&self) -> &dyn RuntimeDriver;
    /// A spec for this target's installation.
    fn spec(&self, name: &str) -> RuntimeSpec;
    async fn hardening(&self, spec: &RuntimeSpec) -> Hardening;
    async fn workspace_exists(&self, spec: &RuntimeSpec) -> bool;
    /// The stub's probe run inside the runtime: one outcome per target.
    async fn reach_from(&self, spec: &RuntimeSpec, targets: &[String]) -> Vec<String>;
    /// Addresses on the engine's hosts a runtime must not reach (`address:port`).
    fn forbidden(&self) -> Vec<String>;
    /// Whether a spec's own profile is used (a runtime manager puts its own in place).
    fn honours_profiles(&self) -> bool {
        true
    }
    /// Removes what the suite made.
    async fn teardown(&self, specs: &[RuntimeSpec]) {
        for spec in specs {
            let _ = self.driver().remove(&spec.runtime_id, true).await;
        }
    }
}

/// Runs every check against `target`.
pub async fn suite(target: &dyn Target) {
    ensure_is_idempotent_and_replaces_on_a_new_configuration(target).await;
    start_stop_restart_and_phases(target).await;
    a_process_that_exits_is_observed_with_its_exit_code(target).await;
    a_missing_image_is_an_error_naming_it(target).await;
    remove_keeps_or_wipes_the_workspace(target).await;
    logs_stats_and_hardening(target).await;
    the_lockdown_holds(target).await;
    list_shows_this_installation_only_and_orphans_are_removed_by_label(target).await;
}

async fn ensure_is_idempotent_and_replaces_on_a_new_configuration(t: &dyn Target) {
    let d = t.driver();
    let spec = t.spec("ens");
    d.prepare(&spec).await.expect("prepare");
    d.prepare(&spec).await.expect("prepare twice");
    let first = d.ensure(&spec, CONFIG, false).await.expect("ensure");
    let again = d.ensure(&spec, CONFIG, false).await.expect("ensure twice");
    assert_eq!(first.handle, again.handle, "the same runtime, not a second");
    assert_eq!(first.config_hash.as_deref(), Some("hash-1"));
    assert!(
        matches!(first.phase, Phase::Stopped { .. }),
        "ensure does not start it: {first:?}"
    );
    let mut changed = spec.clone();
    changed.config_hash = "hash-2".into();
    let replaced = d.ensure(&changed, CONFIG, false).await.expect("ensure new");
    assert_eq!(replaced.config_hash.as_deref(), Some("hash-2"));
    assert_eq!(
        d.list().await.expect("list").len(),
        1,
        "replaced, not added"
    );
    t.teardown(&[spec]).await;
}

async fn start_stop_restart_and_phases(t: &dyn Target) {
    let d = t.driver();
    let spec = t.spec("life");
    let up = running(d, &spec).await;
    assert!(
        up.endpoint
            .as_deref()
            .is_some_and(|e| e.ends_with(":18789")),
        "{up:?}"
    );
    assert_eq!(up.owner, spec.owner);
    d.set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect("start twice");
    d.set_running(&spec.runtime_id, false, GRACE)
        .await
        .expect("stop");
    d.set_running(&spec.runtime_id, false, GRACE)
        .await
        .expect("stop twice");
    let stopped = until(d, &spec.runtime_id, "stopped", |o| {
        o.is_some_and(|o| matches!(o.phase, Phase::Stopped { .. }))
    })
    .await
    .expect("still there");
    assert!(!stopped.ready && stopped.endpoint.is_none(), "{stopped:?}");
    // A restart keeps the same runtime (and workspace).
    d.set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect("start again");
    crate::support::up(d, &spec.runtime_id).await;
    t.teardown(&[spec]).await;
}

async fn a_process_that_exits_is_observed_with_its_exit_code(t: &dyn Target) {
    if !t.honours_profiles() {
        return;
    }
    let d = t.driver();
    let mut spec = t.spec("exits");
    spec.profile.env.push(("STUB_EXIT_WITH".into(), "3".into()));
    d.prepare(&spec).await.expect("prepare");
    d.ensure(&spec, CONFIG, false).await.expect("ensure");
    d.set_running(&spec.runtime_id, true, GRACE)
        .await
        .expect("start");
    let ended = until(d, &spec.runtime_id, "ended", |o| {
        o.is_some_and(|o| o.phase.exit_code().is_some())
    })
    .await
    .expect("observed");
    assert_eq!(ended.phase.exit_code(), Some(3), "{ended:?}");
    assert!(!ended.ready && ended.endpoint.is_none(), "{ended:?}");
    let logs = d.logs(&spec.runtime_id, 10).await.expect("logs");
    assert!(
        logs.iter().any(|l| l.contains("exiting with status 3")),
        "{logs:?}"
    );
    t.teardown(&[spec]).await;
}

async fn a_missing_image_is_an_error_naming_it(t: &dyn Target) {
    let d = t.driver();
    let mut spec = t.spec("noimg");
    spec.image = format!("{}-missing", spec.image);
    // A runtime manager refuses an image it does not run from the first call on; an engine
    // that pulls on its nodes (Kubernetes) finds out when the runtime starts, and says so.
    let refused = match d.prepare(&spec).await {
        Ok(_) => d.ensure(&spec, CONFIG, false).await.err(),
        Err(refused) => Some(refused),
    };
    match refused {
        Some(err) => assert!(
            matches!(&err, DriverError::ImageMissing(image) if *image == spec.image)
                || matches!(&err, DriverError::ManagerRefused(m) if m.contains(&spec.image)),
            "{err}"
        ),
        None => {
            d.set_running(&spec.runtime_id, true, GRACE)
                .await
                .expect("start");
            let failed = until(d, &spec.runtime_id, "failed", |o| {
                o.is_some_and(|o| matches!(o.phase, Phase::Failed { .. }))
            })
            .await
            .expect("observed");
            assert!(
                failed
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains(&spec.image)),
                "{failed:?}"
            );
            // A start does not wait out its timeout for an image that will not come.
            assert!(
                matches!(&failed.blocked, Some(DriverError::ImageMissing(what)) if what.contains(&spec.image)),
                "{failed:?}"
            );
        }
    }
    t.teardown(&[spec]).await;
}

async fn remove_keeps_or_wipes_the_workspace(t: &dyn Target) {
    let d = t.driver();
    let (keep, wipe) = (t.spec("keep"), t.spec("wipe"));
    for spec in [&keep, &wipe] {
        running(d, spec).await;
        assert!(t.workspace_exists(spec).await, "{}", spec.runtime_id);
    }
    d.set_running(&keep.runtime_id, false, GRACE)
        .await
        .expect("stop");
    d.remove(&keep.runtime_id, false)
        .await
        .expect("remove keeping");
    d.remove(&keep.runtime_id, false)
        .await
        .expect("remove twice");
    d.remove(&wipe.runtime_id, true)
        .await
        .expect("remove wiping");
    for spec in [&keep, &wipe] {
        assert!(
            d.observe(&spec.runtime_id)
                .await
                .expect("observe")
                .is_none()
        );
    }
    assert!(t.workspace_exists(&keep).await, "kept");
    assert!(!t.workspace_exists(&wipe).await, "wiped");
    // Nothing is left to start.
    let err = d
        .set_running(&keep.runtime_id, true, GRACE)
        .await
        .expect_err("gone");
    assert!(
        matches!(
            err,
            DriverError::Missing(_) | DriverError::ManagerRefused(_)
        ),
        "{err}"
    );
    t.teardown(&[keep, wipe]).await;
}

async fn logs_stats_and_hardening(t: &dyn Target) {
    let d = t.driver();
    let spec = t.spec("hard");
    running(d, &spec).await;
    let logs = d.logs(&spec.runtime_id, 10).await.expect("logs");
    assert!(
        logs.iter().any(|l| l.contains("listening on port 18789")),
        "{logs:?}"
    );
    let stats = d.stats(&spec.runtime_id).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 64 * 1024 * 1024);
    let hardening = t.hardening(&spec).await;
    assert!(
        hardening.read_only_root && hardening.no_capabilities,
        "{hardening:?}"
    );
    assert_ne!(hardening.no_new_privileges, Some(false), "{hardening:?}");
    assert_eq!(hardening.memory_bytes, 64 * 1024 * 1024);
    match hardening.pids {
        Some(pids) => assert_eq!(pids, 64),
        None => assert!(
            d.hardening_gaps().iter().any(|g| g.contains("process")),
            "{:?}",
            d.hardening_gaps()
        ),
    }
    assert_eq!(hardening.user, "65534:65534");
    // A missing runtime has no logs and no use, and that is not an error.
    assert!(d.logs("rt-nobody-here", 5).await.expect("logs").is_empty());
    assert_eq!(
        d.stats("rt-nobody-here").await.expect("stats").memory_bytes,
        0
    );
    t.teardown(&[spec]).await;
}

async fn the_lockdown_holds(t: &dyn Target) {
    let d = t.driver();
    let (a, b) = (t.spec("alice"), t.spec("bob"));
    running(d, &a).await;
    let bob = running(d, &b).await;
    let bob_at = bob
        .endpoint
        .expect("endpoint")
        .trim_start_matches("http://")
        .to_owned();
    let mut targets = t.forbidden();
    targets.push(bob_at);
    let outcomes = t.reach_from(&a, &targets).await;
    assert_eq!(outcomes.len(), targets.len(), "{outcomes:?}");
    for (target, outcome) in targets.iter().zip(&outcomes) {
        assert!(
            !outcome.contains("connected") && !outcome.contains("http "),
            "a runtime reached {target}: {outcome}"
        );
    }
    t.teardown(&[a, b]).await;
}

async fn list_shows_this_installation_only_and_orphans_are_removed_by_label(t: &dyn Target) {
    let d = t.driver();
    let (kept, orphan) = (t.spec("kept"), t.spec("orphan"));
    for spec in [&kept, &orphan] {
        d.prepare(spec).await.expect("prepare");
        d.ensure(spec, CONFIG, false).await.expect("ensure");
    }
    let listed = clawloops_testkit::listed_ids(d).await;
    assert_eq!(
        listed,
        vec![kept.runtime_id.clone(), orphan.runtime_id.clone()]
    );
    // The reconciler's way: whatever is listed and not wanted goes, by its label.
    for seen in d.list().await.expect("list") {
        if seen.runtime_id != kept.runtime_id {
            d.remove(&seen.runtime_id, false)
                .await
                .expect("remove orphan");
        }
    }
    let left: Vec<_> = d
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.runtime_id)
        .collect();
    assert_eq!(left, vec![kept.runtime_id.clone()]);
    t.teardown(&[kept, orphan]).await;
}
