//! The swarm's nodes: which are up, where a new runtime goes, and what only a node's own engine
//! can tell or do (a task container's address, output and memory use; removing a workspace
//! volume, which lives on the node that ran it).

use super::service::NODE_LABEL;
use super::*;
use crate::docker::collect_logs;
use bollard::models::{NodeSpecAvailabilityEnum, NodeState, Task};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveVolumeOptionsBuilder,
    StatsOptionsBuilder,
};
use futures_util::StreamExt;
use sha2::Digest as _;
use std::net::IpAddr;

/// The nodes as the manager sees them, by node id.
pub(super) struct NodeTable {
    by_id: HashMap<String, NodeInfo>,
}

struct NodeInfo {
    hostname: String,
    ready: bool,
    active: bool,
    message: Option<String>,
}

impl NodeTable {
    /// A table of `(id, hostname, ready, active)` (tests).
    #[cfg(test)]
    pub(super) fn of(nodes: &[(&str, &str, bool, bool)]) -> NodeTable {
        let by_id = nodes
            .iter()
            .map(|(id, hostname, ready, active)| {
                let info = NodeInfo {
                    hostname: (*hostname).to_owned(),
                    ready: *ready,
                    active: *active,
                    message: None,
                };
                ((*id).to_owned(), info)
            })
            .collect();
        NodeTable { by_id }
    }

    pub(super) fn hostname_of(&self, task: &Task) -> Option<&str> {
        let id = task.node_id.as_deref()?;
        self.by_id.get(id).map(|n| n.hostname.as_str())
    }

    /// Why `hostname` cannot run anything now, when it cannot.
    pub(super) fn down(&self, hostname: &str) -> Option<String> {
        match self.by_id.values().find(|n| n.hostname == hostname) {
            None => Some(format!("the node {hostname} is not part of the swarm")),
            Some(n) if !n.ready => Some(format!(
                "the node {hostname} is unreachable{}",
                n.message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )),
            // Drained for maintenance: its runtimes cannot run anywhere else (their workspace
            // is there) and wait for it like for a lost node.
            Some(n) if !n.active => Some(format!("the node {hostname} is drained for maintenance")),
            Some(_) => None,
        }
    }
}

