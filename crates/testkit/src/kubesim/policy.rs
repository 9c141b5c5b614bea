//! Network policies judged as a policy-enforcing network plugin would: whether a TCP
//! connection from one Pod to an address is allowed by the policies stored in the simulator.
//! The simulator's own network does not enforce them (no CNI here), so the lockdown of
//! runtimes on Kubernetes is asserted on the rules the driver installed.

use super::KubeSim;
use serde_json::Value;
use std::net::IpAddr;

/// Whether `selector` (a LabelSelector) selects `labels`. An empty selector selects all.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// One end of a connection: a Pod (namespace and labels) or an address outside the cluster.
#[derive(Debug, Clone)]
struct End {
    ip: IpAddr,
    pod: Option<(String, Value)>,
}

/// Whether `peer` (a NetworkPolicyPeer of a policy in `policy_ns`) is `end`.
fn peer_is(peer: &Value, policy_ns: &str, end: &End) -> bool {
    if let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) {
        let inside = |cidr: &Value| {
            cidr.as_str()
                .and_then(|c| c.parse::<ipnet::IpNet>().ok())
                .is_some_and(|net| net.contains(&end.ip))
        };
        return inside(&block["cidr"])
            && !block["except"].as_array().into_iter().flatten().any(inside);
    }
    let Some((ns, labels)) = &end.pod else {
        return false;
    };
    let ns_labels = serde_json::json!({"kubernetes.io/metadata.name": ns});
    let namespace_ok = match peer.get("namespaceSelector").filter(|s| !s.is_null()) {
        Some(selector) => selects(selector, &ns_labels),
        None => ns == policy_ns,
    };
    let pod_ok = peer
        .get("podSelector")
        .filter(|s| !s.is_null())
        .is_none_or(|selector| selects(selector, labels));
    namespace_ok && pod_ok
}

fn port_ok(ports: &Value, port: u16) -> bool {
    match ports.as_array() {
        None => true,
        Some(ports) if ports.is_empty() => true,
        Some(ports) => ports.iter().any(|p| {
            p["protocol"].as_str().unwrap_or("TCP") == "TCP"
                && match (p["port"].as_u64(), p["endPort"].as_u64()) {
                    (None, _) => true,
                    (Some(from), Some(to)) => (from..=to).contains(&u64::from(port)),
                    (Some(only), None) => only == u64::from(port),
                }
        }),
    }
}

/// Whether the policies of `ns` selecting `subject` (direction `Ingress` or `Egress`) allow
/// traffic with `other` on `port`. Unselected pods are open in that direction.
fn direction_allows(
    policies: &[Value],
    ns: &str,
    subject: &Value,
    direction: &str,
    other: &End,
    port: u16,
) -> bool {
    let (rules, peers) = if direction == "Egress" {
        ("egress", "to")
    } else {
        ("ingress", "from")
    };
    let selecting: Vec<&Value> = policies
        .iter()
        .filter(|p| {
            selects(&p["spec"]["podSelector"], subject)
                && p["spec"]["policyTypes"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == direction))
        })
        .collect();
    selecting.is_empty()
        || selecting.iter().any(|p| {
            p["spec"][rules]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| {
                    port_ok(&rule["ports"], port)
                        && match rule[peers].as_array() {
                            None => true,
                            Some(list) if list.is_empty() => true,
                            Some(list) => list.iter().any(|peer| peer_is(peer, ns, other)),
                        }
                })
        })
}

impl KubeSim {
    /// Whether Pod `pod` in `ns` may open a TCP connection to `target` (`ip:port`): its own
    /// policies' egress, and when the target is a Pod, that Pod's ingress. Outcomes as the
    /// stub's probe words them: `connected` or `blocked by network policy`.
    pub fn reach(&self, ns: &str, pod: &str, target: &str) -> String {
        let Some(from) = self.object("pods", ns, pod) else {
            return format!("no pod {pod}");
        };
        let Some((ip, port)) = target.rsplit_once(':') else {
            return format!("{target} is not ip:port");
        };
        let (Ok(ip), Ok(port)) = (
            ip.trim_matches(['[', ']']).parse::<IpAddr>(),
            port.parse::<u16>(),
        ) else {
            return format!("{target} is not ip:port");
        };
        let pods = self.sim.lock().everywhere("pods");
        let target_pod = pods
            .iter()
            .find(|p| p["status"]["podIP"].as_str() == Some(&ip.to_string()));
        let to = End {
            ip,
            pod: target_pod.map(|p| {
                (
                    p["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    p["metadata"]["labels"].clone(),
                )
            }),
        };
        let from_ip = from["status"]["podIP"]
            .as_str()
            .and_then(|i| i.parse().ok());
        let source = End {
            ip: from_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            pod: Some((ns.to_owned(), from["metadata"]["labels"].clone())),
        };
        let policies = self.objects("networkpolicies", ns);
        let out = direction_allows(
            &policies,
            ns,
            &from["metadata"]["labels"],
            "Egress",
            &to,
            port,
        );
        let inward = match (&to.pod, target_pod) {
            (Some((target_ns, labels)), Some(_)) => {
                let theirs = self.objects("networkpolicies", target_ns);
                direction_allows(&theirs, target_ns, labels, "Ingress", &source, port)
            }
            _ => true,
        };
        if out && inward {
            "connected".to_owned()
        } else {
            "blocked by network policy".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_and_peers() {
        let labels = json!({"app": "traefik", "tier": "edge"});
        assert!(selects(&json!({}), &labels));
        assert!(selects(
            &json!({"matchLabels": {"app": "traefik"}}),
            &labels
        ));
        assert!(!selects(&json!({"matchLabels": {"app": "x"}}), &labels));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}),
            &labels
        ));
        assert!(!selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            &labels
        ));
        let public = End {
            ip: "8.8.8.8".parse().expect("ip"),
            pod: None,
        };
        let private = End {
            ip: "10.1.2.3".parse().expect("ip"),
            pod: None,
        };
        let block = json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}});
        assert!(peer_is(&block, "ns", &public));
        assert!(!peer_is(&block, "ns", &private));
        let entry = End {
            ip: "10.0.0.9".parse().expect("ip"),
            pod: Some(("edge".into(), labels.clone())),
        };
        let peer = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}, "podSelector": {"matchLabels": {"app": "traefik"}}});
        assert!(peer_is(&peer, "ns", &entry));
        assert!(
            !peer_is(
                &json!({"podSelector": {"matchLabels": {"app": "traefik"}}}),
                "ns",
                &entry
            ),
            "another namespace"
        );
        assert!(port_ok(&json!([{"port": 8001, "protocol": "TCP"}]), 8001));
        assert!(!port_ok(&json!([{"port": 53, "protocol": "UDP"}]), 53));
    }
}
