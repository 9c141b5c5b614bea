//! Limits by reservation. Before a request is forwarded its worst case is reserved in every
//! quota the user has (requests and tokens per minute, tokens and cost per day or month); when it
//! ends the reservation is settled to what it really used.
//!
//! The truth is in PostgreSQL, so several replicas share one limit: `quota_usage` holds what was
//! settled in a window and `quota_leases` what each replica holds reserved. A replica takes a
//! lease (a slice of what is left) under a row lock, serves reservations from it in memory, and
//! moves settled use from its lease to `quota_usage` every second. The sum of settled use and all
//! leases never exceeds the limit, so concurrent requests on any number of replicas overshoot it
//! only when a request uses more than it reserved. Use can also arrive from elsewhere (the meter
//! charges runtime time into the spending window, an admin lowers a limit): each flush trims a
//! busy replica's lease to the room left, so such use takes effect within a second.

use super::catalog::Limits;
use clawloops_models::budget::Period;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

pub use clawloops_models::quota::Quota;
use clawloops_models::quota::{self as store, Window};
pub use clawloops_wire::Amount;

/// Why a request was refused, and when trying again makes sense.
#[derive(Debug, Clone)]
pub struct Denied {
    pub quota: Quota,
    pub limit: i64,
    pub retry_after: u64,
}

/// Where a window starts and how long until it ends.
fn window(quota: Quota, period: Period, now: OffsetDateTime) -> (OffsetDateTime, u64) {
    let (start, end) = match quota {
        Quota::Rpm | Quota::Tpm => {
            let start = now
                .replace_second(0)
                .and_then(|t| t.replace_nanosecond(0))
                .unwrap_or(now);
            (start, start + time::Duration::minutes(1))
        }
        Quota::Tokens | Quota::Cost | Quota::Compute => period.bounds(now),
    };
    let left = (end - now).whole_seconds().max(1);
    (start, u64::try_from(left).unwrap_or(1))
}

type SlotKey = (Uuid, Quota, i64);

/// One quota window's state on this replica.
#[derive(Default)]
struct SlotState {
    /// Granted to this replica in PostgreSQL (the lease row's amount).
    lease: i64,
    /// Reserved by requests in flight.
    reserved: i64,
    /// Settled but not yet moved to `quota_usage`.
    settled: i64,
    last_used: Option<Instant>,
    /// Dropped from the map: a request that still holds it looks the window up again.
    retired: bool,
    /// The window's limit when last reserved against.
    limit: i64,
}

impl SlotState {
    fn free(&self) -> i64 {
        self.lease
            .saturating_sub(self.reserved)
            .saturating_sub(self.settled)
    }
}

struct Slot {
    window_start: OffsetDateTime,
    state: Mutex<SlotState>,
    /// Serialises taking leases (one database round trip at a time per window).
    acquiring: tokio::sync::Mutex<()>,
}

/// The quotas of every user on this replica.
pub struct Quotas {
    pool: sqlx::PgPool,
    replica: Uuid,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    /// One flush at a time; held by a shutdown so that no flush is cut off mid-write.
    flushing: tokio::sync::Mutex<()>,
}

/// What one request holds; settle it (or drop it: the reservation is then returned).
pub struct Reservation {
    held: Vec<(Arc<Slot>, Quota, i64)>,
}

impl Reservation {
    /// No quota applies.
    pub fn none() -> Self {
        Reservation { held: Vec::new() }
    }

