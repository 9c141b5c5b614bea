//! When the platform stops a running runtime by itself: after a stretch without workspace
//! traffic (idle stop) or after a maximum lifetime.

use crate::repo::RuntimeRow;
use crate::settings::RuntimeSettings;
use time::{Duration, OffsetDateTime};

/// Why a running runtime will be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// No workspace traffic for this many minutes.
    Idle(u32),
    /// Running for this many minutes, the most allowed at a time.
    Lifetime(u32),
}

/// Why and when a running runtime will be stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStop {
    pub at: OffsetDateTime,
    pub kind: StopKind,
    /// In words, for the runtime's stop reason once it happened.
    pub reason: String,
}

/// The idle limit that applies to a binding, in minutes (0 = never).
pub fn idle_minutes(settings: &RuntimeSettings, binding: &RuntimeRow) -> u32 {
    binding
        .idle_stop_minutes
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(settings.idle_stop_minutes)
}

/// The earlier of the idle stop and the lifetime stop of a running binding, if either applies.
pub fn planned_stop(settings: &RuntimeSettings, binding: &RuntimeRow) -> Option<PlannedStop> {
    let since = binding.ready_at?;
    let idle = match idle_minutes(settings, binding) {
        0 => None,
        minutes => Some(PlannedStop {
            at: binding.last_active_at.unwrap_or(since).max(since)
                + Duration::minutes(i64::from(minutes)),
            kind: StopKind::Idle(minutes),
            reason: format!("Stopped after {} without workspace use.", span(minutes)),
        }),
    };
    let lifetime = settings.max_lifetime_minutes.map(|minutes| PlannedStop {
        at: since + Duration::minutes(i64::from(minutes)),
        kind: StopKind::Lifetime(minutes),
        reason: format!(
            "Stopped after running for {}, the longest a runtime may run at a time.",
            span(minutes)
        ),
    });
    match (idle, lifetime) {
        (Some(a), Some(b)) => Some(if a.at <= b.at { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The stop that is due now, if any.
pub fn due(
    settings: &RuntimeSettings,
    binding: &RuntimeRow,
    now: OffsetDateTime,
) -> Option<PlannedStop> {
    planned_stop(settings, binding).filter(|p| p.at <= now)
}

/// "90 minutes", "2 hours", "1 hour 30 minutes".
pub fn span(minutes: u32) -> String {
    let plural = |n: u32, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (minutes / 60, minutes % 60) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ready_ago: i64, active_ago: Option<i64>, own: Option<i32>) -> RuntimeRow {
        let now = OffsetDateTime::now_utc();
        RuntimeRow {
            ready_at: Some(now - Duration::minutes(ready_ago)),
            last_active_at: active_ago.map(|m| now - Duration::minutes(m)),
            idle_stop_minutes: own,
            ..RuntimeRow::sample("ana")
        }
    }

    fn settings(idle: u32, lifetime: Option<u32>) -> RuntimeSettings {
        RuntimeSettings {
            idle_stop_minutes: idle,
            max_lifetime_minutes: lifetime,
            ..RuntimeSettings::default()
        }
    }

    #[test]
    fn idle_stop_counts_from_the_last_use_and_a_user_override_wins() {
        let now = OffsetDateTime::now_utc();
        let s = settings(60, None);
        assert!(due(&s, &binding(120, Some(30), None), now).is_none());
        let stop = due(&s, &binding(120, Some(61), None), now).expect("idle");
        assert_eq!(stop.reason, "Stopped after 1 hour without workspace use.");
        assert!(
            due(&s, &binding(120, Some(61), Some(0)), now).is_none(),
            "0 = never"
        );
        assert!(due(&s, &binding(120, Some(61), Some(90)), now).is_none());
        assert!(due(&s, &binding(120, Some(91), Some(90)), now).is_some());
        // Never used since it started: idle time counts from the start.
        assert!(due(&s, &binding(61, None, None), now).is_some());
        assert!(due(&settings(0, None), &binding(600, None, None), now).is_none());
    }

    #[test]
    fn the_lifetime_limit_stops_even_a_busy_runtime() {
        let now = OffsetDateTime::now_utc();
        let s = settings(60, Some(8 * 60));
        assert!(due(&s, &binding(479, Some(0), None), now).is_none());
        let stop = due(&s, &binding(481, Some(0), None), now).expect("lifetime");
        assert!(stop.reason.contains("8 hours"), "{}", stop.reason);
        let planned = planned_stop(&s, &binding(10, Some(0), None)).expect("planned");
        assert!(
            planned.reason.contains("without workspace use"),
            "idle comes first"
        );
        assert_eq!(span(90), "1 hour 30 minutes");
        assert_eq!(span(1), "1 minute");
    }
}
