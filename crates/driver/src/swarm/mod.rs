//! The Docker Swarm implementation of [`RuntimeDriver`]: one replicated service per runtime
//! (0 or 1 replicas), pinned to the node that holds its workspace, on its own internal
//! attachable overlay network that the entry proxy joins. Its configuration travels as a Swarm
//! secret, not as a file on one machine's disk. The engine checks readiness itself (the
//! profile's health command): a task is reported running only once it is healthy.
//!
//! Everything is asked of the manager, at API 1.41 (Debian 12's engine). What the manager
//! cannot tell — a task's address, its memory use, a workspace volume to wipe — is asked of the
//! engine of the node it runs on (`nodes`). See docs/swarm.md.

use crate::docker::{classify, status_of};
use crate::spec::Names;
use crate::{
    DiskUsage, DriverError, Isolation, Observation, Prepared, RuntimeDriver, RuntimeSpec, Stats,
    labels,
};
use async_trait::async_trait;
use bollard::models::{Service, ServiceSpec};
use bollard::query_parameters::{ListServicesOptionsBuilder, UpdateServiceOptionsBuilder};
use bollard::{ClientVersion, Docker};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

mod network;
mod nodes;
mod observe;
mod service;

/// The API version every engine is spoken to at: Debian 12's engine (20.10) answers 1.41, and
/// newer engines still accept it.
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// What the Swarm engine drops from a runtime's hardening at API 1.41, reported (on the admin
/// overview and in logs) instead of silently lost.
pub const HARDENING_GAPS: &[&str] = &[
    "no-new-privileges: services have no such setting at Docker API 1.41 (setuid binaries in \
     the image could regain privileges; the image's own user is unprivileged and every \
     capability is dropped)",
    "swap: services cannot cap swap at API 1.41 (a runtime may swap up to its memory limit \
     again where the node has swap)",
];

/// The Swarm driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SwarmDriver {
    /// A manager of the swarm: services, tasks, secrets, networks and nodes.
    manager: Docker,
    /// Each node's own engine, by hostname: task addresses, stats, logs and workspace volumes.
    nodes: BTreeMap<String, Docker>,
    instance: String,
    /// The entry proxy's container and the node whose engine runs it.
    entry_proxy: Option<(String, String)>,
}

/// Connects to an engine at `address`: `unix:///path`, a bare socket path, or `tcp://host:port`.
pub fn engine(address: &str) -> Result<Docker, DriverError> {
    let connected = if let Some(rest) = address.strip_prefix("tcp://") {
        Docker::connect_with_http(&format!("http://{rest}"), 30, &API_VERSION)
    } else if address.starts_with("http://") {
        Docker::connect_with_http(address, 30, &API_VERSION)
    } else {
        Docker::connect_with_unix(address, 30, &API_VERSION)
    };
    connected.map_err(|e| DriverError::Unreachable(format!("{address}: {e}")))
}

impl SwarmDriver {
    /// A driver speaking to the swarm's `manager` engine, and to each node's engine by
    /// hostname (`nodes`). Nothing is asked yet: an engine that is down now makes calls fail
    /// with [`DriverError::Unreachable`] until it is back.
    pub fn connect(
        manager: &str,
        nodes: &BTreeMap<String, String>,
        instance: &str,
    ) -> Result<SwarmDriver, DriverError> {
        let nodes = nodes
            .iter()
            .map(|(name, address)| Ok((name.clone(), engine(address)?)))
            .collect::<Result<_, DriverError>>()?;
        Ok(SwarmDriver {
            manager: engine(manager)?,
            nodes,
            instance: instance.to_owned(),
            entry_proxy: None,
        })
    }

    /// The same swarm, serving another installation.
    pub fn for_instance(&self, instance: &str) -> SwarmDriver {
        SwarmDriver {
            instance: instance.to_owned(),
            ..self.clone()
        }
    }

    /// Joins `container`, run by the engine of `node` (the entry proxy, Traefik), to every
    /// runtime's network: the only peer a runtime has.
    pub fn with_entry_proxy(mut self, node: &str, container: &str) -> SwarmDriver {
        self.entry_proxy = Some((node.to_owned(), container.to_owned()));
        self
    }

    /// The manager's client, for tests that inspect what the driver made.
    pub fn manager(&self) -> &Docker {
        &self.manager
    }

    fn names(&self, runtime_id: &str) -> Names {
        Names::new(&self.instance, runtime_id)
    }

    /// `label=…` filters for this installation's objects (one runtime's, with `runtime_id`).
    fn filter(&self, runtime_id: Option<&str>) -> HashMap<String, Vec<String>> {
        let mut wanted = vec![format!("{}={}", labels::MANAGED_BY, self.instance)];
        if let Some(id) = runtime_id {
            wanted.push(format!("{}={id}", labels::RUNTIME));
        }
        HashMap::from([("label".to_owned(), wanted)])
    }

