//! Runtime time and the budget, on the leader after each reconciler pass: the stretches the
//! pass saw running are charged up to now, and a runtime whose owner's budget is used up (model
//! requests and runtime time together) is stopped gracefully, its workspace kept.

use crate::{Orchestrator, OrchestratorError, UserRef, repo};
use clawloops_models::budget::{self, Standing};
use clawloops_models::compute::{self, Metered};
use clawloops_wire::runtime::{Action, StopCause};
use time::OffsetDateTime;

/// What one meter pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MeterReport {
    pub metered: Metered,
    /// Runtimes stopped because their owner's budget is used up.
    pub stopped: usize,
}

impl Orchestrator {
    /// Charges runtime time not yet charged and stops the runtimes of users whose budget is used
    /// up. Safe on any replica and at any time (a stretch is charged once whoever charges it);
    /// the leader calls it after each reconciler pass.
    pub async fn meter(&self) -> Result<MeterReport, OrchestratorError> {
        let limits = &self.inner.settings.limits;
        let defaults = (
            i32::try_from(limits.memory_mb).unwrap_or(i32::MAX),
            limits.cpus,
        );
        let metered = compute::charge(&self.inner.pool, defaults).await?;
        let mut conn = self.inner.pool.acquire().await?;
        let over = budget::exhausted_running(&mut conn, OffsetDateTime::now_utc()).await?;
        let mut report = MeterReport {
            metered,
            stopped: 0,
        };
        for (standing, username) in over {
            let reason = stop_reason(&standing);
            tracing::info!(user = %username, reason = %reason, "stopping a runtime: budget used up");
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let user = UserRef {
                id: standing.user_id,
                username: &username,
            };
            self.request_in(&mut tx, user, Action::Stop, false, "budget")
                .await?;
            repo::set_stop_reason(&mut tx, user.id, Some((StopCause::Budget, &reason))).await?;
            tx.commit().await?;
            report.stopped += 1;
        }
        if report.stopped > 0 {
            self.wake();
        }
        Ok(report)
    }
}

/// "$5.00" from nano-dollars.
pub fn dollars(nano: i64) -> String {
    format!("${:.2}", nano as f64 / 1e9)
}

/// What is used up: "your budget for this month is used up ($5.00 of $5.00, …)".
fn used_up(s: &Standing) -> String {
    match s.limit_nano.filter(|l| s.spent_nano >= *l) {
        Some(limit) => format!(
            "your budget for this {} is used up ({} of {}, model requests and runtime time together)",
            s.period.name(),
            dollars(s.spent_nano),
            dollars(limit)
        ),
        None => format!(
            "your token budget for this {} is used up ({} tokens)",
            s.period.name(),
            s.used_tokens
        ),
    }
}

/// Why the platform stopped a runtime whose owner's budget is used up, in the owner's words.
pub fn stop_reason(s: &Standing) -> String {
    format!(
        "Stopped because {}; your workspace is kept. It renews on {}; an administrator can raise or reset it.",
        used_up(s),
        s.ends.date()
    )
}

/// Why a start is refused while the budget is used up.
pub fn start_refusal(s: &Standing) -> String {
    let mut words = used_up(s);
    if let Some(first) = words.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!(
        "{words}, so your runtime cannot start. It renews on {}; an administrator can raise or reset it.",
        s.ends.date()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawloops_models::budget::Period;
    use time::macros::datetime;

    #[test]
    fn reasons_say_what_is_used_up_and_when_it_renews() {
        let now = datetime!(2026-12-02 12:00 UTC);
        let (starts, ends) = Period::Week.bounds(now);
        let mut s = Standing {
            user_id: uuid::Uuid::nil(),
            limit_nano: Some(5_000_000_000),
            limit_tokens: Some(1000),
            period: Period::Week,
            from_default: false,
            exempt: false,
            starts,
            ends,
            spent_nano: 5_010_000_000,
            compute_nano: 2_000_000_000,
            used_tokens: 10,
        };
        let stop = stop_reason(&s);
        assert!(
            stop.contains("budget for this week is used up ($5.01 of $5.00"),
            "{stop}"
        );
        assert!(stop.contains("renews on 2026-12-07"), "{stop}");
        s.spent_nano = 0;
        s.used_tokens = 1000;
        let refusal = start_refusal(&s);
        assert!(refusal.starts_with("Your token budget for this week is used up (1000 tokens), so your runtime cannot start."), "{refusal}");
    }
}
