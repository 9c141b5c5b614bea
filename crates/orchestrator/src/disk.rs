//! Workspace disk limits (docs/workspace-disk-limits.md). Where the engine holds a volume to
//! its size (an XFS project quota), a write past the limit fails inside the runtime. Elsewhere
//! the reconciler measures every workspace now and then; a running runtime found over its
//! limit is stopped, and a runtime over its limit is not started until an admin raises the
//! limit (or the workspace is reset).

use crate::repo::{self, RuntimeRow};
use crate::settings::RuntimeSettings;
use crate::{Action, DesiredState, Orchestrator, OrchestratorError, UserRef};
use clawloops_wire::runtime::StopCause;

const MIB: u64 = 1024 * 1024;

/// The workspace limit that applies to a binding, in MiB: the user's own (0 = none) or the
/// deployment's default.
pub fn limit_mb(settings: &RuntimeSettings, binding: &RuntimeRow) -> Option<u32> {
    match binding.disk_mb.and_then(|mb| u32::try_from(mb).ok()) {
        Some(0) => None,
        Some(mb) => Some(mb),
        None => settings.limits.disk_mb,
    }
}

/// Whether any binding has a workspace limit (else nothing needs measuring).
pub fn any_limit(settings: &RuntimeSettings, bindings: &[RuntimeRow]) -> bool {
    bindings.iter().any(|b| limit_mb(settings, b).is_some())
}

/// The workspace's last measured size and its limit, when the size is over the limit.
pub fn over_limit(settings: &RuntimeSettings, binding: &RuntimeRow) -> Option<(u64, u64)> {
    let limit = u64::from(limit_mb(settings, binding)?) * MIB;
    let used = u64::try_from(binding.disk_used_bytes?).ok()?;
    (used > limit).then_some((used, limit))
}

/// Why a runtime over its limit was stopped, for the dashboard.
pub fn stop_reason(used: u64, limit: u64) -> String {
    format!(
        "Stopped because the workspace holds {}, more than its limit of {}. \
         Ask an admin to raise the limit, then start it and remove files you no longer need.",
        size(used),
        size(limit)
    )
}

/// Why a runtime over its limit may not start.
pub fn start_refusal(used: u64, limit: u64) -> String {
    format!(
        "The workspace holds {}, more than its limit of {}, so the runtime cannot start. \
         Ask an admin to raise the limit (or reset the workspace).",
        size(used),
        size(limit)
    )
}

/// "512 KiB", "3.4 MiB", "10 GiB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What one workspace measurement did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// Workspaces measured.
    pub measured: usize,
    /// Whether the engine itself holds volumes to their limit.
    pub engine_enforced: bool,
    /// Running runtimes stopped for being over their limit.
    pub stopped: usize,
}

impl Orchestrator {
    /// One workspace measurement (see this module); does nothing while no workspace has a limit.
    pub async fn check_disks(&self) -> Result<DiskReport, OrchestratorError> {
        let settings = &self.inner.settings;
        let mut report = DiskReport::default();
        let mut conn = self.inner.pool.acquire().await?;
        let mut bindings = repo::all(&mut conn).await?;
        if !any_limit(settings, &bindings) {
            return Ok(report);
        }
        let usage = self.inner.driver.disk_usage().await?;
        report.measured = usage.by_runtime.len();
        report.engine_enforced = usage.engine_enforced;
        repo::record_disk_usage(&mut conn, &usage.by_runtime).await?;
        let busy: std::collections::HashSet<_> =
            repo::busy_users(&mut conn).await?.into_iter().collect();
        for binding in &mut bindings {
            let Some(&used) = usage.by_runtime.get(&binding.runtime_id) else {
                continue;
            };
            if busy.contains(&binding.user_id) || binding.desired() != DesiredState::Running {
                continue;
            }
            // What was just recorded, without reading every binding again.
            binding.disk_used_bytes = Some(i64::try_from(used).unwrap_or(i64::MAX));
            let Some((used, limit)) = over_limit(settings, binding) else {
                continue;
            };
            let reason = stop_reason(used, limit);
            tracing::info!(user = %binding.username, used, limit, "stopping a runtime over its workspace limit");
            let user = UserRef {
                id: binding.user_id,
                username: &binding.username,
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            self.request_in(&mut tx, user, Action::Stop, false, "disk check")
                .await?;
            repo::set_stop_reason(&mut tx, user.id, Some((StopCause::Disk, &reason))).await?;
            tx.commit().await?;
            report.stopped += 1;
        }
        if report.stopped > 0 {
            self.wake();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(own: Option<i32>, used: Option<i64>) -> RuntimeRow {
        let mut b = crate::RuntimeRow::sample("ana");
        b.disk_mb = own;
        b.disk_used_bytes = used;
        b
    }

    #[test]
    fn a_users_own_limit_wins_and_zero_means_none() {
        let mut settings = RuntimeSettings::default();
        settings.limits.disk_mb = Some(100);
        assert_eq!(limit_mb(&settings, &binding(None, None)), Some(100));
        assert_eq!(limit_mb(&settings, &binding(Some(500), None)), Some(500));
        assert_eq!(limit_mb(&settings, &binding(Some(0), None)), None);
        settings.limits.disk_mb = None;
        assert_eq!(limit_mb(&settings, &binding(None, None)), None);
        assert!(!any_limit(
            &settings,
            &[binding(None, None), binding(Some(0), None)]
        ));
        assert!(any_limit(
            &settings,
            &[binding(None, None), binding(Some(1), None)]
        ));
    }

    #[test]
    fn over_the_limit_only_when_measured_above_it() {
        let mut settings = RuntimeSettings::default();
        settings.limits.disk_mb = Some(1);
        let mib = 1024 * 1024;
        assert_eq!(
            over_limit(&settings, &binding(None, None)),
            None,
            "never measured"
        );
        assert_eq!(
            over_limit(&settings, &binding(None, Some(mib))),
            None,
            "at the limit"
        );
        assert_eq!(
            over_limit(&settings, &binding(None, Some(mib + 1))),
            Some((mib.unsigned_abs() + 1, mib.unsigned_abs()))
        );
        assert_eq!(
            over_limit(&settings, &binding(Some(0), Some(i64::MAX))),
            None
        );
        assert_eq!(
            over_limit(&settings, &binding(Some(2), Some(mib + 1))),
            None
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(512 * 1024), "512 KiB");
        assert_eq!(size(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(size(10 * 1024 * 1024 * 1024), "10 GiB");
        assert!(
            stop_reason(2 * 1024 * 1024, 1024 * 1024)
                .contains("holds 2 MiB, more than its limit of 1 MiB")
        );
    }
}
