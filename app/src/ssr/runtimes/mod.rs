//! Runtime server functions over the orchestrator.

use crate::AppError;
use crate::api::runtime::{
    AdminRuntime, CPUS_RANGE, DISK_MB_RANGE, DiskView, IDLE_STOP_RANGE, MEMORY_MB_RANGE,
    PIDS_RANGE, PlannedStopKind, PlannedStopView, ProblemView, RuntimeCard, RuntimeCommand,
    RuntimeDetails, RuntimeLimits, Stage, StageMark,
};
use crate::ssr::AppState;
use crate::ssr::audit::{self, Subject};
use crate::ssr::identity::auth::gate::Caller;
use crate::ssr::identity::repo::users;
use crate::ssr::parse_id;
use clawloops_orchestrator::{
    Action, DesiredState, LimitOverride, ObservedState, Orchestrator, OrchestratorError,
    RuntimeRow, RuntimeView, StopKind, UserRef, duration_words,
};
use uuid::Uuid;

mod admin;
pub use admin::{NewLimits, details, list, network_policy, set_limits};

/// How many log lines admins see.
const LOG_LINES: usize = 200;
/// Crashes after which automatic recovery pauses (the orchestrator's guard).
const CRASH_LIMIT: i32 = 5;

/// How long after the entry proxy first fetched a runtime's route the workspace counts as
/// reachable (see the card's `routed`).
const ROUTE_SETTLE: time::Duration = time::Duration::seconds(2);

impl From<OrchestratorError> for AppError {
    fn from(err: OrchestratorError) -> Self {
        match err {
            OrchestratorError::NoRuntime => AppError::NotFound {
                what: "Runtime".into(),
            },
            OrchestratorError::Database(e) => AppError::from(e),
            OrchestratorError::Driver(e) => {
                tracing::warn!(error = %e, "runtime driver");
                AppError::Unavailable
            }
            OrchestratorError::WorkspaceFull(message)
            | OrchestratorError::BudgetUsedUp(message)
            | OrchestratorError::Paused(message) => AppError::Conflict { message },
            OrchestratorError::NotLeader => AppError::Unavailable,
        }
    }
}

fn card(orchestrator: &Orchestrator, view: RuntimeView) -> RuntimeCard {
    let b = view.binding;
    let planned_stop = (b.observed() == ObservedState::Running
        && b.desired() == DesiredState::Running)
        .then(|| orchestrator.planned_stop(&b))
        .flatten()
        .map(|p| {
            let (kind, minutes) = match p.kind {
                StopKind::Idle(m) => (PlannedStopKind::Idle, m),
                StopKind::Lifetime(m) => (PlannedStopKind::Lifetime, m),
            };
            PlannedStopView {
                at: p.at,
                kind,
                limit: duration_words(minutes),
            }
        });
    // The entry proxy fetched a route to the runtime since it became ready, long enough ago
    // for it to be in use: Traefik applies what it fetched after its throttle (0.5 s) and a
    // rebuild of its routers, so a browser sent there at once could still find no route.
    let settled = time::OffsetDateTime::now_utc() - ROUTE_SETTLE;
    let routed = b.observed() == ObservedState::Running
        && b.browser_url.is_some()
        && matches!((b.routed_at, b.ready_at), (Some(r), Some(ready)) if r >= ready && r <= settled);
    let workspace_url = orchestrator.workspace_url(&b.username);
    let stages = view
        .task
        .as_ref()
        .and_then(|t| t.stages.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let stage = Stage::parse(s["stage"].as_str()?)?;
            let at = s["at"].as_str().and_then(parse_pg_time)?;
            Some(StageMark { stage, at })
        })
        .collect();
    let running = b.observed() == ObservedState::Running;
    let stop_reason = b.stop_reason.clone().filter(|_| !running);
    let limit_bytes = clawloops_orchestrator::disk::limit_mb(orchestrator.settings(), &b)
        .map(|mb| u64::from(mb) * 1024 * 1024);
    let disk = b
        .disk_used_bytes
        .and_then(|used| u64::try_from(used).ok())
        .map(|used_bytes| DiskView {
            used_bytes,
            limit_bytes,
            used: clawloops_orchestrator::disk::size(used_bytes),
            limit: limit_bytes.map(clawloops_orchestrator::disk::size),
        });
    let problem = b
        .fault()
        .map(|f| ProblemView::new(&f.problem, f.reference.to_string()));
    RuntimeCard {
        runtime_id: b.runtime_id,
        desired: b.desired_state,
        observed: b.observed_state,
        task_action: view.task.as_ref().map(|t| t.action),
        task_status: view.task.as_ref().map(|t| t.status),
        stages,
        queue_position: view.queue_position,
        problem,
        browser_url: b.browser_url.filter(|_| running),
        workspace_url,
        routed,
        planned_stop,
        stop_reason,
        stop_cause: b.stop_kind.filter(|_| !running),
        disk,
        updated_at: b.updated_at,
    }
}

