//! What a runtime is, from its service, its tasks and its node: the phase (a task is reported
//! running only once its health check passed, so running is ready), the reason when it is not
//! running as asked, and the task's own address on the runtime network.

use super::nodes::{NodeTable, TaskContainer};
use super::service::NODE_LABEL;
use super::*;
use crate::Phase;
use bollard::models::{Task, TaskState};
use bollard::query_parameters::ListTasksOptionsBuilder;

impl SwarmDriver {
    /// One runtime as the swarm sees it (`with_endpoint`: its task's address too).
    pub(super) async fn observe_one(
        &self,
        runtime_id: &str,
        with_endpoint: bool,
    ) -> Result<Option<Observation>, DriverError> {
        let Some(service) = self.service(runtime_id).await? else {
            return Ok(None);
        };
        let tasks = self.tasks(service.id.as_deref()).await?;
        let nodes = self.node_table().await?;
        let mut seen = observation(&service, &tasks, &nodes);
        if with_endpoint && let Some(seen) = seen.as_mut() {
            let containers = match current(&tasks).and_then(|t| nodes.hostname_of(t)) {
                Some(node) => self.containers_on(node).await,
                None => Vec::new(),
            };
            add_endpoint(seen, &tasks, &containers);
        }
        Ok(seen)
    }

    /// Every runtime of this installation: three questions to the manager, one to each node.
    pub(super) async fn observe_all(&self) -> Result<Vec<Observation>, DriverError> {
        let services = self.services(None).await?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self.tasks(None).await?;
        let nodes = self.node_table().await?;
        let mut containers = Vec::new();
        for node in self.nodes.keys() {
            containers.extend(self.containers_on(node).await);
        }
        Ok(services
            .iter()
            .filter_map(|service| {
                let mine: Vec<Task> = tasks
                    .iter()
                    .filter(|t| t.service_id.is_some() && t.service_id == service.id)
                    .cloned()
                    .collect();
                let mut seen = observation(service, &mine, &nodes)?;
                add_endpoint(&mut seen, &mine, &containers);
                Some(seen)
            })
            .collect())
    }

    /// Tasks of one service (or of all).
    async fn tasks(&self, service: Option<&str>) -> Result<Vec<Task>, DriverError> {
        let filters: HashMap<String, Vec<String>> = service
            .map(|id| HashMap::from([("service".to_owned(), vec![id.to_owned()])]))
            .unwrap_or_default();
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        self.manager
            .list_tasks(Some(options))
            .await
            .map_err(|e| classify(&e, None))
    }

    /// Whether starting needs a new task: none is wanted running, or the last one ended. (With
    /// restart condition `none`, the engine makes no new task for a slot by itself, not even
    /// when a service is scaled from 0 to 1.)
    pub(super) async fn needs_new_task(&self, runtime_id: &str) -> Result<bool, DriverError> {
        let Some(service) = self.service(runtime_id).await? else {
            return Ok(false);
        };
        let tasks = self.tasks(service.id.as_deref()).await?;
        Ok(current(&tasks).is_none_or(|t| {
            t.desired_state.is_none_or(|d| d != TaskState::RUNNING)
                || t.status.as_ref().and_then(|s| s.state).is_some_and(ended)
        }))
    }

    /// Waits (20 s at most) until a deleted service's task containers are gone, so that its
    /// network and workspace are free.
    pub(super) async fn wait_for_tasks_gone(&self, service_id: &str) -> Result<(), DriverError> {
        for _ in 0..200 {
            let left = match self.tasks(Some(service_id)).await {
                Ok(left) => left,
                // The manager forgets a deleted service's tasks with it.
                Err(DriverError::Docker(message)) if message.contains("not found") => break,
                Err(e) => return Err(e),
            };
            if left.iter().all(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.state)
                    .is_none_or(|s| ended(s) || s == TaskState::REMOVE)
            }) {
                return Ok(());
            }
            tokio::time::sleep(RETRY).await;
        }
        Ok(())
    }
}

fn replicas(service: &Service) -> i64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or_default()
}

/// States a task does not leave.
fn ended(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::ORPHANED
    )
}

/// The task that stands for the runtime now: the newest one the engine wants running, else
/// the newest.
fn current(tasks: &[Task]) -> Option<&Task> {
    let newest = |a: &&Task, b: &&Task| created(a).cmp(&created(b));
    tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .max_by(newest)
        .or_else(|| tasks.iter().max_by(newest))
}

