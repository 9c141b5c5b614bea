//! Runtimes: the signed-in user's own, and every runtime for admins.

use crate::AppError;
pub use clawloops_wire::runtime::{
    Action, DesiredState, ObservedState, PlannedStopKind, Problem, Stage, StopCause, TaskStatus,
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a person can ask of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeCommand {
    Start,
    Stop,
    Recover,
    /// Remove the runtime; `wipe_workspace` also deletes the files in it.
    Delete {
        wipe_workspace: bool,
    },
    /// Admins only, on engines with several nodes: start the runtime afresh on another node,
    /// with an empty workspace (the old node's copy is removed where it can be reached).
    MoveNode,
}

/// One step a task went through, with when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMark {
    pub stage: Stage,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A runtime as its card shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeCard {
    pub runtime_id: String,
    /// What was asked for.
    pub desired: DesiredState,
    /// What was last seen.
    pub observed: ObservedState,
    /// The newest task's action and status, when there is one.
    pub task_action: Option<Action>,
    pub task_status: Option<TaskStatus>,
    pub stages: Vec<StageMark>,
    /// Tasks ahead in the queue, while this one waits.
    pub queue_position: Option<i64>,
    /// What went wrong last, in the owner's words (None once the runtime is healthy).
    pub problem: Option<ProblemView>,
    /// Where to open the workspace (only while it runs and the entry layer routes it).
    pub browser_url: Option<String>,
    /// The workspace's address whatever the state, when the entry layer routes workspaces
    /// (the dashboard then offers the workspace entry page).
    pub workspace_url: Option<String>,
    /// The entry proxy has fetched the route since the runtime became ready: the workspace
    /// address answers now.
    pub routed: bool,
    /// When the platform will stop the running runtime, and why (idle or lifetime).
    pub planned_stop: Option<PlannedStopView>,
    /// Why the platform stopped it last, in words.
    pub stop_reason: Option<String>,
    /// …and what kind of stop that was.
    pub stop_cause: Option<StopCause>,
    /// What the workspace held when last measured, against its limit.
    pub disk: Option<DiskView>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A runtime's problem as its owner sees it: a stable code, a sentence, and a reference to
/// quote to an admin. Never the engine's own words (those are [`AdminRuntime::problem_detail`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemView {
    pub code: String,
    pub message: String,
    pub reference: String,
}

impl ProblemView {
    pub fn new(problem: &Problem, reference: String) -> ProblemView {
        ProblemView {
            code: problem.code().to_owned(),
            message: problem.message(),
            reference,
        }
    }

    /// The reference as people quote it (its first eight characters).
    pub fn short_reference(&self) -> &str {
        self.reference.get(..8).unwrap_or(&self.reference)
    }

    /// What the owner is asked to do if it happens again, with the reference to quote.
    pub fn ask_admin(&self) -> String {
        format!(
            "If it happens again, tell an administrator: reference {}.",
            self.short_reference()
        )
    }

    /// The whole sentence for the owner: what happened, then [`Self::ask_admin`].
    pub fn sentence(&self) -> String {
        format!("{} {}", self.message, self.ask_admin())
    }
}

/// A workspace's size against its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskView {
    pub used_bytes: u64,
    /// None: no limit.
    pub limit_bytes: Option<u64>,
    /// In words: "12 MiB", "10 GiB".
    pub used: String,
    pub limit: Option<String>,
}

impl DiskView {
    /// Share of the limit in use, 0–100 (over the limit shows as 100).
    pub fn percent(&self) -> Option<u8> {
        let limit = self.limit_bytes.filter(|l| *l > 0)?;
        Some(((self.used_bytes.saturating_mul(100) / limit).min(100)) as u8)
    }
}

/// A stop the platform will make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStopView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: PlannedStopKind,
    /// The idle or lifetime limit, in words ("1 hour").
    pub limit: String,
}

impl RuntimeCard {
    /// A task is queued or running.
    pub fn busy(&self) -> bool {
        matches!(
            self.task_status,
            Some(TaskStatus::Queued | TaskStatus::Running)
        )
    }
}

/// A runtime in the admin list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminRuntime {
    pub user_id: String,
    pub username: String,
    pub card: RuntimeCard,
    /// The engine's own words about the card's problem, and what to do (admins only).
    pub problem_detail: Option<String>,
    pub crash_count: i32,
    /// Stopped retrying after repeated crashes.
    pub crash_looping: bool,
    /// The node it runs on (or waits for), on engines with several.
    pub node: Option<String>,
    pub limits: RuntimeLimits,
}