    /// Settles every quota to the request's real use.
    pub fn settle(mut self, used: Amount) {
        for (slot, quota, reserved) in self.held.drain(..) {
            let actual = match quota {
                Quota::Rpm => 1,
                Quota::Tpm | Quota::Tokens => used.tokens,
                Quota::Cost | Quota::Compute => used.cost_nano,
            };
            let mut s = lock(&slot.state);
            s.reserved -= reserved;
            s.settled = s.settled.saturating_add(actual.max(0));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (slot, _, reserved) in self.held.drain(..) {
            lock(&slot.state).reserved -= reserved;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Quotas {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Quotas {
            pool,
            replica: Uuid::new_v4(),
            slots: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Reserves `worst` in every quota `limits` sets, or refuses with the first one that has no
    /// room (nothing stays reserved then).
    pub async fn reserve(
        &self,
        user: Uuid,
        limits: &Limits,
        worst: Amount,
    ) -> Result<Reservation, QuotaError> {
        if worst.tokens < 0 || worst.cost_nano < 0 {
            return Err(QuotaError::Negative);
        }
        let mut reservation = Reservation::none();
        if !limits.any() {
            return Ok(reservation);
        }
        let now = OffsetDateTime::now_utc();
        let wanted = [
            (Quota::Rpm, limits.rpm, 1),
            (Quota::Tpm, limits.tpm, worst.tokens),
            (Quota::Tokens, limits.budget_tokens, worst.tokens),
            (Quota::Cost, limits.budget_cost_nano, worst.cost_nano),
        ];
        for (quota, limit, amount) in wanted {
            let Some(limit) = limit else { continue };
            let (start, retry_after) = window(quota, limits.period, now);
            // A request larger than the whole limit can never run: say so rather than wait.
            let taken = if amount > limit {
                None
            } else {
                self.take(user, quota, start, limit, amount).await?
            };
            let Some(slot) = taken else {
                return Err(QuotaError::Denied(Denied {
                    quota,
                    limit,
                    retry_after,
                }));
            };
            reservation.held.push((slot, quota, amount));
        }
        Ok(reservation)
    }

    fn slot(&self, user: Uuid, quota: Quota, start: OffsetDateTime) -> Arc<Slot> {
        let key = (user, quota, start.unix_timestamp());
        lock(&self.slots)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    window_start: start,
                    state: Mutex::new(SlotState::default()),
                    acquiring: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Reserves `amount` in the window, taking a larger lease from PostgreSQL when needed.
    async fn take(
        &self,
        user: Uuid,
        quota: Quota,
        start: OffsetDateTime,
        limit: i64,
        amount: i64,
    ) -> Result<Option<Arc<Slot>>, sqlx::Error> {
        enum Local {
            Done,
            Need(i64),
            Retired,
        }
        let try_local = |slot: &Slot| {
            let mut s = lock(&slot.state);
            if s.retired {
                return Local::Retired;
            }
            s.last_used = Some(Instant::now());
            s.limit = limit;
            if s.free() >= amount {
                s.reserved = s.reserved.saturating_add(amount);
                Local::Done
            } else {
                Local::Need(amount.saturating_sub(s.free()))
            }
        };
        loop {
            let slot = self.slot(user, quota, start);
            match try_local(&slot) {
                Local::Done => return Ok(Some(slot)),
                Local::Retired => continue,
                Local::Need(_) => {}
            }
            let serial = slot.clone();
            let _one_at_a_time = serial.acquiring.lock().await;
            let need = match try_local(&slot) {
                Local::Done => return Ok(Some(slot)),
                Local::Retired => continue,
                Local::Need(need) => need,
            };
            // A slice of the limit, so that a busy user does not go to the database per
            // request and other replicas still find room.
            let chunk = (limit / 16).max(need);
            let granted = self.lease(user, quota, start, limit, need, chunk).await?;
            if granted == 0 {
                return Ok(None);
            }
            let mut state = lock(&slot.state);
            state.lease = state.lease.saturating_add(granted);
            drop(state);
            if let Local::Done = try_local(&slot) {
                return Ok(Some(slot));
            }
        }
    }

    /// Grants this replica up to `chunk` more (at least `need`, or nothing) of the window.
    async fn lease(
        &self,
        user: Uuid,
        quota: Quota,
        start: OffsetDateTime,
        limit: i64,
        need: i64,
        chunk: i64,
    ) -> Result<i64, sqlx::Error> {
        let window = Window { user, quota, start };
        store::lease(&self.pool, self.replica, window, limit, need, chunk).await
    }

    /// Moves settled use into `quota_usage`, returns idle leases, renews this replica's leases
    /// and reclaims those of replicas that stopped.
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let _one_flush = self.flushing.lock().await;
        self.flush_now().await
    }

    async fn flush_now(&self) -> Result<(), sqlx::Error> {
        let slots: Vec<(SlotKey, Arc<Slot>)> = lock(&self.slots)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let now = OffsetDateTime::now_utc();
        for ((user, quota, _), slot) in slots {
            // No lease is taken for this window while its use is written.
            let _one_at_a_time = slot.acquiring.lock().await;
            let (settled, lease_before, lease_after, idle, cap) = {
                let mut s = lock(&slot.state);
                let idle = s.reserved == 0
                    && s.last_used
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
                // Taken out only once written (below): a failed write keeps it for the next.
                let settled = s.settled;
                let before = s.lease;
                // An idle window gives back what it holds; a busy one keeps what is not used.
                s.lease = if idle { 0 } else { (s.lease - settled).max(0) };
                // Budgets also fill from elsewhere (runtime time, a lower limit): a lease kept
                // is checked against the window's room, keeping what requests in flight hold.
                let cap =
                    matches!(quota, Quota::Tokens | Quota::Cost).then_some((s.limit, s.reserved));
                (settled, before, s.lease, idle, cap)
            };
            if settled > 0 || lease_after != lease_before || (cap.is_some() && lease_after > 0) {
                let window = Window {
                    user,
                    quota,
                    start: slot.window_start,
                };
                let held =
                    store::write_back(&self.pool, self.replica, window, settled, lease_after, cap)
                        .await?;
                let mut s = lock(&slot.state);
                s.settled -= settled;
                s.lease = s.lease.min(held);
            }
            let ended = match quota {
                Quota::Rpm | Quota::Tpm => now - slot.window_start > time::Duration::minutes(2),
                _ => false,
            };
            if idle || ended {
                let mut slots = lock(&self.slots);
                let mut s = lock(&slot.state);
                if s.reserved == 0 && s.settled == 0 && s.lease == 0 {
                    s.retired = true;
                    slots.retain(|_, v| !Arc::ptr_eq(v, &slot));
                }
            }
        }
        store::renew(&self.pool, self.replica).await
    }

    /// At shutdown: waits for a flush under way, calls `stop` (which stops the periodic flush
    /// while it waits for its turn, never mid-write), then writes settled use and gives back
    /// every lease this replica holds.
    pub async fn release_all(&self, stop: impl FnOnce()) -> Result<(), sqlx::Error> {
        let _one_flush = self.flushing.lock().await;
        stop();
        self.flush_now().await?;
        store::release(&self.pool, self.replica).await
    }

    /// Flushes every second until the process ends.
    pub async fn flush_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "could not write quota use");
            }
        }
    }
}

/// A refusal, or the database failing.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("over a limit")]
    Denied(Denied),
    /// A negative amount (a caller's arithmetic error): nothing is reserved for it.
    #[error("a negative amount cannot be reserved")]
    Negative,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_start_and_end_where_expected() {
        let now = datetime!(2026-12-31 23:59:30 UTC);
        assert_eq!(
            window(Quota::Rpm, Period::Month, now),
            (datetime!(2026-12-31 23:59:00 UTC), 30)
        );
        assert_eq!(
            window(Quota::Tokens, Period::Day, now),
            (datetime!(2026-12-31 00:00:00 UTC), 30)
        );
        assert_eq!(
            window(Quota::Cost, Period::Month, now),
            (datetime!(2026-12-01 00:00:00 UTC), 30)
        );
        let mid = datetime!(2026-02-10 12:00:00 UTC);
        assert_eq!(
            window(Quota::Tokens, Period::Month, mid).1,
            18 * 86400 + 12 * 3600
        );
        // 2026-02-10 is a Tuesday: the week ends on Monday the 16th.
        assert_eq!(
            window(Quota::Cost, Period::Week, mid).1,
            5 * 86400 + 12 * 3600
        );
    }
}
