//! From bollard's types to the driver's: errors (404 and 409 are outcomes, not failures) and
//! container summaries.

use super::*;

/// Docker's answer to a `size` its local volume driver cannot enforce.
pub(super) fn quota_unsupported(err: &BollardError) -> bool {
    matches!(err, BollardError::DockerResponseServerError { message, .. }
        if message.to_lowercase().contains("quota"))
}

pub(crate) fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Turns a bollard error into words; `image` names the image for a 404 on create.
pub(crate) fn classify(err: &BollardError, image: Option<&str>) -> DriverError {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let lower = message.to_lowercase();
            if lower.contains("no space left on device") {
                DriverError::DiskFull(message.clone())
            } else if *status_code == 404 && image.is_some() && lower.contains("image") {
                DriverError::ImageMissing(image.unwrap_or_default().to_owned())
            } else if *status_code == 409 {
                DriverError::Conflict
            } else {
                DriverError::Docker(message.clone())
            }
        }
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::RequestTimeoutError => DriverError::Unreachable(err.to_string()),
        _ => DriverError::Docker(err.to_string()),
    }
}

pub(super) fn observation_from(summary: ContainerSummary) -> Option<Found> {
    let labels = summary.labels.unwrap_or_default();
    let runtime_id = labels.get(labels::RUNTIME)?.clone();
    let phase = match summary.state {
        Some(ContainerSummaryStateEnum::RUNNING) => Phase::Running,
        Some(ContainerSummaryStateEnum::PAUSED) => Phase::Paused,
        Some(ContainerSummaryStateEnum::CREATED) => Phase::Stopped { exit_code: None },
        Some(ContainerSummaryStateEnum::RESTARTING) => Phase::Starting,
        Some(ContainerSummaryStateEnum::EXITED) => Phase::Stopped {
            exit_code: Some(exit_code(summary.status.as_deref().unwrap_or_default())),
        },
        _ => Phase::Failed { exit_code: None },
    };
    let reason =
        matches!(phase, Phase::Failed { .. }).then(|| summary.status.clone().unwrap_or_default());
    let ip: Option<std::net::IpAddr> = summary
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|networks| {
            networks
                .into_iter()
                .find(|(name, _)| name.starts_with("clawloops-"))
                .and_then(|(_, endpoint)| endpoint.ip_address)
        })
        .and_then(|ip| ip.parse().ok());
    let port = labels.get(labels::PORT).and_then(|p| p.parse::<u16>().ok());
    let endpoint = match (ip, port) {
        (Some(ip), Some(port)) if phase == Phase::Running => Some(format!("http://{ip}:{port}")),
        _ => None,
    };
    Some(Found {
        observed: Observation {
            handle: summary.id.unwrap_or_default(),
            owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
            config_hash: labels.get(labels::CONFIG_HASH).cloned(),
            runtime_id,
            phase,
            ready: false,
            image: summary.image.unwrap_or_default(),
            endpoint,
            node: None,
            reason,
            blocked: None,
        },
        ready_path: labels.get(labels::READY_PATH).cloned(),
    })
}

/// `Exited (137) 3 seconds ago` → 137.
pub(super) fn exit_code(status: &str) -> i64 {
    status
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(code, _)| code.parse().ok())
        .unwrap_or(-1)
}

/// Memory (without the page cache the kernel can drop) and CPU (cores busy between the sample
/// and the one before it) from one stats sample.
pub(crate) fn stats_from(sample: bollard::models::ContainerStatsResponse) -> Stats {
    let memory = sample.memory_stats.unwrap_or_default();
    let cache = memory
        .stats
        .as_ref()
        .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
        .unwrap_or(0);
    let cpu = |stats: Option<bollard::models::ContainerCpuStats>| {
        stats.map_or((0u64, 0u64, 1u32), |s| {
            (
                s.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
                s.system_cpu_usage.unwrap_or(0),
                s.online_cpus.unwrap_or(1),
            )
        })
    };
    let (total, system, cpus) = cpu(sample.cpu_stats);
    let (pre_total, pre_system, _) = cpu(sample.precpu_stats);
    let cpu_delta = total.saturating_sub(pre_total) as f64;
    let system_delta = system.saturating_sub(pre_system) as f64;
    let cpu_cores = if system_delta > 0.0 {
        cpu_delta / system_delta * f64::from(cpus)
    } else {
        0.0
    };
    Stats {
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        cpu_cores,
    }
}
