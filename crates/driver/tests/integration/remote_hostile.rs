//! Split mode against hostile callers: specs and ids that try to reach elsewhere are refused
//! before anything reaches the engine or the disk.

use crate::remote::{SECRET, manager};
use crate::support::{self, Fixture};
use clawloops_driver::remote::RemoteDriver;
use clawloops_driver::{DriverError, RuntimeDriver};
use std::time::Duration;

/// One way to make a spec hostile.
type Spoil = Box<dyn Fn(&mut clawloops_driver::RuntimeSpec)>;

/// Every file and directory under `root` (relative paths), to compare before and after.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A caller that sends hostile specs or ids is refused with 400 before anything reaches Docker
/// or the disk; a profile it sends is replaced by the manager's own; the manager serves the
/// first installation that called it and no other.
#[tokio::test]
async fn hostile_specs_and_ids_are_refused_and_touch_nothing() {
    let f = Fixture::new().await;
    let url = manager(&f, &["127.0.0.1/32"]).await;
    let remote = RemoteDriver::new(&url, SECRET, &f.instance).expect("remote");
    let good = f.spec("calm");
    // Something on disk already, to see that nothing beside it changes.
    remote.prepare(&good).await.expect("prepare");
    remote.ensure(&good, "{}", false).await.expect("config");
    let outside = f.config_root.path().parent().expect("parent").to_path_buf();
    let before = tree(f.config_root.path());

    let hostile: Vec<(&str, Spoil)> = vec![
        (
            "a runtime id that climbs out",
            Box::new(|s| s.runtime_id = "rt-../../../tmp/evil".into()),
        ),
        (
            "a runtime id with a slash",
            Box::new(|s| s.runtime_id = "rt-a/b".into()),
        ),
        (
            "a runtime id without its prefix",
            Box::new(|s| s.runtime_id = "..".into()),
        ),
        (
            "an installation with a path",
            Box::new(|s| s.instance = "../x".into()),
        ),
        (
            "an owner with a path",
            Box::new(|s| s.owner = "../../x".into()),
        ),
        (
            "a configuration hash with a path",
            Box::new(|s| s.config_hash = "a/../b".into()),
        ),
        (
            "an image this manager does not run",
            Box::new(|s| s.image = "debian:12".into()),
        ),
        (
            "an image that is a path",
            Box::new(|s| s.image = "../../image".into()),
        ),
        ("no memory at all", Box::new(|s| s.limits.memory_mb = 0)),
        ("endless processes", Box::new(|s| s.limits.pids = u32::MAX)),
        (
            "not a number of CPUs",
            Box::new(|s| s.limits.cpus = f64::NAN),
        ),
    ];
    for (what, spoil) in &hostile {
        let mut spec = good.clone();
        spoil(&mut spec);
        let results = [
            remote.prepare(&spec).await.err(),
            remote.ensure(&spec, "{\"evil\":true}", false).await.err(),
            remote.ensure(&spec, "{\"evil\":true}", true).await.err(),
        ];
        for result in results {
            assert!(
                matches!(&result, Some(DriverError::ManagerRefused(m)) if !m.is_empty()),
                "{what}: {result:?}"
            );
        }
    }
    for id in [
        "../images/json",
        "abc",
        "clawloops-x",
        "rt-../x",
        "rt-A",
        &"z".repeat(64),
    ] {
        let refused = [
            remote
                .set_running(id, true, Duration::from_secs(1))
                .await
                .err(),
            remote
                .set_running(id, false, Duration::from_secs(1))
                .await
                .err(),
            remote.observe(id).await.err(),
            remote.remove(id, true).await.err(),
            remote.logs(id, 5).await.err(),
            remote.stats(id).await.err(),
        ];
        for result in refused {
            assert!(
                matches!(&result, Some(DriverError::ManagerRefused(m)) if m.contains("runtime id")),
                "{id}: {result:?}"
            );
        }
    }
    assert_eq!(
        tree(f.config_root.path()),
        before,
        "nothing written or removed"
    );
    for escaped in [outside.join("evil"), "/tmp/evil".into()] {
        assert!(!escaped.exists(), "{}", escaped.display());
    }
    assert_eq!(
        f.driver.list().await.expect("list").len(),
        1,
        "no container was made beside the calm one"
    );

    // The caller's profile is not used: the container runs as the manager's profile says
    // (its user, its mounts, its environment), whatever the spec asked for.
    let mut spec = f.spec("profiled");
    spec.profile.user = "0:0".into();
    spec.profile.state_mount = "/".into();
    spec.profile.config_mount = Some("/etc".into());
    spec.profile
        .env
        .push(("LD_PRELOAD".into(), "/tmp/evil.so".into()));
    spec.profile.tmpfs.push(("/proc".into(), "rw".into()));
    remote.prepare(&spec).await.expect("prepare");
    let created = remote.ensure(&spec, "{}", false).await.expect("create");
    let seen = support::inspect(&created.handle);
    assert_eq!(seen["Config"]["User"], "65534:65534", "{}", seen["Config"]);
    let env = seen["Config"]["Env"].to_string();
    assert!(!env.contains("LD_PRELOAD"), "{env}");
    let mut targets: Vec<&str> = seen["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["Destination"].as_str())
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["/etc/clawloops", "/state"],
        "only the manager's own profile's mounts"
    );
    let tmpfs = seen["HostConfig"]["Tmpfs"].to_string();
    assert!(!tmpfs.contains("/proc"), "{tmpfs}");

    // Another installation, named in the header with the right secret, is refused.
    let other = RemoteDriver::new(&url, SECRET, "another-installation").expect("remote");
    let err = other.list().await.expect_err("refused");
    assert!(
        matches!(&err, DriverError::ManagerRefused(m) if m.contains("another installation")),
        "{err}"
    );

    f.teardown(&[good, spec]).await;
}
