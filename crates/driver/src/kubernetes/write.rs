//! Making objects be as wanted: create, or replace what differs at the version read (the API
//! server's optimistic concurrency: a 409 Conflict means another writer came between, so the
//! object is read again).

use super::{
    GONE_SLACK, KubeDriver, annotation, annotations, classify, errors, objects, observe, policy,
    watch,
};
use crate::{DriverError, RuntimeSpec};
use ::kube::Resource;
use ::kube::api::{DeleteParams, PostParams};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// An object the driver keeps as it wants it: what of it is compared before a rewrite.
pub trait Desired:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
    /// Whether `current` (as read) already is as `self` wants it.
    fn same(&self, current: &Self) -> bool;
}

impl Desired for Secret {
    fn same(&self, current: &Self) -> bool {
        self.data == current.data
            && self.metadata.annotations == current.metadata.annotations
            && self.metadata.labels == current.metadata.labels
    }
}

impl Desired for NetworkPolicy {
    fn same(&self, current: &Self) -> bool {
        self.spec == current.spec
            && self.metadata.labels == current.metadata.labels
            && self.metadata.owner_references == current.metadata.owner_references
    }
}

/// How many times a write is retried after a conflict.
const ATTEMPTS: usize = 8;

impl KubeDriver {
    /// Makes `wanted` exist as it is (created, or replaced when it differs).
    pub(super) async fn apply<K: Desired>(&self, wanted: &K) -> Result<(), DriverError> {
        let api = self.api::<K>();
        let name = wanted.meta().name.clone().unwrap_or_default();
        for _ in 0..ATTEMPTS {
            let current = api.get_opt(&name).await.map_err(|e| classify(&e, None))?;
            let written = match current {
                None => api.create(&PostParams::default(), wanted).await,
                Some(current) if wanted.same(&current) => return Ok(()),
                Some(current) => {
                    let mut next = wanted.clone();
                    next.meta_mut().resource_version = current.meta().resource_version.clone();
                    api.replace(&name, &PostParams::default(), &next).await
                }
            };
            match written {
                Ok(_) => return Ok(()),
                // Made or changed by another writer since we read it: read again.
                Err(e) if errors::status(&e) == Some(409) => {}
                Err(e) => return Err(classify(&e, None)),
            }
        }
        Err(DriverError::Docker(format!(
            "{name} kept changing under us"
        )))
    }

    /// Makes the runtime's network policy as wanted, owned by its Secret when that exists.
    pub(super) async fn ensure_policy(&self, spec: &RuntimeSpec) -> Result<(), DriverError> {
        let owner = self
            .secret(&spec.runtime_id)
            .await?
            .and_then(|secret| objects::owner(&secret));
        self.apply(&policy::network_policy(spec, &self.settings, owner))
            .await
    }

    /// Makes the runtime's workspace claim exist. An existing claim is left as it is: claims
    /// cannot shrink, and a bound one keeps its data.
    pub(super) async fn ensure_claim(&self, spec: &RuntimeSpec) -> Result<(), DriverError> {
        let claim = objects::claim(spec, &self.settings);
        match self
            .api::<PersistentVolumeClaim>()
            .create(&PostParams::default(), &claim)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::status(&e) == Some(409) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Deletes the runtime's Pod (after `grace`) and waits until it is gone: a new one of the
    /// same name can only be made then. Watches rather than polls.
    pub(super) async fn delete_pod(
        &self,
        runtime_id: &str,
        grace: Duration,
    ) -> Result<(), DriverError> {
        let api = self.api::<Pod>();
        let name = self.names(runtime_id).base;
        let seconds = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
        let uid = match api
            .delete(&name, &DeleteParams::default().grace_period(seconds))
            .await
        {
            Ok(either) => either.left().and_then(|pod| pod.metadata.uid),
            Err(e) if errors::status(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(classify(&e, None)),
        };
        let Some(uid) = uid else { return Ok(()) };
        let limit = grace + GONE_SLACK;
        match tokio::time::timeout(limit, watch::until_gone(api, &name, &uid)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(DriverError::Docker(format!(
                "the pod {name} did not go within {} s",
                limit.as_secs()
            ))),
        }
    }

    /// Deletes one object; whatever is gone already is fine.
    pub(super) async fn delete<K>(&self, name: &str) -> Result<(), DriverError>
    where
        K: ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as ::kube::Resource>::DynamicType: Default,
    {
        match self
            .api::<K>()
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::status(&e) == Some(404) => Ok(()),
            Err(e) => Err(classify(&e, None)),
        }
    }

    /// Starts the runtime from the Pod template in its Secret: a Pod that ended (or is
    /// ending) goes first.
    pub(super) async fn start(&self, runtime_id: &str) -> Result<(), DriverError> {
        let secret = self
            .secret(runtime_id)
            .await?
            .ok_or_else(|| DriverError::Missing(runtime_id.to_owned()))?;
        if let Some(pod) = self.pod(runtime_id).await? {
            if observe::is_live(&pod) {
                return Ok(());
            }
            self.delete_pod(runtime_id, Duration::ZERO).await?;
        }
        let pod = objects::pod_from(&secret).ok_or_else(|| {
            DriverError::Config("the runtime's Pod template is unreadable".into())
        })?;
        match self.api::<Pod>().create(&PostParams::default(), &pod).await {
            Ok(_) => Ok(()),
            // A twin of this call (another replica, a resumed task) made it first.
            Err(e) if errors::status(&e) == Some(409) => Ok(()),
            Err(e) => Err(classify(&e, Some(&annotation(&secret, annotations::IMAGE)))),
        }
    }
}
