//! A runtime's resource use, from the cluster's metrics API (`metrics.k8s.io`, served by
//! metrics-server) and its Pod's limits.

use crate::{DriverError, Stats};
use ::kube::api::{Api, ApiResource, DynamicObject};
use k8s_openapi::api::core::v1::Pod;

/// The resource metrics-server serves per pod.
fn pod_metrics() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

/// Memory and CPU use of the runtime's Pod: zeros while the cluster has no sample yet (or no
/// metrics API at all), with the Pod's memory limit.
pub async fn of(client: &::kube::Client, namespace: &str, pod: &Pod) -> Result<Stats, DriverError> {
    let limit = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .first()?
                .resources
                .as_ref()?
                .limits
                .as_ref()?
                .get("memory")
                .cloned()
        })
        .and_then(|q| bytes(&q.0))
        .unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &pod_metrics());
    let sample = match api.get_opt(&name).await {
        Ok(sample) => sample,
        // No metrics API in this cluster (404 for the group) or no right to read it.
        Err(e) if matches!(super::errors::status(&e), Some(403 | 404 | 503)) => None,
        Err(e) => return Err(super::classify(&e, None)),
    };
    let (mut memory, mut cpu) = (0u64, 0f64);
    for container in sample
        .as_ref()
        .and_then(|s| s.data.get("containers")?.as_array().cloned())
        .unwrap_or_default()
    {
        let usage = &container["usage"];
        memory += usage["memory"].as_str().and_then(bytes).unwrap_or_default();
        cpu += usage["cpu"].as_str().and_then(cores).unwrap_or_default();
    }
    Ok(Stats {
        memory_bytes: memory,
        memory_limit_bytes: limit,
        cpu_cores: cpu,
    })
}

/// Splits a quantity into its number and suffix.
fn split(quantity: &str) -> Option<(f64, &str)> {
    let at = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(at);
    Some((number.parse().ok()?, suffix))
}

/// A memory quantity (`123456`, `12Ki`, `64Mi`, `1G`) in bytes.
pub fn bytes(quantity: &str) -> Option<u64> {
    let (number, suffix) = split(quantity)?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    let value = (number * factor).round();
    // Non-negative and finite by construction; u64 holds every memory size.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (value.is_finite() && value >= 0.0).then_some(value as u64)
}

/// A CPU quantity (`1`, `250m`, `1234567n`, `12u`) in cores.
pub fn cores(quantity: &str) -> Option<f64> {
    let (number, suffix) = split(quantity)?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "u" => 1e-6,
        "n" => 1e-9,
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes_and_cores() {
        assert_eq!(bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(bytes("12345Ki"), Some(12345 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("4096"), Some(4096));
        assert_eq!(bytes("12Qi"), None);
        assert_eq!(cores("250m"), Some(0.25));
        assert!((cores("1500000n").unwrap_or_default() - 0.0015).abs() < 1e-12);
        assert_eq!(cores("2"), Some(2.0));
        assert_eq!(cores("x"), None);
    }
}
