//! Runtime time with a real runtime container: metered once across control-plane restarts,
//! concurrent meters and crashes; a budget used up by runtime time alone stops the runtime and
//! refuses a start until an admin resets it.

use super::harness::*;
use clawloops_models::budget;
use clawloops_orchestrator::{Action, DesiredState, ObservedState, Orchestrator, UserRef};
use sqlx::PgPool;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// $1 per second for the class the harness's runtimes (64 MiB, 0.5 CPU) belong to.
const DOLLAR_PER_SECOND: i64 = 3_600_000_000;

async fn account(pool: &PgPool, id: Uuid, name: &str) {
    sqlx::query("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .expect("user");
    sqlx::query("UPDATE compute_classes SET price_micro_per_hour = $1 WHERE name = 'small'")
        .bind(DOLLAR_PER_SECOND)
        .execute(pool)
        .await
        .expect("price");
}

/// The user's stretches: (open, run ms up to where charged, charged nano-dollars, ms from start
/// to end or last sighting).
async fn stretches(pool: &PgPool, id: Uuid) -> Vec<(bool, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT ended_at IS NULL,
                (extract(epoch FROM charged_until - started_at) * 1000)::bigint,
                charged_nano,
                (extract(epoch FROM coalesce(ended_at, seen_at) - started_at) * 1000)::bigint
           FROM compute_intervals WHERE user_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("stretches")
}

/// What the reports and the budget hold: (compute_daily run ms, compute_daily cost, the cost
/// window, the compute window).
async fn books(pool: &PgPool, id: Uuid) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(run_ms), 0)::bigint FROM compute_daily WHERE user_id = $1),
                (SELECT coalesce(sum(cost_nano), 0)::bigint FROM compute_daily WHERE user_id = $1),
                (SELECT coalesce(sum(used), 0)::bigint FROM quota_usage WHERE user_id = $1 AND quota = 'cost'),
                (SELECT coalesce(sum(used), 0)::bigint FROM quota_usage WHERE user_id = $1 AND quota = 'compute')",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("books")
}

/// Every charged millisecond is in the reports and the budget exactly once.
async fn assert_books_agree(pool: &PgPool, id: Uuid) -> i64 {
    let charged: i64 = stretches(pool, id).await.iter().map(|s| s.1).sum();
    let nano: i64 = stretches(pool, id).await.iter().map(|s| s.2).sum();
    let (run_ms, cost, window, compute) = books(pool, id).await;
    // Each piece is rounded to the millisecond on its own.
    assert!(
        (run_ms - charged).abs() <= 2,
        "{run_ms} ms reported, {charged} ms charged"
    );
    assert_eq!((cost, window, compute), (nano, nano, nano));
    charged
}

