//! What the simulated API server accepts: each body read into its `k8s-openapi` type (a body
//! that does not fit is 400 Bad Request), then the checks a real API server makes that a
//! driver could get wrong (422 Invalid): names, labels, a Pod's containers and mounts, a
//! claim's size, a policy's types and address blocks.

use clawloops_driver::kubernetes::names::{dns_label, label_key, label_value, subdomain};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

/// A resource the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub resource: &'static str,
    pub api_version: &'static str,
    pub kind: &'static str,
}

pub const KINDS: &[Kind] = &[
    Kind {
        resource: "secrets",
        api_version: "v1",
        kind: "Secret",
    },
    Kind {
        resource: "pods",
        api_version: "v1",
        kind: "Pod",
    },
    Kind {
        resource: "persistentvolumeclaims",
        api_version: "v1",
        kind: "PersistentVolumeClaim",
    },
    Kind {
        resource: "services",
        api_version: "v1",
        kind: "Service",
    },
    Kind {
        resource: "events",
        api_version: "v1",
        kind: "Event",
    },
    Kind {
        resource: "networkpolicies",
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
    },
];

/// The resource `resource` under group/version `api_version`.
pub fn kind_of(api_version: &str, resource: &str) -> Option<Kind> {
    KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.resource == resource)
        .copied()
}

/// A refusal: status code, reason, message.
pub type Refusal = (u16, &'static str, String);

/// `body` as the API server would store it (read into its type and written back), or why not.
pub fn check(kind: Kind, body: Value) -> Result<Value, Refusal> {
    let typed = match kind.kind {
        "Secret" => round_trip::<Secret>(body),
        "Pod" => round_trip::<Pod>(body),
        "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(body),
        "Service" => round_trip::<Service>(body),
        "Event" => round_trip::<Event>(body),
        _ => round_trip::<NetworkPolicy>(body),
    }
    .map_err(|e| {
        (
            400,
            "BadRequest",
            format!("the body is not a {}: {e}", kind.kind),
        )
    })?;
    let name = typed["metadata"]["name"].as_str().unwrap_or_default();
    let invalid = |problems: Vec<String>| {
        (
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {}", kind.kind, problems.join(", ")),
        )
    };
    let mut problems = Vec::new();
    if !subdomain(name) {
        problems.push(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        ));
    }
    if let Some(labels) = typed["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            if !label_key(key) || !value.as_str().is_some_and(label_value) {
                problems.push(format!("metadata.labels: Invalid value: {key:?}"));
            }
        }
    }
    match kind.kind {
        "Pod" => pod(&typed, &mut problems),
        "PersistentVolumeClaim" if typed["spec"]["resources"]["requests"]["storage"].is_null() => {
            problems.push("spec.resources[storage]: Required value".into());
        }
        "NetworkPolicy" => policy(&typed, &mut problems),
        _ => {}
    }
    if problems.is_empty() {
        Ok(typed)
    } else {
        Err(invalid(problems))
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    body: Value,
) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<T>(body)?)
}

fn pod(pod: &Value, problems: &mut Vec<String>) {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        problems.push("spec.containers: Required value".into());
    }
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    for (i, c) in containers.iter().enumerate() {
        if !c["name"].as_str().is_some_and(dns_label) {
            problems.push(format!("spec.containers[{i}].name: Invalid value"));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("spec.containers[{i}].image: Required value"));
        }
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or_default();
            if !volumes.contains(&name) {
                problems.push(format!(
                    "spec.containers[{i}].volumeMounts.name: Not found: {name:?}"
                ));
            }
        }
        for (what, q) in c["resources"]["limits"].as_object().into_iter().flatten() {
            if !q.as_str().is_some_and(quantity) {
                problems.push(format!(
                    "spec.containers[{i}].resources.limits[{what}]: Invalid value"
                ));
            }
        }
    }
    if pod["spec"]["securityContext"]["runAsUser"]
        .as_i64()
        .is_some_and(|u| u < 0)
    {
        problems.push("spec.securityContext.runAsUser: Invalid value".into());
    }
    if !matches!(
        pod["spec"]["restartPolicy"].as_str(),
        None | Some("Always" | "OnFailure" | "Never")
    ) {
        problems.push("spec.restartPolicy: Unsupported value".into());
    }
}

fn policy(policy: &Value, problems: &mut Vec<String>) {
    for t in policy["spec"]["policyTypes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
            problems.push(format!("spec.policyTypes: Unsupported value: {t}"));
        }
    }
    for rule in policy["spec"]["egress"].as_array().into_iter().flatten() {
        for peer in rule["to"].as_array().into_iter().flatten() {
            let block = &peer["ipBlock"];
            if block.is_null() {
                continue;
            }
            let cidr: Option<ipnet::IpNet> = block["cidr"].as_str().and_then(|c| c.parse().ok());
            let Some(cidr) = cidr else {
                problems.push("spec.egress[].to[].ipBlock.cidr: Invalid value".into());
                continue;
            };
            for except in block["except"].as_array().into_iter().flatten() {
                let inside = except
                    .as_str()
                    .and_then(|e| e.parse::<ipnet::IpNet>().ok())
                    .is_some_and(|e| cidr.contains(&e));
                if !inside {
                    problems.push(format!(
                        "spec.egress[].to[].ipBlock.except: Invalid value: {except}"
                    ));
                }
            }
        }
    }
}

/// A resource quantity: a decimal number and an optional suffix.
fn quantity(text: &str) -> bool {
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(at);
    !number.is_empty()
        && number.parse::<f64>().is_ok()
        && [
            "", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "n", "u",
        ]
        .contains(&suffix)
}
