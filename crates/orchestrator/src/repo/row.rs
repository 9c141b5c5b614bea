//! A runtime binding as stored, and the problem recorded with it.

use clawloops_wire::runtime::{DesiredState, ObservedState, Problem, StopCause};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// A problem as recorded: what the owner is shown, the engine's words for logs and admins, and
/// the reference both quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub problem: Problem,
    pub detail: String,
    pub reference: Uuid,
}

/// A runtime binding.
#[derive(Debug, Clone)]
pub struct RuntimeRow {
    pub user_id: Uuid,
    pub username: String,
    pub runtime_id: String,
    pub desired_state: DesiredState,
    pub observed_state: ObservedState,
    pub profile: String,
    pub image: String,
    pub config_hash: Option<String>,
    pub container_id: Option<String>,
    pub internal_endpoint: Option<String>,
    pub browser_url: Option<String>,
    pub retention: String,
    pub gateway_token: String,
    pub memory_mb: Option<i32>,
    pub cpus: Option<f64>,
    pub pids: Option<i32>,
    /// What went wrong last, as the owner is told (None once the runtime is healthy).
    pub problem: Option<Json<Problem>>,
    /// The engine's own words about it: logs and admins only.
    pub problem_detail: Option<String>,
    /// Quoted by the owner's card and the admin's view, and logged with the detail.
    pub problem_ref: Option<Uuid>,
    pub crash_count: i32,
    pub crash_window_start: Option<OffsetDateTime>,
    pub next_recover_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub ready_at: Option<OffsetDateTime>,
    /// The last workspace request forward-auth saw (flushed in batches).
    pub last_active_at: Option<OffsetDateTime>,
    /// Minutes without use before an idle stop (None = default, 0 = never).
    pub idle_stop_minutes: Option<i32>,
    /// Why the platform stopped the runtime last (idle, lifetime), for the dashboard.
    pub stop_reason: Option<String>,
    /// When the entry proxy last fetched a route to this runtime.
    pub routed_at: Option<OffsetDateTime>,
    /// The user's own workspace limit in MiB (None = the deployment's default, 0 = none).
    pub disk_mb: Option<i32>,
    /// What the workspace volume held when last measured.
    pub disk_used_bytes: Option<i64>,
    pub disk_measured_at: Option<OffsetDateTime>,
    /// The node the runtime's workspace lives on (engines with several nodes).
    pub node: Option<String>,
    /// Why the platform holds the runtime (the runaway-agent breaker), while it does.
    pub paused_reason: Option<String>,
    /// Whether the held runtime was frozen in place (true) or stopped where the engine cannot
    /// freeze (false); None until the hold took effect.
    pub paused_in_place: Option<bool>,
    /// Why the platform stopped it last (with `stop_reason`'s words).
    pub stop_kind: Option<StopCause>,
}

impl RuntimeRow {
    pub fn desired(&self) -> DesiredState {
        self.desired_state
    }
    pub fn observed(&self) -> ObservedState {
        self.observed_state
    }
    /// A running binding with every optional field empty (unit tests build on it).
    pub fn sample(username: &str) -> RuntimeRow {
        let now = OffsetDateTime::now_utc();
        RuntimeRow {
            user_id: Uuid::nil(),
            username: username.into(),
            runtime_id: format!("rt-{username}"),
            desired_state: DesiredState::Running,
            observed_state: ObservedState::Running,
            profile: "stub".into(),
            image: "i".into(),
            config_hash: None,
            container_id: None,
            internal_endpoint: None,
            browser_url: None,
            retention: "preserve_workspace".into(),
            gateway_token: String::new(),
            memory_mb: None,
            cpus: None,
            pids: None,
            problem: None,
            problem_detail: None,
            problem_ref: None,
            crash_count: 0,
            crash_window_start: None,
            next_recover_at: None,
            created_at: now,
            updated_at: now,
            ready_at: None,
            last_active_at: None,
            idle_stop_minutes: None,
            stop_reason: None,
            routed_at: None,
            disk_mb: None,
            disk_used_bytes: None,
            disk_measured_at: None,
            node: None,
            paused_reason: None,
            paused_in_place: None,
            stop_kind: None,
        }
    }

    /// The problem with its detail and reference, when there is one.
    pub fn fault(&self) -> Option<Fault> {
        let problem = self.problem.as_ref()?.0.clone();
        Some(Fault {
            problem,
            detail: self.problem_detail.clone().unwrap_or_default(),
            reference: self.problem_ref.unwrap_or_default(),
        })
    }
}