/// A runtime's resource limits: the user's own, where an admin set them, and the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeLimits {
    pub memory_mb: Option<u32>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    pub default_memory_mb: u32,
    pub default_cpus: f64,
    pub default_pids: u32,
    /// Minutes without workspace use before the runtime stops (0 = never).
    pub idle_stop_minutes: Option<u32>,
    pub default_idle_stop_minutes: u32,
    /// Workspace disk limit in MiB (0 = none); the default's None = none.
    pub disk_mb: Option<u32>,
    pub default_disk_mb: Option<u32>,
}

/// Allowed range of each limit (the same as the deployment settings').
pub const MEMORY_MB_RANGE: std::ops::RangeInclusive<u32> = 128..=65536;
pub const CPUS_RANGE: std::ops::RangeInclusive<f64> = 0.1..=64.0;
pub const PIDS_RANGE: std::ops::RangeInclusive<u32> = 32..=65536;
pub const IDLE_STOP_RANGE: std::ops::RangeInclusive<u32> = 0..=43200;
/// 0 = no limit; otherwise at least 64 MiB.
pub const DISK_MB_RANGE: std::ops::RangeInclusive<u32> = 64..=16_777_216;

/// A runtime's recent output and resource use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeDetails {
    pub logs: Vec<String>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_cores: Option<f64>,
}

/// The caller's runtime, or `None` before the first start.
#[server(endpoint = "runtime/mine")]
pub async fn my_runtime() -> Result<Option<RuntimeCard>, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::User, async |state, caller| {
        runtimes::mine(state, caller).await
    })
    .await
}

/// Starts, stops, recovers or deletes the caller's runtime.
#[server(endpoint = "runtime/command")]
pub async fn command_my_runtime(command: RuntimeCommand) -> Result<Option<RuntimeCard>, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::User, async |state, caller| {
        runtimes::command_mine(state, caller, command).await
    })
    .await
}

/// Every runtime (admins).
#[server(endpoint = "admin/runtimes/list")]
pub async fn list_runtimes() -> Result<Vec<AdminRuntime>, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::Admin, async |state, _| runtimes::list(state).await).await
}

/// How runtimes are fenced off, as the admin runtimes page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicyView {
    /// `none` (the entry proxy only) or `public` (public internet addresses too).
    pub egress: String,
    /// `enforced` (the runtime manager's firewall rules are in place), `external` (left to
    /// the operator by configuration) or `failing` (no runtime starts; see `problem`).
    pub firewall: String,
    /// What is wrong, when the firewall is failing.
    pub problem: Option<String>,
    /// When the reconciler last checked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    /// Parts of the runtime hardening the engine cannot enforce (Docker Swarm at API 1.41).
    pub hardening_gaps: Vec<String>,
}

/// What runtimes may reach, and whether the host firewall enforces it right now (admins).
#[server(endpoint = "admin/runtimes/policy")]
pub async fn runtime_network_policy() -> Result<NetworkPolicyView, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::Admin, async |state, _| {
        runtimes::network_policy(state).await
    })
    .await
}

/// Acts on someone's runtime (admins).
#[server(endpoint = "admin/runtimes/command")]
pub async fn admin_runtime_command(
    user_id: String,
    command: RuntimeCommand,
) -> Result<Option<RuntimeCard>, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::Admin, async |state, caller| {
        runtimes::command_for(state, caller, &user_id, command).await
    })
    .await
}

/// The last 200 log lines and current memory/CPU of someone's runtime (admins).
#[server(endpoint = "admin/runtimes/details")]
pub async fn get_runtime_details(user_id: String) -> Result<RuntimeDetails, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    serve(Access::Admin, async |state, _| {
        runtimes::details(state, &user_id).await
    })
    .await
}

/// Sets (or, with a value left out, resets to the default) someone's runtime limits (admins).
/// They apply at the runtime's next start or recover.
#[server(endpoint = "admin/runtimes/limits")]
pub async fn set_runtime_limits(
    user_id: String,
    memory_mb: Option<u32>,
    cpus: Option<f64>,
    pids: Option<u32>,
    idle_stop_minutes: Option<u32>,
    disk_mb: Option<u32>,
) -> Result<RuntimeLimits, AppError> {
    use crate::ssr::{Access, runtimes, serve};
    let limits = runtimes::NewLimits {
        memory_mb,
        cpus,
        pids,
        idle_stop_minutes,
        disk_mb,
    };
    serve(Access::Admin, async |state, caller| {
        runtimes::set_limits(state, caller, &user_id, limits).await
    })
    .await
}
