//! Split mode: the runtime manager serves a [`RuntimeDriver`] over an internal HTTP API
//! ([`service`]), and the control plane talks to it through [`RemoteDriver`].
//!
//! One endpoint, `POST /v1/driver`, takes a [`Call`] (a trait method and its arguments) and
//! answers `{"Ok": value}` or `{"Err": {"kind": …, "message": …}}`, so a driver error keeps its
//! kind across the wire. Every request must come from an allowed address and carry the shared
//! secret as a bearer token; the installation it acts for is named in
//! [`INSTANCE_HEADER`], and the manager only touches that installation's objects.

use crate::{DriverError, Isolation, Observation, Prepared, RuntimeDriver, RuntimeSpec, Stats};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The header naming the installation a request acts for.
pub const INSTANCE_HEADER: &str = "x-clawloops-instance";

/// The shortest shared secret either side accepts.
pub const MIN_SECRET_LEN: usize = 32;

/// One driver call on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    EnsureIsolation,
    Prepare {
        spec: RuntimeSpec,
    },
    Ensure {
        spec: RuntimeSpec,
        config: String,
        replace: bool,
    },
    SetRunning {
        runtime_id: String,
        running: bool,
        grace_ms: u64,
    },
    SetPaused {
        runtime_id: String,
        paused: bool,
    },
    Observe {
        runtime_id: String,
    },
    List,
    Remove {
        runtime_id: String,
        wipe_workspace: bool,
    },
    Logs {
        runtime_id: String,
        lines: usize,
    },
    Stats {
        runtime_id: String,
    },
    DiskUsage,
}

impl Call {
    /// The operation's name, for logs (never the arguments: configurations hold tokens).
    pub fn op(&self) -> &'static str {
        match self {
            Call::EnsureIsolation => "ensure_isolation",
            Call::Prepare { .. } => "prepare",
            Call::Ensure { .. } => "ensure",
            Call::SetRunning { .. } => "set_running",
            Call::SetPaused { .. } => "set_paused",
            Call::Observe { .. } => "observe",
            Call::List => "list",
            Call::Remove { .. } => "remove",
            Call::Logs { .. } => "logs",
            Call::Stats { .. } => "stats",
            Call::DiskUsage => "disk_usage",
        }
    }

    /// The runtime the call acts on by id, if any.
    fn runtime_id(&self) -> Option<&str> {
        match self {
            Call::SetRunning { runtime_id, .. }
            | Call::SetPaused { runtime_id, .. }
            | Call::Observe { runtime_id }
            | Call::Remove { runtime_id, .. }
            | Call::Logs { runtime_id, .. }
            | Call::Stats { runtime_id } => Some(runtime_id),
            _ => None,
        }
    }

    /// The spec the call carries, if any (its installation must match the caller's).
    fn spec(&self) -> Option<&RuntimeSpec> {
        match self {
            Call::Prepare { spec } | Call::Ensure { spec, .. } => Some(spec),
            _ => None,
        }
    }
}

/// A driver that forwards every call to a runtime manager.
#[derive(Debug, Clone)]
pub struct RemoteDriver {
    endpoint: reqwest::Url,
    secret: String,
    instance: String,
    http: reqwest::Client,
}

impl RemoteDriver {
    /// A driver for the runtime manager at `base` (e.g. `http://10.0.0.5:3001/`), acting for
    /// installation `instance`.
    pub fn new(base: &reqwest::Url, secret: &str, instance: &str) -> Result<Self, DriverError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(DriverError::ManagerRefused(format!(
                "the shared secret must be at least {MIN_SECRET_LEN} characters"
            )));
        }
        let endpoint = base
            .join("v1/driver")
            .map_err(|e| DriverError::ManagerUnreachable(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| DriverError::ManagerUnreachable(e.to_string()))?;
        Ok(RemoteDriver {
            endpoint,
            secret: secret.to_owned(),
            instance: instance.to_owned(),
            http,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        call: &Call,
        timeout: Duration,
    ) -> Result<T, DriverError> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .bearer_auth(&self.secret)
            .header(INSTANCE_HEADER, &self.instance)
            .timeout(timeout)
            .json(call)
            .send()
            .await
            .map_err(|e| {
                DriverError::ManagerUnreachable(format!("{} ({})", self.endpoint, e.without_url()))
            })?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body["error"]
                .as_str()
                .map_or_else(|| status.to_string(), str::to_owned);
            return Err(DriverError::ManagerRefused(message));
        }
        response
            .json::<Result<T, DriverError>>()
            .await
            .map_err(|e| DriverError::ManagerRefused(format!("unreadable answer: {e}")))?
    }
}

/// Long enough for any single Docker call; stops add their grace period.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

#[async_trait]
impl RuntimeDriver for RemoteDriver {
    async fn ensure_isolation(&self) -> Result<Isolation, DriverError> {
        self.call(&Call::EnsureIsolation, CALL_TIMEOUT).await
    }

    async fn prepare(&self, spec: &RuntimeSpec) -> Result<Prepared, DriverError> {
        let call = Call::Prepare { spec: spec.clone() };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn ensure(
        &self,
        spec: &RuntimeSpec,
        config: &str,
        replace: bool,
    ) -> Result<Observation, DriverError> {
        let call = Call::Ensure {
            spec: spec.clone(),
            config: config.to_owned(),
            replace,
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn set_running(
        &self,
        runtime_id: &str,
        running: bool,
        grace: Duration,
    ) -> Result<(), DriverError> {
        let call = Call::SetRunning {
            runtime_id: runtime_id.to_owned(),
            running,
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        };
        self.call(&call, CALL_TIMEOUT + grace).await
    }

    async fn set_paused(&self, runtime_id: &str, paused: bool) -> Result<bool, DriverError> {
        let call = Call::SetPaused {
            runtime_id: runtime_id.to_owned(),
            paused,
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn observe(&self, runtime_id: &str) -> Result<Option<Observation>, DriverError> {
        let call = Call::Observe {
            runtime_id: runtime_id.to_owned(),
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn list(&self) -> Result<Vec<Observation>, DriverError> {
        self.call(&Call::List, CALL_TIMEOUT).await
    }

    async fn remove(&self, runtime_id: &str, wipe_workspace: bool) -> Result<(), DriverError> {
        let call = Call::Remove {
            runtime_id: runtime_id.to_owned(),
            wipe_workspace,
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn logs(&self, runtime_id: &str, lines: usize) -> Result<Vec<String>, DriverError> {
        let call = Call::Logs {
            runtime_id: runtime_id.to_owned(),
            lines,
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn stats(&self, runtime_id: &str) -> Result<Stats, DriverError> {
        let call = Call::Stats {
            runtime_id: runtime_id.to_owned(),
        };
        self.call(&call, CALL_TIMEOUT).await
    }

    async fn disk_usage(&self) -> Result<crate::DiskUsage, DriverError> {
        self.call(&Call::DiskUsage, CALL_TIMEOUT).await
    }
}

pub mod service;
