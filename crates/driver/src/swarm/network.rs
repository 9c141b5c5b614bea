//! Each runtime's network: an internal, attachable overlay. Internal means no gateway: a task
//! on it has no route to its node, the other nodes, the registry or the internet; the entry
//! proxy, joined to it, is its one peer. The lockdown is the engine's, on every node, with no
//! host firewall to keep.

use super::*;
use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest};
use bollard::models::{NetworkDisconnectRequest, NetworkInspect};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptionsBuilder};
use std::net::IpAddr;

impl SwarmDriver {
    /// Makes the runtime's overlay network (once: Swarm would make a second of the same name).
    pub(super) async fn create_network(&self, spec: &RuntimeSpec) -> Result<String, DriverError> {
        let name = spec.network_name();
        if self.network(&name).await?.is_some() {
            return Ok(name);
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("overlay".into()),
            internal: Some(true),
            attachable: Some(true),
            labels: Some(spec.labels()),
            ..Default::default()
        };
        match self.manager.create_network(request).await {
            Ok(_) => Ok(name),
            Err(e) if status_of(&e) == Some(409) => Ok(name),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// This installation's network of that name, if there is one.
    async fn network(&self, name: &str) -> Result<Option<NetworkInspect>, DriverError> {
        match self
            .manager
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(network) => Ok(Some(network)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Every network of this installation is internal, or an error naming those that are not
    /// (made by hand or by an older version: no runtime may start beside them).
    pub(super) async fn check_networks(&self) -> Result<(), DriverError> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&self.filter(None))
            .build();
        let networks = self
            .manager
            .list_networks(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        let open: Vec<String> = networks
            .into_iter()
            .filter(|n| n.internal != Some(true))
            .filter_map(|n| n.name)
            .collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Isolation(format!(
                "runtime networks that are not internal: {}",
                open.join(", ")
            )))
        }
    }

    /// Joins the entry proxy to `network` (once) and returns its address there.
    pub(super) async fn connect_entry(&self, network: &str) -> Result<Option<IpAddr>, DriverError> {
        let Some((node, container)) = &self.entry_proxy else {
            return Ok(None);
        };
        let engine = self.node_engine(node)?;
        if let Some(ip) = entry_address(engine, container, network).await? {
            return Ok(Some(ip));
        }
        let request = NetworkConnectRequest {
            container: container.clone(),
            endpoint_config: Some(EndpointSettings::default()),
        };
        match engine.connect_network(network, request).await {
            Ok(()) => {}
            // Joined meanwhile by a twin of this call.
            Err(e) if status_of(&e) == Some(403) || status_of(&e) == Some(409) => {}
            Err(e) if gone(&e) && e.to_string().contains(container.as_str()) => {
                return Err(DriverError::EntryProxyMissing(container.clone()));
            }
            Err(e) => return Err(classify(&e, None)),
        }
        entry_address(engine, container, network)
            .await?
            .map(Some)
            .ok_or_else(|| DriverError::Docker(format!("{container} has no address on {network}")))
    }

    pub(super) async fn disconnect_entry(&self, network: &str) -> Result<(), DriverError> {
        let Some((node, container)) = &self.entry_proxy else {
            return Ok(());
        };
        let engine = self.node_engine(node)?;
        let request = NetworkDisconnectRequest {
            container: container.clone(),
            force: Some(true),
        };
        match engine.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(403) || gone(&e) => Ok(()),
            Err(e) if e.to_string().contains("is not connected") => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Removes the network; its last task containers may still be leaving it for a moment.
    /// One still held after that (by a task on a node that is down) stays: the runtime's
    /// next start uses it again.
    pub(super) async fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        for _ in 0..100 {
            match self.manager.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(e) if gone(&e) => return Ok(()),
                Err(e) if e.to_string().contains("in use") => {}
                Err(e) => return Err(classify(&e, None)),
            }
            tokio::time::sleep(RETRY).await;
        }
        tracing::warn!(network = %name, "a runtime network is still in use (a node down?); it stays");
        Ok(())
    }
}

/// The container's address on `network`, when it is joined to it.
async fn entry_address(
    engine: &Docker,
    container: &str,
    network: &str,
) -> Result<Option<IpAddr>, DriverError> {
    let inspected = match engine.inspect_container(container, None).await {
        Ok(found) => found,
        Err(e) if gone(&e) => {
            return Err(DriverError::EntryProxyMissing(container.to_owned()));
        }
        Err(e) => return Err(classify(&e, None)),
    };
    Ok(inspected
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|mut networks| networks.remove(network))
        .and_then(|endpoint| endpoint.ip_address)
        .and_then(|ip| ip.parse().ok()))
}
