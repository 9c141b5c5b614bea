//! Why a task stopped before its end: a failure (shown to its owner as a problem, the engine's
//! words kept for logs and admins) or a lost lease.

use clawloops_driver::DriverError;
use clawloops_wire::runtime::Problem;

/// A task's failure: the problem its owner is shown, and the detail (engine text) for logs and
/// admins only.
pub(super) struct Failure {
    pub(super) problem: Problem,
    pub(super) detail: String,
}

impl Failure {
    pub(super) fn new(problem: Problem, detail: impl Into<String>) -> Failure {
        Failure {
            problem,
            detail: detail.into(),
        }
    }
}

/// Why a task's execution stopped before its end.
pub(super) enum Halt {
    /// It failed: recorded on the task and the runtime.
    Failed(Failure),
    /// The lease is gone: another worker owns the task now; nothing more is written.
    LeaseLost,
}

impl<E: Into<Failure>> From<E> for Halt {
    fn from(err: E) -> Self {
        Halt::Failed(err.into())
    }
}

impl From<DriverError> for Failure {
    fn from(err: DriverError) -> Self {
        let problem = match &err {
            DriverError::Unreachable(_) => Problem::EngineUnreachable,
            DriverError::ManagerUnreachable(_) => Problem::ManagerUnreachable,
            DriverError::ManagerRefused(_) => Problem::ManagerRefused,
            DriverError::ImageMissing(_) => Problem::ImageMissing,
            DriverError::DiskFull(_) => Problem::HostDiskFull,
            DriverError::EntryProxyMissing(_) => Problem::EntryProxyMissing,
            DriverError::Config(_) => Problem::ConfigFailed,
            DriverError::Isolation(_) => Problem::IsolationUnavailable,
            DriverError::QuotaExceeded(_) => Problem::QuotaExceeded,
            DriverError::Forbidden(_) => Problem::ClusterForbidden,
            DriverError::Rejected(_) => Problem::ClusterRejected,
            DriverError::StorageMissing(_) => Problem::StorageMissing,
            DriverError::Conflict | DriverError::Missing(_) | DriverError::Docker(_) => {
                Problem::EngineRefused
            }
        };
        Failure::new(problem, err.to_string())
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Failure::new(Problem::DatabaseFailed, err.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::new(
            Problem::ConfigFailed,
            format!("the runtime configuration could not be written: {err}"),
        )
    }
}
