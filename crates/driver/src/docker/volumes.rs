//! Workspace volumes: whether the engine can hold them to a size, where their files are, and
//! which ones this installation made.

use super::*;

impl DockerDriver {
    /// Creates the runtime's workspace volume (an existing one is left as it is).
    pub(super) async fn ensure_workspace(&self, spec: &RuntimeSpec) -> Result<(), DriverError> {
        // The engine holds the volume to its limit where it can; elsewhere the limit is
        // measured (`disk_usage`) and enforced by the orchestrator.
        let driver_opts = match spec.limits.disk_bytes() {
            Some(bytes) if self.volume_quotas().await? => {
                Some(HashMap::from([("size".to_owned(), bytes.to_string())]))
            }
            _ => None,
        };
        let volume = VolumeCreateRequest {
            name: Some(spec.volume_name()),
            labels: Some(spec.labels()),
            driver_opts,
            ..Default::default()
        };
        // Creating an existing named volume returns it unchanged.
        self.docker
            .create_volume(volume)
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(())
    }

    /// Removes the runtime's workspace volume (a missing one is fine).
    pub(super) async fn remove_workspace(&self, names: &Names) -> Result<(), DriverError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self
            .docker
            .remove_volume(&names.volume(), Some(options))
            .await
        {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(classify(&e, None)),
        }
        Ok(())
    }

    /// How much each workspace volume holds, by runtime id (walked on a blocking thread; a
    /// volume whose files this host cannot read has no figure rather than a wrong one).
    pub(super) async fn measure_workspaces(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, DriverError> {
        let dirs = volume_dirs(self).await?;
        tokio::task::spawn_blocking(move || {
            let mut by_runtime = std::collections::BTreeMap::new();
            for (runtime, dir) in dirs {
                match crate::disk::tree_bytes(&dir, crate::disk::Budget::default()) {
                    Ok(tally) => {
                        if tally.partial {
                            tracing::warn!(%runtime, entries = tally.entries, "workspace too large to measure whole; counted a part");
                        }
                        by_runtime.insert(runtime, tally.bytes);
                    }
                    // Not on this host's disk (or not ours to read): no figure rather than a wrong one.
                    Err(e) => {
                        tracing::warn!(%runtime, error = %e, "could not measure a workspace volume (is the engine's volume directory readable here?)");
                    }
                }
            }
            by_runtime
        })
        .await
        .map_err(|e| DriverError::Docker(e.to_string()))
    }

    /// Whether the engine's local volume driver takes a `size` (a project quota: its data root
    /// on XFS mounted with `pquota`). Asked once, by making and removing a tiny volume.
    pub async fn volume_quotas(&self) -> Result<bool, DriverError> {
        let ask = || async {
            let name = format!("{}-quota-probe", crate::spec::name_prefix(&self.instance));
            let probe = VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([(
                    labels::MANAGED_BY.to_owned(),
                    self.instance.clone(),
                )])),
                driver_opts: Some(HashMap::from([("size".to_owned(), "1048576".to_owned())])),
                ..Default::default()
            };
            match self.docker.create_volume(probe).await {
                Ok(_) => {
                    let options = RemoveVolumeOptionsBuilder::new().force(true).build();
                    if let Err(e) = self.docker.remove_volume(&name, Some(options)).await {
                        tracing::warn!(error = %e, volume = %name, "could not remove the quota probe volume");
                    }
                    tracing::info!("the Docker engine holds workspace volumes to their size limit");
                    Ok(true)
                }
                Err(e) if quota_unsupported(&e) => {
                    tracing::info!(
                        "the Docker engine cannot hold volumes to a size (its data root is not on \
                         XFS with pquota): workspace limits are measured and enforced by stopping"
                    );
                    Ok(false)
                }
                Err(e) => Err(classify(&e, None)),
            }
        };
        self.volume_quotas.get_or_try_init(ask).await.copied()
    }
}

/// The directory each of this installation's workspace volumes keeps its files in on the
/// Docker host, by runtime id.
pub(super) async fn volume_dirs(
    driver: &DockerDriver,
) -> Result<Vec<(String, PathBuf)>, DriverError> {
    Ok(list_volumes(driver)
        .await?
        .into_iter()
        .filter(|v| v.driver == "local" && v.name.ends_with("-workspace"))
        .filter_map(|v| {
            let runtime = v.labels.get(labels::RUNTIME)?.clone();
            crate::spec::ids::runtime_id(&runtime).then(|| (runtime, PathBuf::from(v.mountpoint)))
        })
        .collect())
}

/// Names of the volumes this installation made (for tests and cleanup tools).
pub async fn managed_volumes(driver: &DockerDriver) -> Result<Vec<String>, DriverError> {
    Ok(list_volumes(driver)
        .await?
        .into_iter()
        .map(|v| v.name)
        .collect())
}

/// The volumes this installation made.
pub(super) async fn list_volumes(
    driver: &DockerDriver,
) -> Result<Vec<bollard::models::Volume>, DriverError> {
    let filters = driver.managed_filter(None);
    let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let found = driver
        .docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| classify(&e, None))?;
    Ok(found.volumes.unwrap_or_default())
}