#[sqlx::test(migrations = "../../migrations")]
async fn runtime_time_is_charged_once_across_restarts_concurrent_meters_and_crashes(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("meg");
    account(&pool, id, &name).await;
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    let open = stretches(&pool, id).await;
    assert_eq!(open.len(), 1);
    assert!(open[0].0, "a stretch opens when the runtime runs");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    h.orchestrator.reconcile().await.expect("reconcile");
    let first = h.orchestrator.meter().await.expect("meter");
    assert_eq!(first.metered.stretches, 1);
    assert!(first.metered.run_ms >= 1200, "{first:?}");
    // $1 per second: the cost follows the time.
    assert!((first.metered.cost_nano - first.metered.run_ms * 1_000_000).abs() <= 1_000_000);
    let again = h.orchestrator.meter().await.expect("meter");
    assert_eq!(
        again.metered.run_ms, 0,
        "nothing new was seen: nothing more is charged"
    );
    assert_books_agree(&pool, id).await;

    // The control plane restarts; the runtime ran on meanwhile and is charged from where the
    // meter stopped, by two replicas metering at once.
    let h = h.restarted().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.orchestrator.reconcile().await.expect("reconcile");
    let other = Orchestrator::new(pool.clone(), h.driver.clone(), settings(), &h.instance);
    let (a, b) = tokio::join!(h.orchestrator.meter(), other.meter());
    let (a, b) = (a.expect("meter"), b.expect("meter"));
    assert_eq!(a.metered.stretches + b.metered.stretches, 1, "{a:?} {b:?}");
    let stretch = stretches(&pool, id).await[0];
    assert_eq!(
        stretch.1, stretch.3,
        "charged exactly up to the last sighting"
    );
    let before_crash = assert_books_agree(&pool, id).await;

    // It dies unseen: its stretch ends where it was last seen running, not when found dead.
    let container = h.binding(id).await.container_id.expect("container");
    docker_kill(&container);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = h.orchestrator.reconcile().await.expect("reconcile");
    assert_eq!(report.crashes, 1, "{report:?}");
    let ended = stretches(&pool, id).await[0];
    assert!(!ended.0, "the stretch is closed");
    assert_eq!(ended.3, stretch.3, "closed at the last sighting");
    let after = h.orchestrator.meter().await.expect("meter");
    assert_eq!(after.metered.run_ms, 0, "{after:?}");
    assert_eq!(assert_books_agree(&pool, id).await, before_crash);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_budget_used_up_by_runtime_time_alone_stops_the_runtime_and_refuses_a_start(
    pool: PgPool,
) {
    let h = Harness::new(pool.clone()).await;
    let (id, name) = user("bud");
    account(&pool, id, &name).await;
    sqlx::query("INSERT INTO user_limits (user_id, budget_usd_micro, budget_period) VALUES ($1, 500000, 'week')")
        .bind(id)
        .execute(&pool)
        .await
        .expect("budget");
    h.request((id, &name), Action::Start).await;
    h.drain().await;
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);

    // Half a dollar at a dollar a second: used up after half a second of running.
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.orchestrator.reconcile().await.expect("reconcile");
    let report = h.orchestrator.meter().await.expect("meter");
    assert_eq!(report.stopped, 1, "{report:?}");
    let binding = h.binding(id).await;
    assert_eq!(binding.desired(), DesiredState::Stopped);
    let reason = binding.stop_reason.clone().expect("a stop reason");
    assert!(
        reason.contains("your budget for this week is used up")
            && reason.contains("of $0.50")
            && reason.contains("workspace is kept"),
        "{reason}"
    );
    h.drain().await;
    let binding = h.binding(id).await;
    assert_eq!(binding.observed(), ObservedState::Stopped);
    assert_eq!(h.containers().await.len(), 1, "stopped, not removed");

    let me = UserRef {
        id,
        username: &name,
    };
    let refused = h
        .orchestrator
        .request(me, Action::Start, false, "test")
        .await
        .expect_err("no start on a used-up budget");
    let words = refused.to_string();
    assert!(
        words.starts_with("Your budget for this week is used up") && words.contains("cannot start"),
        "{words}"
    );
    assert_eq!(
        h.binding(id).await.desired(),
        DesiredState::Stopped,
        "nothing changed"
    );

    // An admin resets the period: it starts again, and the meter leaves it running.
    let mut conn = pool.acquire().await.expect("conn");
    let spent = budget::reset(&mut conn, id, OffsetDateTime::now_utc())
        .await
        .expect("reset");
    assert!(spent >= 500_000_000, "{spent}");
    h.orchestrator
        .request(me, Action::Start, false, "test")
        .await
        .expect("start after a reset");
    h.drain().await;
    let report = h.orchestrator.meter().await.expect("meter");
    assert_eq!(report.stopped, 0, "{report:?}");
    assert_eq!(h.binding(id).await.observed(), ObservedState::Running);
    h.cleanup();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_state_change_in_a_transaction_older_than_the_last_charge_still_closes_the_stretch(
    pool: PgPool,
) {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO runtimes (user_id, username, runtime_id, profile, image, gateway_token, observed_state)
         VALUES ($1, 'old', 'rt-old', 'stub', 'img', 't', 'running')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("binding");
    // A transaction begins (its now() is fixed here) …
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query("SELECT now()")
        .execute(&mut *tx)
        .await
        .expect("begin");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // … a meter pass charges up to a later sighting meanwhile …
    sqlx::query(
        "UPDATE compute_intervals SET seen_at = clock_timestamp(), charged_until = clock_timestamp()
          WHERE user_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("charged");
    // … and the old transaction records the stop: the stretch ends after what was charged.
    sqlx::query("UPDATE runtimes SET observed_state = 'stopped' WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("the stop is recorded");
    tx.commit().await.expect("commit");
    let (closed, after): (bool, bool) = sqlx::query_as(
        "SELECT ended_at IS NOT NULL, ended_at >= charged_until FROM compute_intervals WHERE user_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("stretch");
    assert!(closed && after);
}
