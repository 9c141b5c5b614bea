//! One budget per user for model requests and runtime time together, in dollars per day, week
//! or month (UTC), with a default for everyone without one of their own. What applies to whom
//! is the `user_budgets` view; what was spent in a period is the `cost` quota window (the
//! gateway settles requests into it, the meter charges runtime time into it), with the runtime
//! part also in the `compute` window, so both parts restart together when an admin resets.

use crate::quota::Quota;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime, Time};
use uuid::Uuid;

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    #[default]
    Month,
}

impl Period {
    /// `day`, `week` or `month`, as stored; anything else is the default (month).
    pub fn parse(text: &str) -> Option<Period> {
        match text {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// As stored (`day`, `week`, `month`); reads as "per day" and "this month".
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// When the period that contains `now` started and when it ends.
    pub fn bounds(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let day = now.replace_time(Time::MIDNIGHT);
        match self {
            Period::Day => (day, day + Duration::days(1)),
            Period::Week => {
                let start =
                    day - Duration::days(i64::from(day.weekday().number_days_from_monday()));
                (start, start + Duration::days(7))
            }
            Period::Month => {
                let start = day.replace_day(1).unwrap_or(day);
                let end = if start.month() == time::Month::December {
                    start
                        .replace_year(start.year() + 1)
                        .and_then(|t| t.replace_month(time::Month::January))
                } else {
                    start.replace_month(start.month().next())
                }
                .unwrap_or(start + Duration::days(31));
                (start, end)
            }
        }
    }
}

/// The budget that applies to a user, and what of it is spent in the current period.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub user_id: Uuid,
    /// Nano-dollars per period (None: no spending budget).
    pub limit_nano: Option<i64>,
    /// A token budget, when the user has one of their own.
    pub limit_tokens: Option<i64>,
    pub period: Period,
    /// The budget is the default for everyone, not the user's own.
    pub from_default: bool,
    /// An admin exempted the user from budgets.
    pub exempt: bool,
    pub starts: OffsetDateTime,
    pub ends: OffsetDateTime,
    /// Spent in this period: model requests and runtime time together.
    pub spent_nano: i64,
    /// The runtime-time part of `spent_nano`.
    pub compute_nano: i64,
    pub used_tokens: i64,
}

impl Standing {
    /// Share of the spending budget used, in percent (None without one).
    pub fn percent(&self) -> Option<f64> {
        let limit = self.limit_nano.filter(|l| *l > 0)?;
        Some(self.spent_nano as f64 * 100.0 / limit as f64)
    }

    /// Whether a budget is used up (spending or tokens).
    pub fn exhausted(&self) -> bool {
        self.limit_nano.is_some_and(|l| self.spent_nano >= l)
            || self.limit_tokens.is_some_and(|l| self.used_tokens >= l)
    }
}

struct Row {
    user_id: Uuid,
    budget_tokens: Option<i64>,
    budget_usd_micro: Option<i64>,
    budget_period: Option<String>,
    from_default: Option<bool>,
    exempt: Option<bool>,
}

/// Where every user stands (or those in `only`), in one query per period kind.
pub async fn standings(
    conn: &mut PgConnection,
    only: Option<&[Uuid]>,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Standing>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT user_id AS "user_id!", budget_tokens, budget_usd_micro, budget_period,
                  from_default, exempt
           FROM user_budgets WHERE $1::uuid[] IS NULL OR user_id = ANY($1)"#,
        only as Option<&[Uuid]>
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let period = row
            .budget_period
            .as_deref()
            .and_then(Period::parse)
            .unwrap_or_default();
        let (starts, ends) = period.bounds(now);
        out.push(Standing {
            user_id: row.user_id,
            limit_nano: row.budget_usd_micro.map(|m| m.saturating_mul(1000)),
            limit_tokens: row.budget_tokens,
            period,
            from_default: row.from_default.unwrap_or(false),
            exempt: row.exempt.unwrap_or(false),
            starts,
            ends,
            spent_nano: 0,
            compute_nano: 0,
            used_tokens: 0,
        });
    }
    let users: Vec<Uuid> = out.iter().map(|s| s.user_id).collect();
    let starts: Vec<OffsetDateTime> = out.iter().map(|s| s.starts).collect();
    let used = sqlx::query!(
        r#"SELECT q.user_id AS "user_id!", q.quota AS "quota!", sum(q.used)::bigint AS "used!"
           FROM quota_usage q
           JOIN unnest($1::uuid[], $2::timestamptz[]) AS w(user_id, start)
             ON q.user_id = w.user_id AND q.window_start = w.start
           WHERE q.quota IN ('cost', 'compute', 'tokens')
           GROUP BY q.user_id, q.quota"#,
        &users,
        &starts
    )
    .fetch_all(conn)
    .await?;
    let index: std::collections::HashMap<Uuid, usize> =
        users.iter().enumerate().map(|(i, u)| (*u, i)).collect();
    for row in used {
        let Some(s) = index.get(&row.user_id).map(|i| &mut out[*i]) else {
            continue;
        };
        match row.quota.as_str() {
            "cost" => s.spent_nano = row.used,
            "compute" => s.compute_nano = row.used,
            _ => s.used_tokens = row.used,
        }
    }
    Ok(out)
}

