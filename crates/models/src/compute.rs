//! Runtime time: the size classes admins price per hour, and the meter that charges each
//! stretch a runtime ran. Stretches (`compute_intervals`) open and close with the runtime's
//! observed state in the same transaction (a trigger), so a crash of the control plane loses
//! none; the meter charges each from where it was charged to (`charged_until`) up to the last
//! time the engine was seen running it (or its end), moving `charged_until` in the same
//! transaction, so nothing is charged twice whichever replica charges.

use crate::budget;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime, Time};
use uuid::Uuid;

/// A size class and its price.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeClass {
    pub name: String,
    pub memory_mb: i32,
    pub cpus: f64,
    /// Micro-dollars per hour of running time.
    pub price_micro_per_hour: i64,
}

/// Every class, smallest first.
pub async fn classes(conn: &mut PgConnection) -> sqlx::Result<Vec<SizeClass>> {
    sqlx::query_as!(
        SizeClass,
        "SELECT name, memory_mb, cpus, price_micro_per_hour FROM compute_classes
         ORDER BY memory_mb, cpus, name"
    )
    .fetch_all(conn)
    .await
}

/// Adds or changes a class.
pub async fn save_class(conn: &mut PgConnection, class: &SizeClass) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO compute_classes (name, memory_mb, cpus, price_micro_per_hour) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET memory_mb = $2, cpus = $3, price_micro_per_hour = $4, updated_at = now()",
        class.name,
        class.memory_mb,
        class.cpus,
        class.price_micro_per_hour
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a class (false: there was none by that name).
pub async fn delete_class(conn: &mut PgConnection, name: &str) -> sqlx::Result<bool> {
    Ok(
        sqlx::query!("DELETE FROM compute_classes WHERE name = $1", name)
            .execute(conn)
            .await?
            .rows_affected()
            > 0,
    )
}

/// The class a runtime with these limits belongs to: the smallest that covers both, else the
/// largest (None when there are no classes: runtime time is then free).
pub fn class_for(classes: &[SizeClass], memory_mb: i32, cpus: f64) -> Option<&SizeClass> {
    classes
        .iter()
        .find(|c| c.memory_mb >= memory_mb && c.cpus + 1e-9 >= cpus)
        .or_else(|| classes.last())
}

/// What `ms` milliseconds cost at `price_micro_per_hour` (nano-dollars, rounded down).
pub fn cost_nano(ms: i64, price_micro_per_hour: i64) -> i64 {
    // micro/h × 1000 nano/micro ÷ 3 600 000 ms/h = micro/h ÷ 3600 per ms.
    i64::try_from(i128::from(ms) * i128::from(price_micro_per_hour) / 3600).unwrap_or(i64::MAX)
}

/// `from..to` cut at UTC midnights, so each piece belongs to one day (and one budget period).
pub fn split_by_day(
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let midnight = at.replace_time(Time::MIDNIGHT) + Duration::days(1);
        let end = midnight.min(to);
        out.push((at, end));
        at = end;
    }
    out
}

