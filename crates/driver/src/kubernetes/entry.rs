//! The entry proxy's address as runtimes reach it: configured, or the cluster IP of its Service
//! (read once: a Service's cluster IP never changes).

use super::{KubeDriver, classify};
use crate::DriverError;
use ::kube::Api;
use std::net::IpAddr;

impl KubeDriver {
    /// The entry proxy's address for runtimes: configured, or its Service's cluster IP.
    pub(super) async fn entry_ip(&self) -> Result<Option<IpAddr>, DriverError> {
        let settings = &self.settings;
        let found = self
            .entry_ip
            .get_or_try_init(|| async {
                if let Some(ip) = settings.entry_ip {
                    return Ok(Some(ip));
                }
                let Some(name) = &settings.entry_service else {
                    return Ok(None);
                };
                let api: Api<k8s_openapi::api::core::v1::Service> =
                    Api::namespaced(self.client.clone(), &settings.entry_namespace);
                let service = api.get_opt(name).await.map_err(|e| classify(&e, None))?;
                let ip = service
                    .and_then(|s| s.spec?.cluster_ip)
                    .and_then(|ip| ip.parse().ok())
                    .ok_or_else(|| {
                        DriverError::EntryProxyMissing(format!(
                            "{}/{name} (a Service with a cluster IP)",
                            settings.entry_namespace
                        ))
                    })?;
                Ok(Some(ip))
            })
            .await?;
        Ok(*found)
    }
}
