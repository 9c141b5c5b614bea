//! Runtime networks: one bridge per runtime on a free /28 of the pool, with the entry proxy
//! joined at a known address and the bridge named so the host firewall can find it.

use super::*;

impl DockerDriver {
    /// The runtime network's subnet and the entry proxy's address on it, when the network
    /// exists (one inspect, which is all a reconciler pass needs when nothing changed).
    pub(super) async fn network_state(
        &self,
        name: &str,
    ) -> Result<Option<NetworkState>, DriverError> {
        let network = match self.docker.inspect_network(name, None).await {
            Ok(network) => network,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(classify(&e, None)),
        };
        let Some(subnet) = network
            .ipam
            .and_then(|ipam| ipam.config)
            .into_iter()
            .flatten()
            .find_map(|c| c.subnet?.parse().ok())
        else {
            return Err(DriverError::Docker(format!(
                "the runtime network {name} has no IPv4 subnet"
            )));
        };
        let bridge = network
            .options
            .as_ref()
            .and_then(|o| o.get(BRIDGE_NAME))
            .cloned();
        let entry = self.entry_proxy.as_ref().and_then(|proxy| {
            network
                .containers
                .unwrap_or_default()
                .into_values()
                .find(|e| e.name.as_deref() == Some(proxy.as_str()))
                .and_then(|e| e.ipv4_address)
        });
        Ok(Some(NetworkState {
            subnet,
            entry,
            bridge,
        }))
    }

