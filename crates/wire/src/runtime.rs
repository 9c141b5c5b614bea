//! The runtime vocabulary every box shares — the orchestrator stores it, the server serves it,
//! the dashboard (WASM) matches on it: desired and observed state, task action, status and
//! stage, and the [`Problem`] a user is shown when something went wrong. Stored as checked text
//! (the migrations list every value) and matched exhaustively; nothing compares their text.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
        #[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "snake_case"))]
        pub enum $ty { $($variant),+ }

        impl $ty {
            /// The stored form.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// Parses the stored form.
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What the user (or an admin) wants.
    DesiredState { Running => "running", Stopped => "stopped", Deleted => "deleted" }
);
text_enum!(
    /// What was last seen. `paused`: frozen in place by the platform (the runaway-agent
    /// breaker): its memory and workspace are kept, it uses no CPU and answers nothing until
    /// it is resumed.
    ObservedState {
        Creating => "creating",
        Starting => "starting",
        Running => "running",
        Paused => "paused",
        Stopping => "stopping",
        Stopped => "stopped",
        Error => "error",
        Deleted => "deleted",
    }
);
text_enum!(
    /// A lifecycle task's action.
    Action { Start => "start", Stop => "stop", Recover => "recover", Delete => "delete" }
);
text_enum!(
    /// Where a task stands.
    TaskStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Canceled => "canceled",
    }
);
text_enum!(
    /// The steps of a start, in order.
    Stage {
        Queued => "queued",
        ConfigRendered => "config_rendered",
        ImageReady => "image_ready",
        ContainerCreated => "container_created",
        Started => "started",
        Healthy => "healthy",
        Stopped => "stopped",
        Removed => "removed",
    }
);

text_enum!(
    /// Why the platform will stop a running runtime: no use for a while, or its longest run.
    PlannedStopKind { Idle => "idle", Lifetime => "lifetime" }
);

text_enum!(
    /// Why the platform stopped a runtime last.
    StopCause {
        Idle => "idle",
        Lifetime => "lifetime",
        Disk => "disk",
        Budget => "budget",
        Breaker => "breaker",
    }
);

impl StopCause {
    /// Starting again is all it takes (not so for a full disk, a used-up budget or a breaker
    /// trip, whose words say what does).
    pub fn start_again_helps(self) -> bool {
        matches!(self, StopCause::Idle | StopCause::Lifetime)
    }
}

impl TaskStatus {
    /// Succeeded, failed or canceled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }
}

impl ObservedState {
    /// Between states: a task is creating, starting or stopping the runtime.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ObservedState::Creating | ObservedState::Starting | ObservedState::Stopping
        )
    }
}

/// What went wrong with a runtime, as its owner is told: a stable code (`code`, the JSON tag)
/// and a sentence ([`Problem::message`]). Engine and upstream text never goes in here — it is
/// the problem's *detail*, kept for logs and admins, next to a reference both sides can quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Problem {
    /// The runtime image is not on the runtime host.
    ImageMissing,
    /// The container engine does not answer.
    EngineUnreachable,
    /// The runtime manager (split mode) does not answer.
    ManagerUnreachable,
    /// The runtime manager refused the control plane (secret or address).
    ManagerRefused,
    /// The runtime host's disk is full.
    HostDiskFull,
    /// The entry proxy container is missing on the runtime host.
    EntryProxyMissing,
    /// The host firewall or network isolation could not be set up.
    IsolationUnavailable,
    /// The runtime's configuration could not be written.
    ConfigFailed,
    /// The engine refused a request for another reason.
    EngineRefused,
    /// The runtime's model key could not be issued.
    KeyFailed,
    /// The database failed during the task (it is retried).
    DatabaseFailed,
    /// The container went away while it was being created or started.
    Vanished,
    /// The runtime's process ended while it was starting.
    ExitedWhileStarting,
    /// The runtime did not answer its health check in time.
    NotReady { after_secs: u64 },
    /// The runtime stopped unexpectedly; it is recovered after a back-off.
    Crashed {
        exit_code: Option<i64>,
        retry_in_secs: u64,
    },
    /// It crashed too often: automatic recovery is paused.
    CrashLoop {
        crashes: u32,
        exit_code: Option<i64>,
    },
    /// A failure recorded before problems had codes.
    Failed,
    /// The machine (node) that holds the runtime's workspace is unreachable; the runtime comes
    /// back when it does.
    NodeDown,
    /// The cluster's resource quota leaves no room for the runtime.
    QuotaExceeded,
    /// The cluster does not let ClawLoops do what the runtime needs (its role lacks a right).
    ClusterForbidden,
    /// The cluster rejected the runtime's definition.
    ClusterRejected,
    /// The workspace volume cannot be provisioned (its storage class does not exist).
    StorageMissing,
}