/// A task's creation time as a sortable string (Docker trims trailing zeros of the fraction).
fn created(task: &Task) -> String {
    let at = task.created_at.clone().unwrap_or_default();
    let (seconds, rest) = at.split_once('.').unwrap_or((&at, "Z"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    format!("{seconds}.{digits:0<9}")
}

fn observation(service: &Service, tasks: &[Task], nodes: &NodeTable) -> Option<Observation> {
    let spec = service.spec.as_ref()?;
    let labels = spec.labels.clone().unwrap_or_default();
    let runtime_id = labels.get(labels::RUNTIME)?.clone();
    let node = labels.get(NODE_LABEL).cloned();
    let wanted = replicas(service) > 0;
    let task = current(tasks);
    let status = task.and_then(|t| t.status.as_ref());
    let state = status.and_then(|s| s.state);
    let exit_code = status
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code);
    let err = status
        .and_then(|s| s.err.clone().or_else(|| s.message.clone()))
        .filter(|e| !e.is_empty());
    let node_down = node.as_deref().and_then(|n| nodes.down(n));
    let ended_with = exit_code.filter(|_| state.is_some_and(ended));
    // A task of an earlier template (before a start or a restart) is being replaced.
    let template = spec.task_template.as_ref().and_then(|t| t.force_update);
    let outdated = task
        .and_then(|t| t.spec.as_ref())
        .is_some_and(|t| t.force_update != template);
    let desired_running = task.is_some_and(|t| t.desired_state == Some(TaskState::RUNNING));
    let (phase, reason) = match (wanted, state) {
        (true, _) if node_down.is_some() => (Phase::NodeDown, node_down),
        // Still shutting down.
        (false, Some(TaskState::RUNNING)) => (Phase::Running, None),
        (false, _) => (
            Phase::Stopped {
                exit_code: ended_with,
            },
            None,
        ),
        (true, None) => (Phase::Starting, None),
        (true, _) if !desired_running && outdated => (Phase::Starting, None),
        // Ended, or ending, with no task to replace it: the engine shut it down (its node was
        // lost for a while) or it exited; the orchestrator decides what comes next.
        (true, _) if !desired_running => (
            Phase::Stopped {
                exit_code: ended_with,
            },
            err,
        ),
        (true, Some(TaskState::RUNNING)) => (Phase::Running, None),
        (true, Some(TaskState::COMPLETE)) => (
            Phase::Stopped {
                exit_code: Some(exit_code.unwrap_or_default()),
            },
            None,
        ),
        (true, Some(TaskState::FAILED)) if exit_code.is_some_and(|c| c != 0) => {
            (Phase::Stopped { exit_code }, err)
        }
        (true, Some(TaskState::FAILED | TaskState::REJECTED)) => {
            (Phase::Failed { exit_code: None }, err)
        }
        // Being placed, fetched, started or health-checked.
        (true, _) => (Phase::Starting, err),
    };
    let container = spec.task_template.as_ref()?.container_spec.as_ref()?;
    Some(Observation {
        runtime_id,
        owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
        handle: service.id.clone().unwrap_or_default(),
        // Running means healthy: the engine reports a task with a health check running only
        // once the check passed (and fails it when the check fails later).
        ready: phase == Phase::Running && wanted,
        phase,
        config_hash: labels.get(labels::CONFIG_HASH).cloned(),
        image: container.image.clone().unwrap_or_default(),
        endpoint: None,
        node,
        reason,
        blocked: None,
    })
}

/// The running task's address on the runtime network, from its container on its node.
fn add_endpoint(seen: &mut Observation, tasks: &[Task], containers: &[TaskContainer]) {
    if seen.phase != Phase::Running {
        return;
    }
    let Some(id) = current(tasks)
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.as_deref())
    else {
        return;
    };
    seen.endpoint = containers
        .iter()
        .find(|c| c.id == id)
        .and_then(|c| Some(format!("http://{}:{}", c.ip?, c.port?)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_sort_despite_trimmed_fractions() {
        let task = |at: &str| Task {
            created_at: Some(at.into()),
            ..Default::default()
        };
        let a = task("2026-12-05T07:30:01.5Z");
        let b = task("2026-12-05T07:30:01.123456789Z");
        let c = task("2026-12-05T07:30:02Z");
        assert!(created(&b) < created(&a) && created(&a) < created(&c));
    }

    /// A service wanting `replicas`, pinned to `clsw-w1`, at template generation `force`.
    fn service(replicas: i64, force: u64) -> Service {
        let labels = HashMap::from([
            (labels::RUNTIME.to_owned(), "rt-ann".to_owned()),
            (labels::OWNER.to_owned(), "owner-ann".to_owned()),
            (NODE_LABEL.to_owned(), "clsw-w1".to_owned()),
        ]);
        Service {
            id: Some("svc".into()),
            spec: Some(ServiceSpec {
                labels: Some(labels),
                task_template: Some(bollard::models::TaskSpec {
                    container_spec: Some(Default::default()),
                    force_update: Some(force),
                    ..Default::default()
                }),
                mode: Some(bollard::models::ServiceSpecMode {
                    replicated: Some(bollard::models::ServiceSpecModeReplicated {
                        replicas: Some(replicas),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A task of template generation `force`, created at second `at`.
    fn task(at: u32, force: u64, desired: TaskState, state: TaskState, exit: Option<i64>) -> Task {
        Task {
            created_at: Some(format!("2026-12-05T07:30:{at:02}Z")),
            node_id: Some("n1".into()),
            spec: Some(bollard::models::TaskSpec {
                force_update: Some(force),
                ..Default::default()
            }),
            desired_state: Some(desired),
            status: Some(bollard::models::TaskStatus {
                state: Some(state),
                err: (state == TaskState::REJECTED).then(|| "no such image".to_owned()),
                container_status: Some(bollard::models::ContainerStatus {
                    exit_code: exit,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn phase_of(service: &Service, tasks: &[Task], w1_up: bool) -> (Phase, bool, Option<String>) {
        let nodes = NodeTable::of(&[("n1", "clsw-w1", w1_up, true)]);
        let seen = observation(service, tasks, &nodes).expect("observed");
        (seen.phase, seen.ready, seen.reason)
    }

    #[test]
    fn phases_from_services_tasks_and_nodes() {
        use TaskState::{COMPLETE, FAILED, REJECTED, RUNNING, SHUTDOWN, STARTING};
        let stopped = |code| Phase::Stopped { exit_code: code };
        // Made, never started.
        assert_eq!(phase_of(&service(0, 0), &[], true).0, stopped(None));
        // Asked to start: no task yet, then one being health-checked, then running (ready).
        assert_eq!(phase_of(&service(1, 1), &[], true).0, Phase::Starting);
        let starting = task(1, 1, RUNNING, STARTING, None);
        assert_eq!(
            phase_of(&service(1, 1), &[starting], true).0,
            Phase::Starting
        );
        let running = task(1, 1, RUNNING, RUNNING, None);
        assert_eq!(
            phase_of(&service(1, 1), std::slice::from_ref(&running), true),
            (Phase::Running, true, None)
        );
        // Its node lost: waiting for it, with the node named.
        let (phase, ready, reason) =
            phase_of(&service(1, 1), std::slice::from_ref(&running), false);
        assert_eq!((phase, ready), (Phase::NodeDown, false));
        assert!(reason.is_some_and(|r| r.contains("clsw-w1")));
        // Being stopped: still running, not ready; then stopped.
        let stopping = task(1, 1, SHUTDOWN, RUNNING, None);
        assert_eq!(
            phase_of(&service(0, 1), &[stopping], true).0,
            Phase::Running
        );
        assert!(!phase_of(&service(0, 1), &[task(1, 1, SHUTDOWN, RUNNING, None)], true).1);
        let ended = task(1, 1, SHUTDOWN, SHUTDOWN, Some(143));
        assert_eq!(
            phase_of(&service(0, 1), &[ended], true).0,
            stopped(Some(143))
        );
        // A restart: the old task of the earlier template is being replaced.
        let old = task(1, 1, SHUTDOWN, COMPLETE, Some(0));
        assert_eq!(
            phase_of(&service(1, 2), std::slice::from_ref(&old), true).0,
            Phase::Starting
        );
        // The engine shut it down with nothing to replace it (its node came back): stopped.
        assert_eq!(phase_of(&service(1, 1), &[old], true).0, stopped(Some(0)));
        // It exited by itself: stopped with its code; refused by the engine: failed, why.
        let exited = task(2, 1, RUNNING, FAILED, Some(3));
        assert_eq!(
            phase_of(&service(1, 1), &[exited], true).0,
            stopped(Some(3))
        );
        let rejected = task(2, 1, RUNNING, REJECTED, None);
        let (phase, _, reason) = phase_of(&service(1, 1), &[rejected], true);
        assert_eq!(phase, Phase::Failed { exit_code: None });
        assert_eq!(reason.as_deref(), Some("no such image"));
        // The newest task the engine wants running stands for the runtime.
        let tasks = [
            task(1, 1, SHUTDOWN, SHUTDOWN, Some(0)),
            task(3, 2, RUNNING, RUNNING, None),
        ];
        assert_eq!(phase_of(&service(1, 2), &tasks, true).0, Phase::Running);
    }
}
