//! The orchestrator's error.

/// What went wrong with a request (task failures are recorded on the task instead).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("this user has no runtime")]
    NoRuntime,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Driver(#[from] clawloops_driver::DriverError),
    /// The workspace holds more than its disk limit (in words for the user).
    #[error("{0}")]
    WorkspaceFull(String),
    /// The owner's budget is used up (in words for the user).
    #[error("{0}")]
    BudgetUsedUp(String),
    /// The platform holds the runtime (the runaway-agent breaker; in words for the user).
    #[error("{0}")]
    Paused(String),
    /// Another replica leads the reconciler now.
    #[error("another control-plane replica leads the reconciler")]
    NotLeader,
}