    /// Connects the entry proxy to the runtime's network at the subnet's second host address
    /// (the first is the gateway, i.e. the Docker host, which is never trusted). Idempotent.
    pub(super) async fn connect_entry(
        &self,
        spec: &RuntimeSpec,
        network: &NetworkState,
    ) -> Result<Option<std::net::IpAddr>, DriverError> {
        let Some(proxy) = &self.entry_proxy else {
            return Ok(None);
        };
        let Some(address) = entry_address(network.subnet) else {
            return Err(DriverError::Docker(format!(
                "the runtime network {} has no room for the entry proxy",
                network.subnet
            )));
        };
        let name = spec.network_name();
        if let Some(current) = &network.entry {
            if current.split('/').next() == Some(address.to_string().as_str()) {
                return Ok(Some(address.into()));
            }
            // Attached at another address (made by hand?): move it to the agreed one.
            self.disconnect_entry(&name).await?;
        }
        let proxy_id = match self.docker.inspect_container(proxy, None).await {
            Ok(c) => c.id.unwrap_or_default(),
            Err(e) if status_of(&e) == Some(404) => {
                return Err(DriverError::EntryProxyMissing(proxy.clone()));
            }
            Err(e) => return Err(classify(&e, None)),
        };
        let request = NetworkConnectRequest {
            container: proxy_id,
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(address.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        match self.docker.connect_network(&name, request).await {
            Ok(()) => Ok(Some(address.into())),
            // A concurrent prepare connected it first.
            Err(e) if e.to_string().contains("already exists") => Ok(Some(address.into())),
            Err(e) => Err(classify(&e, None)),
        }
    }

    pub(super) async fn disconnect_entry(&self, network: &str) -> Result<(), DriverError> {
        let Some(proxy) = &self.entry_proxy else {
            return Ok(());
        };
        let request = NetworkDisconnectRequest {
            container: proxy.clone(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(404)) => Ok(()),
            Err(e) if e.to_string().contains("not connected") => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// The runtime's own network, on a free /28 of the pool, with a bridge the host firewall
    /// recognises ([`firewall::bridge_name`]); internal unless the runtime may reach the public
    /// internet. A network of another egress class (the setting changed) or from before the
    /// firewall is replaced, with the runtime's container. Concurrent creations that pick the
    /// same subnet are told so by Docker ("overlaps") and try again.
    pub(super) async fn create_network(
        &self,
        spec: &RuntimeSpec,
    ) -> Result<NetworkState, DriverError> {
        let name = spec.network_name();
        let bridge = firewall::bridge_name(spec.egress, &name);
        if let Some(state) = self.network_state(&name).await? {
            if state.bridge.as_deref() == Some(bridge.as_str()) {
                return Ok(state);
            }
            tracing::info!(network = %name, egress = spec.egress.as_str(), "replacing a runtime network of another egress class");
            if let Some(old) = self.container(&spec.runtime_id).await? {
                self.remove_container(&old.observed.handle).await?;
            }
            self.disconnect_entry(&name).await?;
            match self.docker.remove_network(&name).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(classify(&e, None)),
            }
        }
        // Subnets Docker refused as overlapping: another creation may hold one before its
        // network is listed (or a host route covers it), so it is not tried again.
        let mut refused: Vec<ipnet::IpNet> = Vec::new();
        for _ in 0..8 {
            let all = self
                .docker
                .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                .await
                .map_err(|e| classify(&e, None))?;
            if all.iter().any(|n| n.name.as_deref() == Some(name.as_str())) {
                return self.existing_network(&name).await;
            }
            let used: Vec<ipnet::IpNet> = all
                .iter()
                .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
                .flatten()
                .filter_map(|c| c.subnet.as_deref()?.parse().ok())
                .chain(refused.iter().copied())
                .collect();
            let Some(subnet) = free_subnet(self.subnet_pool, &used, &spec.runtime_id) else {
                return Err(DriverError::Docker(format!(
                    "no free subnet is left in the runtime network pool {} (widen runtime_network_pool)",
                    self.subnet_pool
                )));
            };
            // Internal (no route out) unless public egress is allowed; other runtimes are on
            // other networks either way, and the host firewall has the last word.
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(spec.egress == firewall::Egress::None),
                options: Some(HashMap::from([(BRIDGE_NAME.to_owned(), bridge.clone())])),
                labels: Some(spec.labels()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    return Ok(NetworkState {
                        subnet,
                        entry: None,
                        bridge: Some(bridge),
                    });
                }
                Err(e) if status_of(&e) == Some(409) => return self.existing_network(&name).await,
                Err(e) if e.to_string().contains("overlaps") => {
                    refused.push(ipnet::IpNet::V4(subnet));
                }
                Err(e) => return Err(classify(&e, None)),
            }
        }
        Err(DriverError::Docker(
            "no free subnet could be claimed for the runtime network after 8 tries".into(),
        ))
    }

    pub(super) async fn existing_network(&self, name: &str) -> Result<NetworkState, DriverError> {
        self.network_state(name).await?.ok_or_else(|| {
            DriverError::Docker(format!(
                "the runtime network {name} vanished while it was made"
            ))
        })
    }
}

/// A runtime network as `prepare` needs it.
pub(super) struct NetworkState {
    pub(super) subnet: Ipv4Net,
    /// The entry proxy's address on it (`10.213.0.18/28`), when attached.
    pub(super) entry: Option<String>,
    /// Its bridge interface's name, when ClawLoops chose it.
    pub(super) bridge: Option<String>,
}

/// The network option that names a bridge network's interface.
pub(super) const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// The entry proxy's address on a runtime network: the second host (the first is the gateway).
pub(super) fn entry_address(subnet: Ipv4Net) -> Option<std::net::Ipv4Addr> {
    subnet.hosts().nth(1)
}

/// The default pool runtime networks come from: 10.213.0.0/16.
pub fn default_subnet_pool() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 16).unwrap_or_default()
}

/// A /28 of `pool` that overlaps none of `used`, searched from a place that depends on the
/// runtime (so that concurrent creations seldom pick the same one).
pub(super) fn free_subnet(
    pool: Ipv4Net,
    used: &[ipnet::IpNet],
    runtime_id: &str,
) -> Option<Ipv4Net> {
    let candidates: Vec<Ipv4Net> = pool.subnets(28.max(pool.prefix_len())).ok()?.collect();
    if candidates.is_empty() {
        return None;
    }
    let start = runtime_id.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    }) % candidates.len();
    let overlaps = |c: &Ipv4Net| {
        used.iter().any(|u| match u {
            ipnet::IpNet::V4(u) => u.contains(&c.network()) || c.contains(&u.network()),
            ipnet::IpNet::V6(_) => false,
        })
    };
    (0..candidates.len())
        .map(|i| candidates[(start + i) % candidates.len()])
        .find(|c| !overlaps(c))
}