/// Where one user stands.
pub async fn standing(
    conn: &mut PgConnection,
    user: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Standing>> {
    Ok(standings(conn, Some(&[user]), now).await?.pop())
}

/// The period of the user's budget (a month when they have none).
pub async fn period_of(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<Period> {
    let period = sqlx::query_scalar!(
        r#"SELECT budget_period AS "period?" FROM user_budgets WHERE user_id = $1"#,
        user
    )
    .fetch_optional(conn)
    .await?
    .flatten();
    Ok(period
        .as_deref()
        .and_then(Period::parse)
        .unwrap_or_default())
}

/// Users whose budget is used up and whose runtime is meant to run.
pub async fn exhausted_running(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<(Standing, String)>> {
    let running =
        sqlx::query!("SELECT user_id, username FROM runtimes WHERE desired_state = 'running'")
            .fetch_all(&mut *conn)
            .await?;
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<Uuid> = running.iter().map(|r| r.user_id).collect();
    let names: std::collections::HashMap<Uuid, String> = running
        .into_iter()
        .map(|r| (r.user_id, r.username))
        .collect();
    Ok(standings(conn, Some(&users), now)
        .await?
        .into_iter()
        .filter(Standing::exhausted)
        .filter_map(|s| names.get(&s.user_id).cloned().map(|n| (s, n)))
        .collect())
}

/// Adds `nano` of runtime time to the user's spending in the period that contains `at`.
pub async fn charge_compute(
    conn: &mut PgConnection,
    user: Uuid,
    period: Period,
    at: OffsetDateTime,
    nano: i64,
) -> sqlx::Result<()> {
    let (start, _) = period.bounds(at);
    for quota in [Quota::Cost, Quota::Compute] {
        sqlx::query!(
            "INSERT INTO quota_usage (user_id, quota, window_start, used) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = quota_usage.used + $4",
            user,
            quota.name(),
            start,
            nano
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Starts the user's current period over: what was spent (and the tokens used) counts no more
/// against the budget; usage records are kept. Returns what was spent before.
pub async fn reset(conn: &mut PgConnection, user: Uuid, now: OffsetDateTime) -> sqlx::Result<i64> {
    let Some(standing) = standing(conn, user, now).await? else {
        return Ok(0);
    };
    sqlx::query!(
        "UPDATE quota_usage SET used = 0
          WHERE user_id = $1 AND window_start = $2 AND quota IN ('cost', 'compute', 'tokens')",
        user,
        standing.starts
    )
    .execute(conn)
    .await?;
    Ok(standing.spent_nano)
}

/// The default spending budget (micro-dollars; None: none) and its period.
pub async fn default_budget(conn: &mut PgConnection) -> sqlx::Result<(Option<i64>, Period)> {
    let row = sqlx::query!("SELECT budget_usd_micro, budget_period FROM budget_default")
        .fetch_optional(conn)
        .await?;
    Ok(row.map_or((None, Period::Month), |r| {
        (
            r.budget_usd_micro,
            Period::parse(&r.budget_period).unwrap_or_default(),
        )
    }))
}

/// Sets the default spending budget for everyone without one of their own.
pub async fn set_default_budget(
    conn: &mut PgConnection,
    usd_micro: Option<i64>,
    period: Period,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO budget_default (id, budget_usd_micro, budget_period) VALUES (true, $1, $2)
         ON CONFLICT (id) DO UPDATE SET budget_usd_micro = $1, budget_period = $2, updated_at = now()",
        usd_micro,
        period.name()
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_start_on_the_day_the_monday_and_the_first() {
        let now = datetime!(2026-12-31 23:59:30 UTC);
        assert_eq!(
            Period::Day.bounds(now),
            (
                datetime!(2026-12-31 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
        );
        // 2026-12-31 is a Thursday.
        assert_eq!(
            Period::Week.bounds(now),
            (
                datetime!(2026-12-28 0:00 UTC),
                datetime!(2027-01-04 0:00 UTC)
            )
        );
        assert_eq!(
            Period::Month.bounds(now),
            (
                datetime!(2026-12-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
        );
        let monday = datetime!(2026-12-07 0:00 UTC);
        assert_eq!(Period::Week.bounds(monday).0, monday);
        assert_eq!(Period::parse("fortnight"), None);
    }

    #[test]
    fn a_standing_is_exhausted_at_its_limit_not_before() {
        let now = datetime!(2026-12-02 12:00 UTC);
        let (starts, ends) = Period::Month.bounds(now);
        let mut s = Standing {
            user_id: Uuid::nil(),
            limit_nano: Some(5_000_000_000),
            limit_tokens: None,
            period: Period::Month,
            from_default: true,
            exempt: false,
            starts,
            ends,
            spent_nano: 4_000_000_000,
            compute_nano: 1_000_000_000,
            used_tokens: 0,
        };
        assert_eq!(s.percent(), Some(80.0));
        assert!(!s.exhausted());
        s.spent_nano = 5_000_000_000;
        assert!(s.exhausted());
        s.limit_nano = None;
        assert!(!s.exhausted());
        assert_eq!(s.percent(), None);
    }
}