/// A problem's detail as admins read it: the engine's words, then what to do.
pub(crate) fn admin_detail(fault: &clawloops_orchestrator::repo::Fault) -> String {
    match fault.problem.remedy() {
        "" => fault.detail.clone(),
        remedy => format!("{} {remedy}", fault.detail),
    }
}

/// PostgreSQL's JSON timestamps (`2026-11-25T17:01:02.123456+00:00`).
fn parse_pg_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn action_of(command: RuntimeCommand) -> (Action, bool) {
    match command {
        RuntimeCommand::Start => (Action::Start, false),
        RuntimeCommand::Stop => (Action::Stop, false),
        RuntimeCommand::Recover => (Action::Recover, false),
        RuntimeCommand::Delete { wipe_workspace } => (Action::Delete, wipe_workspace),
        RuntimeCommand::MoveNode => (Action::Recover, true),
    }
}

async fn view_of(state: &AppState, user: Uuid) -> Result<Option<RuntimeCard>, AppError> {
    let orchestrator = state.orchestrator();
    Ok(orchestrator
        .view(user)
        .await?
        .map(|view| card(orchestrator, view)))
}

/// See [`crate::api::runtime::my_runtime`].
pub async fn mine(state: &AppState, caller: &Caller) -> Result<Option<RuntimeCard>, AppError> {
    view_of(state, caller.user.id).await
}

async fn command(
    state: &AppState,
    caller: &Caller,
    user: Uuid,
    username: &str,
    command: RuntimeCommand,
) -> Result<Option<RuntimeCard>, AppError> {
    let (action, wipe) = action_of(command);
    let by = format!("user:{}", caller.user.username);
    let who = UserRef { id: user, username };
    let what = if command == RuntimeCommand::MoveNode {
        state.orchestrator().move_to_new_node(who, &by).await?;
        "runtime.move".to_owned()
    } else {
        state.orchestrator().request(who, action, wipe, &by).await?;
        format!("runtime.{}", action.as_str())
    };
    let id = user.to_string();
    audit::by_caller(
        state.pool(),
        caller,
        &what,
        Some(Subject::user(&id, username)),
        wipe.then(|| serde_json::json!({ "wipe_workspace": true })),
    )
    .await?;
    view_of(state, user).await
}

/// See [`crate::api::runtime::command_my_runtime`].
pub async fn command_mine(
    state: &AppState,
    caller: &Caller,
    cmd: RuntimeCommand,
) -> Result<Option<RuntimeCard>, AppError> {
    // Where a runtime runs is the admins' decision.
    if cmd == RuntimeCommand::MoveNode {
        return Err(AppError::AccessDenied);
    }
    let (id, name) = (caller.user.id, caller.user.username.clone());
    command(state, caller, id, &name, cmd).await
}

/// See [`crate::api::runtime::admin_runtime_command`].
pub async fn command_for(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    cmd: RuntimeCommand,
) -> Result<Option<RuntimeCard>, AppError> {
    let id = parse_id(user_id, "User")?;
    let target = users::find(state.pool(), id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "User".into(),
        })?;
    command(state, caller, id, &target.username, cmd).await
}

/// Lifecycle hook: a disabled user's runtime stops (inside the caller's transaction).
pub async fn stop_for_disabled(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    request_in(state, tx, user, username, Action::Stop, false).await
}

/// Lifecycle hook: a running runtime is made anew so that every connection to it ends (inside
/// the caller's transaction); `why` is recorded as who asked.
pub async fn restart_for_recovery(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    username: &str,
    why: &str,
) -> Result<(), AppError> {
    state
        .orchestrator()
        .request_in(
            tx,
            UserRef { id: user, username },
            Action::Recover,
            false,
            why,
        )
        .await?;
    state.orchestrator().wake();
    Ok(())
}

/// Lifecycle hook: a deleted user's runtime and workspace go (inside the caller's transaction).
pub async fn delete_for_deleted(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    username: &str,
) -> Result<(), AppError> {
    request_in(state, tx, user, username, Action::Delete, true).await
}

async fn request_in(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    username: &str,
    action: Action,
    wipe: bool,
) -> Result<(), AppError> {
    match state
        .orchestrator()
        .request_in(
            tx,
            UserRef { id: user, username },
            action,
            wipe,
            "lifecycle",
        )
        .await
    {
        Ok(_) => {
            state.orchestrator().wake();
            Ok(())
        }
        Err(OrchestratorError::NoRuntime) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