/// Notes that the engine runs these users' runtimes now (the meter charges up to here).
pub async fn seen_running(conn: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<u64> {
    if users.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query!(
        "UPDATE compute_intervals SET seen_at = greatest(seen_at, now())
          WHERE ended_at IS NULL AND user_id = ANY($1)",
        users
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Ends the user's open stretch where the engine was last seen running it: for a runtime found
/// gone, whose end nobody saw. Call before recording the runtime as not running.
pub async fn end_at_last_seen(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE compute_intervals SET ended_at = seen_at WHERE user_id = $1 AND ended_at IS NULL",
        user
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What one meter pass charged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Metered {
    pub stretches: usize,
    pub run_ms: i64,
    pub cost_nano: i64,
}

/// Charges every stretch with time not yet charged; `defaults` are the installation's limits
/// for bindings without their own (memory MiB, CPUs). One transaction per stretch.
pub async fn charge(pool: &sqlx::PgPool, defaults: (i32, f64)) -> Result<Metered, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let due: Vec<i64> = sqlx::query_scalar!(
        "SELECT id FROM compute_intervals
          WHERE (ended_at IS NULL AND seen_at > charged_until) OR charged_until < ended_at
          ORDER BY id"
    )
    .fetch_all(&mut *conn)
    .await?;
    if due.is_empty() {
        return Ok(Metered::default());
    }
    let classes = classes(&mut conn).await?;
    let mut metered = Metered::default();
    for id in due {
        let (ms, nano) = charge_one(pool, id, &classes, defaults).await?;
        if ms > 0 {
            metered.stretches += 1;
            metered.run_ms += ms;
            metered.cost_nano += nano;
        }
    }
    Ok(metered)
}

async fn charge_one(
    pool: &sqlx::PgPool,
    id: i64,
    classes: &[SizeClass],
    defaults: (i32, f64),
) -> Result<(i64, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query!(
        "SELECT user_id, memory_mb, cpus, seen_at, ended_at, charged_until
           FROM compute_intervals WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok((0, 0));
    };
    let until = row.ended_at.unwrap_or(row.seen_at);
    if until <= row.charged_until {
        return Ok((0, 0));
    }
    let memory = row.memory_mb.unwrap_or(defaults.0);
    let cpus = row.cpus.unwrap_or(defaults.1);
    let (name, price) = class_for(classes, memory, cpus).map_or(("unpriced", 0), |c| {
        (c.name.as_str(), c.price_micro_per_hour)
    });
    let period = budget::period_of(&mut tx, row.user_id).await?;
    let (mut run_ms, mut total) = (0, 0);
    for (from, to) in split_by_day(row.charged_until, until) {
        let ms = i64::try_from((to - from).whole_milliseconds()).unwrap_or(i64::MAX);
        let nano = cost_nano(ms, price);
        sqlx::query!(
            "INSERT INTO compute_daily (day, user_id, size_class, run_ms, cost_nano) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (day, user_id, size_class)
             DO UPDATE SET run_ms = compute_daily.run_ms + $4, cost_nano = compute_daily.cost_nano + $5",
            from.date(),
            row.user_id,
            name,
            ms,
            nano
        )
        .execute(&mut *tx)
        .await?;
        if nano > 0 {
            budget::charge_compute(&mut tx, row.user_id, period, from, nano).await?;
        }
        run_ms += ms;
        total += nano;
    }
    sqlx::query!(
        "UPDATE compute_intervals SET charged_until = $2, charged_nano = charged_nano + $3 WHERE id = $1",
        id,
        until,
        total
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((run_ms, total))
}

/// Runtime time per day (and class), for one user or (None) everyone.
#[derive(Debug, Clone)]
pub struct ComputeDay {
    pub day: time::Date,
    pub user_id: Uuid,
    /// The user's name (their id once the account is deleted).
    pub username: String,
    pub size_class: String,
    pub run_ms: i64,
    pub cost_nano: i64,
}

/// From `from` to `to` (inclusive).
pub async fn days(
    conn: &mut PgConnection,
    from: time::Date,
    to: time::Date,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<ComputeDay>> {
    sqlx::query_as!(
        ComputeDay,
        r#"SELECT c.day, c.user_id, coalesce(u.username, c.user_id::text) AS "username!",
                  c.size_class, c.run_ms, c.cost_nano
           FROM compute_daily c LEFT JOIN users u ON u.id = c.user_id
           WHERE c.day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR c.user_id = $3)
           ORDER BY c.day, 3, c.size_class"#,
        from,
        to,
        user
    )
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn class(name: &str, memory_mb: i32, cpus: f64, price: i64) -> SizeClass {
        SizeClass {
            name: name.into(),
            memory_mb,
            cpus,
            price_micro_per_hour: price,
        }
    }

    #[test]
    fn a_runtime_belongs_to_the_smallest_class_that_covers_it() {
        let all = [
            class("small", 2048, 1.0, 10_000),
            class("medium", 8192, 4.0, 40_000),
            class("large", 32768, 16.0, 160_000),
        ];
        assert_eq!(class_for(&all, 512, 0.5).map(|c| &*c.name), Some("small"));
        assert_eq!(class_for(&all, 2048, 1.0).map(|c| &*c.name), Some("small"));
        assert_eq!(class_for(&all, 1024, 2.0).map(|c| &*c.name), Some("medium"));
        assert_eq!(class_for(&all, 65536, 1.0).map(|c| &*c.name), Some("large"));
        assert_eq!(class_for(&[], 64, 0.1), None);
    }

    #[test]
    fn time_is_priced_per_hour_and_cut_at_midnight() {
        // One hour at $0.036 per hour.
        assert_eq!(cost_nano(3_600_000, 36_000), 36_000_000);
        assert_eq!(cost_nano(1000, 36_000), 10_000);
        assert_eq!(cost_nano(0, 36_000), 0);
        assert_eq!(cost_nano(i64::MAX, i64::MAX), i64::MAX, "saturates");
        let pieces = split_by_day(
            datetime!(2026-12-31 23:30 UTC),
            datetime!(2027-01-02 00:10 UTC),
        );
        assert_eq!(
            pieces,
            vec![
                (
                    datetime!(2026-12-31 23:30 UTC),
                    datetime!(2027-01-01 0:00 UTC)
                ),
                (
                    datetime!(2027-01-01 0:00 UTC),
                    datetime!(2027-01-02 0:00 UTC)
                ),
                (
                    datetime!(2027-01-02 0:00 UTC),
                    datetime!(2027-01-02 0:10 UTC)
                ),
            ]
        );
        assert!(
            split_by_day(
                datetime!(2026-12-31 1:00 UTC),
                datetime!(2026-12-31 1:00 UTC)
            )
            .is_empty()
        );
    }
}
