//! The baseline: a plain service of the same image (`docker service create` with the same
//! health check and limits, through the same API), polled the same way until its task runs.

use super::*;
use bollard::models::{
    HealthConfig, Limit, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecResources, TaskState,
};
use bollard::query_parameters::ListTasksOptionsBuilder;
use std::collections::HashMap;

impl Bench {
    /// Creates the plain service and waits until its task runs (healthy). Returns the time;
    /// removes the service when `remove`.
    pub(super) async fn plain_start(
        &self,
        settings: &RuntimeSettings,
        name: &str,
        remove: bool,
    ) -> Result<Duration> {
        let manager = self.driver.manager();
        let profile = &settings.profile;
        let label = HashMap::from([("org.clawloops.instance".to_owned(), self.instance.clone())]);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let cpus = Duration::from_secs_f64(settings.limits.cpus);
        let spec = ServiceSpec {
            name: Some(format!("{}-plain-{name}", self.instance)),
            labels: Some(label),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(settings.image.clone()),
                    user: Some(profile.user.clone()),
                    env: Some(
                        profile
                            .env
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect(),
                    ),
                    health_check: Some(HealthConfig {
                        test: Some(
                            std::iter::once("CMD".to_owned())
                                .chain(profile.health_command.iter().cloned())
                                .collect(),
                        ),
                        interval: Some(nanos(Duration::from_millis(500))),
                        timeout: Some(nanos(Duration::from_secs(3))),
                        retries: Some(3),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        memory_bytes: Some(i64::from(settings.limits.memory_mb) * 1024 * 1024),
                        nano_cpus: Some(nanos(cpus)),
                        pids: Some(i64::from(settings.limits.pids)),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            endpoint_spec: Some(bollard::models::EndpointSpec {
                mode: Some(bollard::models::EndpointSpecModeEnum::DNSRR),
                ports: None,
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let made = manager.create_service(spec, None).await?;
        let id = made.id.context("no service id")?;
        let filters = HashMap::from([("service".to_owned(), vec![id.clone()])]);
        let deadline = Instant::now() + settings.ready_timeout;
        loop {
            let options = ListTasksOptionsBuilder::new().filters(&filters).build();
            let tasks = manager.list_tasks(Some(options)).await?;
            if tasks
                .iter()
                .any(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("plain service of {} never ran", settings.image);
            }
            tokio::time::sleep(READY_POLL).await;
        }
        let took = started.elapsed();
        if remove {
            manager.delete_service(&id).await?;
        }
        Ok(took)
    }
}