/// One task container on a node.
pub(super) struct TaskContainer {
    pub id: String,
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl SwarmDriver {
    pub(super) async fn node_table(&self) -> Result<NodeTable, DriverError> {
        let nodes = self
            .manager
            .list_nodes(None)
            .await
            .map_err(|e| classify(&e, None))?;
        let by_id = nodes
            .into_iter()
            .filter_map(|node| {
                let status = node.status.unwrap_or_default();
                Some((
                    node.id?,
                    NodeInfo {
                        hostname: node.description?.hostname?,
                        ready: status.state == Some(NodeState::READY),
                        active: node.spec.and_then(|s| s.availability)
                            == Some(NodeSpecAvailabilityEnum::ACTIVE),
                        message: status.message,
                    },
                ))
            })
            .collect();
        Ok(NodeTable { by_id })
    }

    /// The engine of the node called `hostname`.
    pub(super) fn node_engine(&self, hostname: &str) -> Result<&Docker, DriverError> {
        self.nodes.get(hostname).ok_or_else(|| {
            DriverError::Unreachable(format!(
                "no engine address is configured for the node {hostname}"
            ))
        })
    }

    /// The ready, active node with the fewest of this installation's runtimes pinned to it
    /// (among those whose engine is known). Ties go by the runtime id's hash, so runtimes
    /// placed at the same moment (each not seeing the other yet) spread instead of all taking
    /// the first node.
    pub(super) async fn least_loaded_node(&self, runtime_id: &str) -> Result<String, DriverError> {
        let table = self.node_table().await?;
        let mut load: BTreeMap<&str, usize> = table
            .by_id
            .values()
            .filter(|n| n.ready && n.active)
            .filter(|n| self.nodes.is_empty() || self.nodes.contains_key(&n.hostname))
            .map(|n| (n.hostname.as_str(), 0))
            .collect();
        for service in self.services(None).await? {
            let pinned = service.spec.and_then(|s| s.labels).unwrap_or_default();
            if let Some(count) = pinned
                .get(NODE_LABEL)
                .and_then(|n| load.get_mut(n.as_str()))
            {
                *count += 1;
            }
        }
        let fewest =
            load.values().min().copied().ok_or_else(|| {
                DriverError::Docker("no node of the swarm can take a runtime".into())
            })?;
        let candidates: Vec<&str> = load
            .into_iter()
            .filter(|(_, count)| *count == fewest)
            .map(|(node, _)| node)
            .collect();
        let digest = sha2::Sha256::digest(runtime_id.as_bytes());
        let pick = usize::from(digest[0]) % candidates.len();
        Ok(candidates[pick].to_owned())
    }

    /// This installation's task containers on `node` (none when its engine does not answer).
    pub(super) async fn containers_on(&self, node: &str) -> Vec<TaskContainer> {
        let Ok(engine) = self.node_engine(node) else {
            return Vec::new();
        };
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.filter(None))
            .build();
        let Ok(found) = engine.list_containers(Some(options)).await else {
            return Vec::new();
        };
        found
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let network = labels
                    .get(labels::RUNTIME)
                    .map(|id| self.names(id).network());
                let ip = c
                    .network_settings
                    .and_then(|s| s.networks)
                    .zip(network)
                    .and_then(|(mut nets, name)| nets.remove(&name))
                    .and_then(|e| e.ip_address)
                    .and_then(|ip| ip.parse().ok());
                TaskContainer {
                    id: c.id.unwrap_or_default(),
                    ip,
                    port: labels.get(labels::PORT).and_then(|p| p.parse().ok()),
                }
            })
            .collect()
    }

    /// The current task's container and the engine of its node.
    async fn task_container(
        &self,
        runtime_id: &str,
    ) -> Result<Option<(&Docker, String)>, DriverError> {
        let Some(service) = self.service(runtime_id).await? else {
            return Ok(None);
        };
        let options = bollard::query_parameters::ListTasksOptionsBuilder::new()
            .filters(&HashMap::from([(
                "service".to_owned(),
                vec![service.id.unwrap_or_default()],
            )]))
            .build();
        let tasks = self
            .manager
            .list_tasks(Some(options))
            .await
            .map_err(|e| classify(&e, None))?;
        let table = self.node_table().await?;
        let newest = tasks
            .iter()
            .filter(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.container_status.as_ref())
                    .and_then(|c| c.container_id.as_ref())
                    .is_some()
            })
            .max_by_key(|t| t.created_at.clone().unwrap_or_default());
        let Some(task) = newest else { return Ok(None) };
        let Some(node) = table.hostname_of(task) else {
            return Ok(None);
        };
        let id = task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone())
            .unwrap_or_default();
        Ok(self.nodes.get(node).map(|engine| (engine, id)))
    }

    pub(super) async fn task_logs(
        &self,
        runtime_id: &str,
        lines: usize,
    ) -> Result<Vec<String>, DriverError> {
        let Some((engine, container)) = self.task_container(runtime_id).await? else {
            return Ok(Vec::new());
        };
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        collect_logs(engine.logs(&container, Some(options)), lines).await
    }

    pub(super) async fn task_stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        let Some((engine, container)) = self.task_container(runtime_id).await? else {
            return Ok(Stats::default());
        };
        let options = StatsOptionsBuilder::new().stream(false).build();
        let mut stream = engine.stats(&container, Some(options));
        match stream.next().await {
            Some(Ok(sample))
                if sample
                    .memory_stats
                    .as_ref()
                    .is_some_and(|m| m.usage.is_some()) =>
            {
                Ok(crate::docker::stats_from(sample))
            }
            Some(Err(e)) if status_of(&e) != Some(404) => Err(classify(&e, None)),
            _ => Ok(Stats::default()),
        }
    }

    /// Removes the workspace volume from every node that has it (a task container still
    /// leaving holds it for a moment).
    pub(super) async fn remove_workspaces(&self, volume: &str) -> Result<(), DriverError> {
        for (node, engine) in &self.nodes {
            let options = RemoveVolumeOptionsBuilder::new().force(true).build();
            let mut attempts = 0;
            loop {
                match engine.remove_volume(volume, Some(options.clone())).await {
                    Ok(()) => break,
                    Err(e) if gone(&e) => break,
                    Err(e) if status_of(&e) == Some(409) && attempts < 100 => {
                        attempts += 1;
                        tokio::time::sleep(RETRY).await;
                    }
                    // A node that is gone keeps its copy (docs/swarm.md: moving a runtime).
                    Err(e) if matches!(classify(&e, None), DriverError::Unreachable(_)) => {
                        tracing::warn!(node = %node, volume = %volume, "a workspace stays on an unreachable node");
                        break;
                    }
                    Err(e) => {
                        return Err(DriverError::Docker(format!(
                            "the workspace on {node} could not be removed: {}",
                            classify(&e, None)
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