    /// This installation's services (one runtime's, with `runtime_id`).
    async fn services(&self, runtime_id: Option<&str>) -> Result<Vec<Service>, DriverError> {
        let options = ListServicesOptionsBuilder::new()
            .filters(&self.filter(runtime_id))
            .build();
        self.manager
            .list_services(Some(options))
            .await
            .map_err(|e| classify(&e, None))
    }

    async fn service(&self, runtime_id: &str) -> Result<Option<Service>, DriverError> {
        Ok(self.services(Some(runtime_id)).await?.into_iter().next())
    }

    /// Rewrites a service's spec with `change`, retrying when another writer updated it
    /// between our read and our write (Swarm's optimistic versioning). `false` when the
    /// service is gone.
    async fn update_service(
        &self,
        runtime_id: &str,
        change: impl Fn(&mut ServiceSpec),
    ) -> Result<bool, DriverError> {
        for _ in 0..8 {
            let Some(service) = self.service(runtime_id).await? else {
                return Ok(false);
            };
            let (Some(id), Some(mut spec)) = (service.id, service.spec) else {
                return Ok(false);
            };
            let before = spec.clone();
            change(&mut spec);
            if spec == before {
                return Ok(true);
            }
            let version = service.version.and_then(|v| v.index).unwrap_or_default();
            let options = UpdateServiceOptionsBuilder::new()
                .version(i32::try_from(version).unwrap_or(i32::MAX))
                .build();
            match self.manager.update_service(&id, spec, options, None).await {
                Ok(_) => return Ok(true),
                Err(e) if gone(&e) => return Ok(false),
                // "update out of sequence": read again and redo the change.
                Err(e) if out_of_sequence(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(classify(&e, None)),
            }
        }
        Err(DriverError::Docker(format!(
            "the service of {runtime_id} kept changing under us"
        )))
    }
}

/// Whether the engine said the object does not exist (a manager says so with other statuses
/// than 404 for some objects).
fn gone(err: &bollard::errors::Error) -> bool {
    status_of(err) == Some(404) || err.to_string().contains("not found")
}

fn out_of_sequence(err: &bollard::errors::Error) -> bool {
    err.to_string().contains("out of sequence")
}

/// How long to wait before asking the manager again.
const RETRY: Duration = Duration::from_millis(100);

#[async_trait]
impl RuntimeDriver for SwarmDriver {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        self.check_networks().await?;
        Ok(Isolation::Enforced)
    }

    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        if spec.egress != crate::firewall::Egress::None {
            return Err(DriverError::Isolation(
                "runtimes on Docker Swarm reach the entry proxy only: egress to public \
                 addresses needs the single-host engine's firewall (docs/swarm.md)"
                    .into(),
            ));
        }
        let network = self.create_network(spec).await?;
        let entry_ip = self.connect_entry(&network).await?;
        Ok(Prepared {
            entry_ip,
            ..Prepared::default()
        })
    }

    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        self.ensure_service(spec, config, replace).await?;
        self.observe_one(&spec.runtime_id, false)
            .await?
            .ok_or_else(|| DriverError::Docker("the new service disappeared".into()))
    }

    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        _grace: Duration,
    ) -> Result<(), DriverError> {
        // The grace is the service's stop grace period, set when it was made (a running
        // task's container keeps the one it was created with).
        let restart = running && self.needs_new_task(runtime_id).await?;
        let found = self
            .update_service(runtime_id, |spec| {
                service::set_replicas(spec, u64::from(running));
                if restart {
                    service::force_new_task(spec);
                }
            })
            .await?;
        match (found, running) {
            (false, true) => Err(DriverError::Missing(runtime_id.to_owned())),
            _ => Ok(()),
        }
    }

    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError> {
        self.observe_one(runtime_id, true).await
    }

    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        self.observe_all().await
    }

    async fn remove(&self, runtime_id: &str, wipe_workspace: bool) -> Result<(), DriverError> {
        let names = self.names(runtime_id);
        if let Some(service) = self.service(runtime_id).await? {
            let id = service.id.unwrap_or_default();
            match self.manager.delete_service(&id).await {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(classify(&e, None)),
            }
            self.wait_for_tasks_gone(&id).await?;
        }
        self.disconnect_entry(&names.network()).await?;
        self.remove_network(&names.network()).await?;
        self.remove_secrets(runtime_id, None).await?;
        if wipe_workspace {
            self.remove_workspaces(&names.volume()).await?;
        }
        Ok(())
    }

    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        self.task_logs(runtime_id, lines).await
    }

    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        self.task_stats(runtime_id).await
    }

    async fn disk_usage(&self) -> Result<DiskUsage, DriverError> {
        // Not measured on Swarm (docs/swarm.md): the nodes' engines (API 1.41) report volume
        // sizes only through `system df`, whose answer bollard reads in a newer format.
        Ok(DiskUsage::default())
    }

    fn hardening_gaps(&self) -> Vec<String> {
        HARDENING_GAPS.iter().map(|gap| (*gap).to_owned()).collect()
    }
}