/// Every code, as stored (the migration's check lists the same).
pub const PROBLEM_CODES: [&str; 22] = [
    "IMAGE_MISSING",
    "ENGINE_UNREACHABLE",
    "MANAGER_UNREACHABLE",
    "MANAGER_REFUSED",
    "HOST_DISK_FULL",
    "ENTRY_PROXY_MISSING",
    "ISOLATION_UNAVAILABLE",
    "CONFIG_FAILED",
    "ENGINE_REFUSED",
    "KEY_FAILED",
    "DATABASE_FAILED",
    "VANISHED",
    "EXITED_WHILE_STARTING",
    "NOT_READY",
    "CRASHED",
    "CRASH_LOOP",
    "FAILED",
    "NODE_DOWN",
    "QUOTA_EXCEEDED",
    "CLUSTER_FORBIDDEN",
    "CLUSTER_REJECTED",
    "STORAGE_MISSING",
];

impl Problem {
    /// The stable code (as in JSON and the database).
    pub fn code(&self) -> &'static str {
        match self {
            Problem::ImageMissing => "IMAGE_MISSING",
            Problem::EngineUnreachable => "ENGINE_UNREACHABLE",
            Problem::ManagerUnreachable => "MANAGER_UNREACHABLE",
            Problem::ManagerRefused => "MANAGER_REFUSED",
            Problem::HostDiskFull => "HOST_DISK_FULL",
            Problem::EntryProxyMissing => "ENTRY_PROXY_MISSING",
            Problem::IsolationUnavailable => "ISOLATION_UNAVAILABLE",
            Problem::ConfigFailed => "CONFIG_FAILED",
            Problem::EngineRefused => "ENGINE_REFUSED",
            Problem::KeyFailed => "KEY_FAILED",
            Problem::DatabaseFailed => "DATABASE_FAILED",
            Problem::Vanished => "VANISHED",
            Problem::ExitedWhileStarting => "EXITED_WHILE_STARTING",
            Problem::NotReady { .. } => "NOT_READY",
            Problem::Crashed { .. } => "CRASHED",
            Problem::CrashLoop { .. } => "CRASH_LOOP",
            Problem::Failed => "FAILED",
            Problem::NodeDown => "NODE_DOWN",
            Problem::QuotaExceeded => "QUOTA_EXCEEDED",
            Problem::ClusterForbidden => "CLUSTER_FORBIDDEN",
            Problem::ClusterRejected => "CLUSTER_REJECTED",
            Problem::StorageMissing => "STORAGE_MISSING",
        }
    }

    /// What the runtime's owner reads.
    pub fn message(&self) -> String {
        let exit = |code: &Option<i64>| {
            code.map(|c| format!(" (exit code {c})"))
                .unwrap_or_default()
        };
        match self {
            Problem::ImageMissing => {
                "The runtime's software is not installed on the server.".into()
            }
            Problem::EngineUnreachable => {
                "The server that runs workspaces is not answering.".into()
            }
            Problem::ManagerUnreachable => "The runtime manager is not answering.".into(),
            Problem::ManagerRefused => "The runtime manager refused the request.".into(),
            Problem::HostDiskFull => "The server that runs workspaces is out of disk space.".into(),
            Problem::EntryProxyMissing => {
                "The entry proxy that serves workspaces is not running.".into()
            }
            Problem::IsolationUnavailable => {
                "Workspaces cannot be isolated on the server right now.".into()
            }
            Problem::ConfigFailed => "The runtime's configuration could not be written.".into(),
            Problem::EngineRefused => "The container engine refused to run the runtime.".into(),
            Problem::KeyFailed => "The runtime's model key could not be issued.".into(),
            Problem::DatabaseFailed => {
                "The database failed during the task; it will be retried.".into()
            }
            Problem::Vanished => {
                "The runtime's container disappeared while it was starting.".into()
            }
            Problem::ExitedWhileStarting => "The runtime stopped while starting.".into(),
            Problem::NotReady { after_secs } => {
                format!("The runtime did not become ready within {after_secs} seconds.")
            }
            Problem::Crashed {
                exit_code,
                retry_in_secs,
            } => format!(
                "The runtime stopped unexpectedly{}; recovering in {retry_in_secs} seconds.",
                exit(exit_code)
            ),
            Problem::CrashLoop { crashes, exit_code } => format!(
                "The runtime stopped unexpectedly {crashes} times in 10 minutes{}; automatic \
                 recovery is paused. Start or recover it to try again.",
                exit(exit_code)
            ),
            Problem::Failed => "The last action on the runtime failed.".into(),
            Problem::NodeDown => "The machine that holds your workspace is not reachable right \
                 now. Your runtime comes back by itself when that machine does."
                .into(),
            Problem::QuotaExceeded => {
                "There is no room left for your runtime in the team's share of the cluster.".into()
            }
            Problem::ClusterForbidden => {
                "The cluster does not allow ClawLoops to start your runtime.".into()
            }
            Problem::ClusterRejected => "The cluster rejected your runtime's settings.".into(),
            Problem::StorageMissing => {
                "The storage for your workspace cannot be set up on the cluster.".into()
            }
        }
    }

    /// What an admin can do about it (empty when the detail says it all).
    pub fn remedy(&self) -> &'static str {
        match self {
            Problem::EngineUnreachable => "Check that Docker is running on the runtime host.",
            Problem::ManagerUnreachable => {
                "Check that `clawloops runtime-manager` is running and reachable."
            }
            Problem::ManagerRefused => {
                "Check that both sides share the same runtime_manager_secret and that this address is allowed."
            }
            Problem::ImageMissing => {
                "Build or pull it on the runtime host, or push it to the registry the cluster's nodes pull from (scripts/build-images.sh builds the default)."
            }
            Problem::HostDiskFull => "Free disk space on the Docker host, then start again.",
            Problem::EntryProxyMissing => {
                "Start the entry proxy (Traefik) on the runtime host; scripts/start.sh starts it."
            }
            Problem::ExitedWhileStarting | Problem::CrashLoop { .. } | Problem::Crashed { .. } => {
                "The runtime's logs (Administration → Runtimes) show why it stopped."
            }
            Problem::NotReady { .. } => {
                "The runtime's logs show how far it got; a slow host may need a longer runtime_ready_timeout_secs."
            }
            Problem::NodeDown => {
                "Bring the node back (its Docker engine and network), or move the runtime to another node from Administration → Runtimes (it starts there with a fresh workspace)."
            }
            Problem::QuotaExceeded => {
                "Raise the runtimes namespace's ResourceQuota, lower the runtime limits, or stop idle runtimes (docs/kubernetes.md)."
            }
            Problem::ClusterForbidden => {
                "The control plane's Role lacks a right the detail names: apply deploy/kubernetes/base/rbac.yaml again."
            }
            Problem::ClusterRejected => {
                "The detail names the field the API server refused; check the runtime settings (limits, storage class)."
            }
            Problem::StorageMissing => {
                "Set kubernetes_storage_class to a class the cluster has (`kubectl get storageclass`), or leave it unset for the default class; then start again."
            }
            Problem::IsolationUnavailable
            | Problem::ConfigFailed
            | Problem::EngineRefused
            | Problem::KeyFailed
            | Problem::DatabaseFailed
            | Problem::Vanished
            | Problem::Failed => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_their_code_as_the_json_tag_and_every_code_is_listed() {
        let all = [
            Problem::ImageMissing,
            Problem::EngineUnreachable,
            Problem::ManagerUnreachable,
            Problem::ManagerRefused,
            Problem::HostDiskFull,
            Problem::EntryProxyMissing,
            Problem::IsolationUnavailable,
            Problem::ConfigFailed,
            Problem::EngineRefused,
            Problem::KeyFailed,
            Problem::DatabaseFailed,
            Problem::Vanished,
            Problem::ExitedWhileStarting,
            Problem::NotReady { after_secs: 30 },
            Problem::Crashed {
                exit_code: Some(137),
                retry_in_secs: 5,
            },
            Problem::CrashLoop {
                crashes: 5,
                exit_code: None,
            },
            Problem::Failed,
            Problem::NodeDown,
            Problem::QuotaExceeded,
            Problem::ClusterForbidden,
            Problem::ClusterRejected,
            Problem::StorageMissing,
        ];
        assert_eq!(all.len(), PROBLEM_CODES.len());
        for (problem, code) in all.iter().zip(PROBLEM_CODES) {
            assert_eq!(problem.code(), code);
            let json = serde_json::to_value(problem).expect("json");
            assert_eq!(json["code"], code, "{json}");
            assert_eq!(
                serde_json::from_value::<Problem>(json).expect("back"),
                *problem
            );
            assert!(problem.message().ends_with('.'), "{problem:?}");
        }
        assert_eq!(
            Problem::Crashed {
                exit_code: Some(137),
                retry_in_secs: 5
            }
            .message(),
            "The runtime stopped unexpectedly (exit code 137); recovering in 5 seconds."
        );
    }

    #[test]
    fn states_round_trip_their_text() {
        for state in [
            ObservedState::Creating,
            ObservedState::Error,
            ObservedState::Deleted,
        ] {
            assert_eq!(ObservedState::parse(state.as_str()), Some(state));
        }
        assert_eq!(Stage::parse("config_rendered"), Some(Stage::ConfigRendered));
        assert_eq!(DesiredState::parse("paused"), None);
    }
}
