//! What admins do to runtimes: the list, the network policy, someone's limits and details.

use super::*;

/// See [`crate::api::runtime::runtime_network_policy`].
pub async fn network_policy(
    state: &AppState,
) -> Result<crate::api::runtime::NetworkPolicyView, AppError> {
    let orchestrator = state.orchestrator();
    let status = orchestrator.isolation();
    let (firewall, problem) = match status.result {
        Ok(clawloops_orchestrator::Isolation::Enforced) => ("enforced", None),
        Ok(clawloops_orchestrator::Isolation::External) => ("external", None),
        Err(problem) => ("failing", Some(problem)),
    };
    Ok(crate::api::runtime::NetworkPolicyView {
        egress: orchestrator.settings().egress.as_str().to_owned(),
        firewall: firewall.to_owned(),
        problem,
        checked_at: status.checked_at,
        hardening_gaps: orchestrator.driver().hardening_gaps(),
    })
}

/// See [`crate::api::runtime::list_runtimes`].
pub async fn list(state: &AppState) -> Result<Vec<AdminRuntime>, AppError> {
    let orchestrator = state.orchestrator();
    let views = orchestrator.views().await?;
    Ok(views
        .into_iter()
        .map(|view| {
            let limits = limits_of(orchestrator, &view.binding);
            let crash_count = view.binding.crash_count;
            let crash_looping = view.binding.observed() == ObservedState::Error
                && crash_count >= CRASH_LIMIT
                && view.task.as_ref().is_none_or(|t| t.status().is_final());
            AdminRuntime {
                user_id: view.binding.user_id.to_string(),
                username: view.binding.username.clone(),
                problem_detail: view.binding.fault().map(|f| admin_detail(&f)),
                crash_count,
                crash_looping,
                node: view.binding.node.clone(),
                limits,
                card: card(orchestrator, view),
            }
        })
        .collect())
}

fn limits_of(orchestrator: &Orchestrator, binding: &RuntimeRow) -> RuntimeLimits {
    let defaults = orchestrator.settings().limits;
    RuntimeLimits {
        memory_mb: binding.memory_mb.and_then(|m| u32::try_from(m).ok()),
        cpus: binding.cpus,
        pids: binding.pids.and_then(|p| u32::try_from(p).ok()),
        default_memory_mb: defaults.memory_mb,
        default_cpus: defaults.cpus,
        default_pids: defaults.pids,
        idle_stop_minutes: binding
            .idle_stop_minutes
            .and_then(|m| u32::try_from(m).ok()),
        default_idle_stop_minutes: orchestrator.settings().idle_stop_minutes,
        disk_mb: binding.disk_mb.and_then(|d| u32::try_from(d).ok()),
        default_disk_mb: defaults.disk_mb,
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    range: &std::ops::RangeInclusive<T>,
    unit: &str,
) -> Result<(), AppError> {
    match value {
        Some(v) if !range.contains(&v) => Err(AppError::Validation {
            field: Some(field.into()),
            message: format!(
                "{} must be between {} and {}{unit}.",
                match field {
                    "memory_mb" => "Memory",
                    "cpus" => "CPUs",
                    "idle_stop_minutes" => "Idle stop",
                    "disk_mb" => "Workspace disk",
                    _ => "Processes",
                },
                range.start(),
                range.end()
            ),
        }),
        _ => Ok(()),
    }
}

/// A user's own limits as an admin sets them (None: the deployment's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewLimits {
    pub memory_mb: Option<u32>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    pub idle_stop_minutes: Option<u32>,
    /// 0 = no limit.
    pub disk_mb: Option<u32>,
}

/// See [`crate::api::runtime::set_runtime_limits`].
pub async fn set_limits(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    limits: NewLimits,
) -> Result<RuntimeLimits, AppError> {
    let NewLimits {
        memory_mb,
        cpus,
        pids,
        idle_stop_minutes,
        disk_mb,
    } = limits;
    let id = parse_id(user_id, "User")?;
    check_range("memory_mb", memory_mb, &MEMORY_MB_RANGE, " MiB")?;
    // NaN is in no range, so it is refused here too.
    check_range("cpus", cpus, &CPUS_RANGE, "")?;
    check_range("pids", pids, &PIDS_RANGE, "")?;
    check_range(
        "idle_stop_minutes",
        idle_stop_minutes,
        &IDLE_STOP_RANGE,
        " minutes",
    )?;
    check_range(
        "disk_mb",
        disk_mb.filter(|mb| *mb != 0),
        &DISK_MB_RANGE,
        " MiB (or 0 for no limit)",
    )?;
    let orchestrator = state.orchestrator();
    orchestrator
        .set_limits(
            id,
            LimitOverride {
                memory_mb,
                cpus,
                pids,
                disk_mb,
            },
        )
        .await?;
    orchestrator.set_idle_stop(id, idle_stop_minutes).await?;
    let mut conn = state.pool().acquire().await?;
    let binding = clawloops_orchestrator::repo::get(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "Runtime".into(),
        })?;
    let id_text = id.to_string();
    audit::by_caller(
        state.pool(),
        caller,
        "runtime.limits",
        Some(Subject::user(&id_text, &binding.username)),
        Some(serde_json::json!({
            "memory_mb": memory_mb, "cpus": cpus, "pids": pids,
            "idle_stop_minutes": idle_stop_minutes, "disk_mb": disk_mb,
        })),
    )
    .await?;
    Ok(limits_of(orchestrator, &binding))
}

/// See [`crate::api::runtime::get_runtime_details`].
pub async fn details(state: &AppState, user_id: &str) -> Result<RuntimeDetails, AppError> {
    let id = parse_id(user_id, "User")?;
    let orchestrator = state.orchestrator();
    let logs = orchestrator.logs(id, LOG_LINES).await?;
    let stats = orchestrator.stats(id).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "runtime stats");
        None
    });
    Ok(RuntimeDetails {
        logs,
        memory_bytes: stats.map(|s| s.memory_bytes),
        memory_limit_bytes: stats.map(|s| s.memory_limit_bytes),
        cpu_cores: stats.map(|s| s.cpu_cores),
    })
}
