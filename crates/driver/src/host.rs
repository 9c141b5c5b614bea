//! The Docker host's own address on a bridge network: where a container on that network reaches
//! a process on the host (the entry proxy reaches the control plane there).
//!
//! Docker reports it in one optional field, the gateway of the network's IPAM configuration,
//! which Debian's docker.io 20.10 leaves out for the default bridge (only the subnet is listed).
//! So the field is only the first source: the address of the network's bridge interface on this
//! machine, inside the network's subnet, is the second, and it is always there while the
//! network exists.

use crate::DriverError;
use bollard::Docker;
use bollard::models::NetworkInspect;
use std::net::{IpAddr, Ipv4Addr};

/// The option naming a bridge network's interface on the host (`docker0` for the default one).
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// The host's IPv4 address on network `network` of the local engine (`DOCKER_HOST` or the
/// default socket).
pub async fn local_host_address(network: &str) -> Result<Ipv4Addr, DriverError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| DriverError::Unreachable(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| DriverError::Unreachable(e.to_string()))?;
    host_address(&docker, network).await
}

/// The host's IPv4 address on network `network` (a bridge network of the local engine).
pub async fn host_address(docker: &Docker, network: &str) -> Result<Ipv4Addr, DriverError> {
    let inspect = docker
        .inspect_network(network, None)
        .await
        .map_err(|e| DriverError::Unreachable(format!("inspecting network {network}: {e}")))?;
    host_address_from(&inspect, &interface_addresses()?).map_err(DriverError::Docker)
}

/// The host's IPv4 address on a network, from its inspect answer and this machine's interface
/// addresses (`(interface, address)`): the IPAM gateway when Docker lists one, otherwise the
/// address the network's bridge interface has inside the network's subnet.
pub fn host_address_from(
    network: &NetworkInspect,
    interfaces: &[(String, IpAddr)],
) -> Result<Ipv4Addr, String> {
    let name = network.name.as_deref().unwrap_or("?");
    let configs = network
        .ipam
        .as_ref()
        .and_then(|ipam| ipam.config.as_deref())
        .unwrap_or_default();
    if let Some(gateway) = configs
        .iter()
        .find_map(|c| c.gateway.as_deref()?.parse::<Ipv4Addr>().ok())
    {
        return Ok(gateway);
    }
    let subnets: Vec<ipnet::Ipv4Net> = configs
        .iter()
        .filter_map(|c| c.subnet.as_deref()?.parse().ok())
        .collect();
    let bridge = bridge_interface(network).ok_or_else(|| {
        format!("network {name} names no bridge interface (is it a bridge network?)")
    })?;
    interfaces
        .iter()
        .filter(|(iface, _)| *iface == bridge)
        .find_map(|(_, addr)| match addr {
            IpAddr::V4(v4) if subnets.is_empty() || subnets.iter().any(|s| s.contains(v4)) => {
                Some(*v4)
            }
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "Docker lists no gateway for network {name}, and its bridge interface {bridge} has no \
                 IPv4 address here: run this on the Docker host"
            )
        })
}

/// The network's bridge interface: named by an option, or `br-` and the id's first 12
/// characters (Docker's default for user-defined bridges).
fn bridge_interface(network: &NetworkInspect) -> Option<String> {
    if let Some(name) = network.options.as_ref().and_then(|o| o.get(BRIDGE_NAME)) {
        return Some(name.clone());
    }
    if network.driver.as_deref() != Some("bridge") {
        return None;
    }
    let id = network.id.as_deref()?;
    Some(format!("br-{}", id.get(..12)?))
}

/// Every address of every interface on this machine.
pub fn interface_addresses() -> Result<Vec<(String, IpAddr)>, DriverError> {
    let all = nix::ifaddrs::getifaddrs()
        .map_err(|e| DriverError::Docker(format!("listing this machine's addresses: {e}")))?;
    Ok(all
        .filter_map(|a| {
            let addr = a.address?;
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(addr.as_sockaddr_in6()?.ip())
            };
            Some((a.interface_name, ip))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::host_address_from;
    use bollard::models::NetworkInspect;
    use std::net::IpAddr;

    fn fixture(text: &str) -> NetworkInspect {
        serde_json::from_str(text).expect("inspect fixture")
    }

    fn ifaces(list: &[(&str, &str)]) -> Vec<(String, IpAddr)> {
        list.iter()
            .map(|(i, a)| ((*i).to_owned(), a.parse().expect("address")))
            .collect()
    }

    /// Debian's docker.io 20.10.24 (API 1.41), `GET /networks/bridge`, as read on a fresh
    /// machine: the IPAM configuration has the subnet only.
    const DOCKER_20_10: &str = include_str!("../tests/fixtures/bridge-docker-20.10.json");
    /// Docker CE 28 (API 1.50): the gateway is listed, and `EnableIPv4` is new.
    const DOCKER_CE_28: &str = include_str!("../tests/fixtures/bridge-docker-ce-28.json");

    #[test]
    fn docker_20_10_without_a_gateway_uses_the_bridge_interface() {
        let host = ifaces(&[
            ("lo", "127.0.0.1"),
            ("eth0", "192.0.2.2"),
            ("eth0", "fd00::2"),
            ("docker0", "fe80::42:acff:fe11:1"),
            ("docker0", "172.17.0.1"),
            ("br-0123456789ab", "10.213.0.1"),
        ]);
        assert_eq!(
            host_address_from(&fixture(DOCKER_20_10), &host),
            Ok("172.17.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn docker_ce_lists_the_gateway() {
        // Read from the field: no interface is needed (the engine may be another machine's).
        assert_eq!(
            host_address_from(&fixture(DOCKER_CE_28), &[]),
            Ok("172.17.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn a_bridge_with_another_address_or_none_is_an_error_that_says_why() {
        // An address outside the subnet is not the gateway (a stale or foreign interface).
        let wrong = ifaces(&[("docker0", "10.9.9.9")]);
        let err = host_address_from(&fixture(DOCKER_20_10), &wrong).expect_err("no address");
        assert!(
            err.contains("docker0") && err.contains("Docker host"),
            "{err}"
        );
        assert!(host_address_from(&fixture(DOCKER_20_10), &[]).is_err());
    }

    #[test]
    fn user_defined_bridges_are_found_by_their_default_interface_name() {
        let mut network = fixture(DOCKER_20_10);
        network.options = None;
        network.id = Some("0123456789abcdef".into());
        let host = ifaces(&[("br-0123456789ab", "172.17.0.1")]);
        assert_eq!(
            host_address_from(&network, &host),
            Ok("172.17.0.1".parse().expect("ip"))
        );
    }
}
