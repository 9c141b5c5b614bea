//! The network policies that lock runtimes down: the installation's baseline (runtime pods
//! reach nothing and nobody reaches them) and each runtime's own (in from the entry proxy to
//! its port; out to the entry proxy's gateway port, the cluster DNS, and with public egress
//! public addresses only).

use super::KubeSettings;
use crate::firewall::{BLOCKED_V4, ENTRY_RUNTIME_PORT, Egress};
use crate::{RuntimeSpec, labels};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Selects this installation's runtime pods (one runtime's, with `runtime_id`).
fn runtime_selector(instance: &str, runtime_id: Option<&str>) -> LabelSelector {
    let mut labels = BTreeMap::from([(labels::MANAGED_BY.to_owned(), instance.to_owned())]);
    if let Some(id) = runtime_id {
        labels.insert(labels::RUNTIME.to_owned(), id.to_owned());
    }
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

/// The entry proxy's pods, in their namespace.
fn entry_peer(settings: &KubeSettings) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(namespace_named(&settings.entry_namespace)),
        pod_selector: Some(LabelSelector {
            match_labels: Some(settings.entry_labels.clone()),
            match_expressions: None,
        }),
        ip_block: None,
    }
}

fn namespace_named(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        )])),
        match_expressions: None,
    }
}

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    }
}

/// The runtime's network policy: in from the entry proxy to its port only; out to the entry
/// proxy's gateway port, the cluster DNS, and with public egress public addresses (never
/// private ranges, link-local or the cloud metadata address).
/// Owned by the runtime's Secret (`owner`) once that exists.
pub fn network_policy(
    spec: &RuntimeSpec,
    settings: &KubeSettings,
    owner: Option<OwnerReference>,
) -> NetworkPolicy {
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            pod_selector: Some(LabelSelector {
                match_labels: Some(settings.dns_labels.clone()),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .iter()
                .map(|protocol| NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some((*protocol).to_owned()),
                    end_port: None,
                })
                .collect(),
        ),
    };
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![entry_peer(settings)]),
            ports: Some(vec![tcp(ENTRY_RUNTIME_PORT)]),
        },
        dns,
    ];
    if spec.egress == Egress::Public {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".to_owned(),
                    except: Some(BLOCKED_V4.iter().map(|c| (*c).to_owned()).collect()),
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: None,
        });
    }
    let mut metadata = super::objects::meta(spec.names().base, spec, settings);
    metadata.owner_references = owner.map(|o| vec![o]);
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(runtime_selector(&spec.instance, Some(&spec.runtime_id))),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![entry_peer(settings)]),
                ports: Some(vec![tcp(spec.profile.port)]),
            }]),
            egress: Some(egress),
        }),
    }
}

/// The installation's baseline: every runtime pod denied everything in and out unless its own
/// policy allows it (policies add up), so a runtime whose policy is missing reaches nothing.
pub fn baseline(instance: &str, namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-runtimes-deny",
                crate::spec::name_prefix(instance)
            )),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                labels::MANAGED_BY.to_owned(),
                instance.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(runtime_selector(instance, None)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    }
}
