//! The breaker's rules on made-up traffic.

use super::*;
use time::macros::datetime;

fn at(secs: i64) -> OffsetDateTime {
    datetime!(2026-12-05 12:00 UTC) + time::Duration::seconds(secs)
}

fn seen(secs: i64, cost: i64, failed: bool, print: u64) -> Seen {
    Seen {
        at: at(secs),
        cost_nano: cost,
        failed,
        fingerprint: print,
    }
}

#[test]
fn a_burst_of_requests_trips_the_request_rate() {
    let rules = Rules {
        requests_per_minute: Some(10),
        ..Rules::default()
    };
    let mut r = Recent::default();
    for i in 0..10 {
        assert_eq!(
            r.record(&rules, &seen(i * 5, 0, false, i.cast_unsigned())),
            None
        );
    }
    // The 11th within 60 s trips; after a minute's pause the count starts over.
    assert_eq!(
        r.record(&rules, &seen(50, 0, false, 99)),
        Some(Trip::RequestRate { requests: 11 })
    );
    let mut r = Recent::default();
    for i in 0..30 {
        assert_eq!(
            r.record(&rules, &seen(i * 7, 0, false, i.cast_unsigned())),
            None,
            "{i}"
        );
    }
}

#[test]
fn the_same_request_again_and_again_trips_even_with_other_numbers_in_it() {
    let rules = Rules {
        repeats: Some(5),
        repeat_window_secs: 60,
        ..Rules::default()
    };
    let mut r = Recent::default();
    let first = fingerprint("chat", "Retry the build, attempt 1");
    assert_eq!(first, fingerprint("chat", "retry  the build,\nattempt 22"));
    assert_ne!(first, fingerprint("other", "Retry the build, attempt 1"));
    assert_ne!(first, fingerprint("chat", "Write the release notes"));
    for i in 0..4 {
        assert_eq!(r.record(&rules, &seen(i * 10, 0, false, first)), None);
    }
    assert_eq!(
        r.record(&rules, &seen(45, 0, false, first)),
        Some(Trip::Repeats {
            requests: 5,
            window_secs: 60
        })
    );
    // Spread out beyond the window: never five at once.
    let mut r = Recent::default();
    for i in 0..10 {
        assert_eq!(r.record(&rules, &seen(i * 20, 0, false, first)), None);
    }
}

#[test]
fn errors_in_a_tight_loop_trip() {
    let rules = Rules {
        errors: Some(3),
        error_window_secs: 10,
        ..Rules::default()
    };
    let mut r = Recent::default();
    assert_eq!(r.record(&rules, &seen(0, 0, true, 1)), None);
    assert_eq!(r.record(&rules, &seen(1, 0, false, 2)), None);
    assert_eq!(r.record(&rules, &seen(2, 0, true, 3)), None);
    assert_eq!(
        r.record(&rules, &seen(3, 0, true, 4)),
        Some(Trip::Errors {
            errors: 3,
            window_secs: 10
        })
    );
    let words = Trip::Errors {
        errors: 3,
        window_secs: 10,
    }
    .words();
    assert_eq!(words, "3 of its requests failed within 10 seconds");
}

#[test]
fn spending_trips_only_when_sustained_for_whole_minutes() {
    let rules = Rules {
        spend_per_minute_nano: Some(1_000),
        sustained_minutes: 3,
        ..Rules::default()
    };
    let mut r = Recent::default();
    // Minutes 0 and 1 over the rate, minute 2 not: no trip; then three in a row.
    assert_eq!(r.record(&rules, &seen(0, 2_000, false, 1)), None);
    assert_eq!(r.record(&rules, &seen(60, 2_000, false, 2)), None);
    assert_eq!(r.record(&rules, &seen(120, 500, false, 3)), None);
    assert_eq!(r.record(&rules, &seen(180, 2_000, false, 4)), None);
    assert_eq!(r.record(&rules, &seen(240, 2_000, false, 5)), None);
    assert_eq!(
        r.record(&rules, &seen(300, 2_000, false, 6)),
        Some(Trip::SpendRate {
            per_minute_nano: 1_000,
            minutes: 3
        })
    );
    // Switched off: nothing trips.
    let off = Rules {
        enabled: false,
        ..rules
    };
    let mut r = Recent::default();
    for i in 0..10 {
        assert_eq!(r.record(&off, &seen(i * 60, 5_000, true, 7)), None);
    }
}

#[test]
fn a_loop_spread_over_replicas_trips_once_their_seconds_are_shared() {
    let rules = Rules {
        requests_per_minute: Some(10),
        ..Rules::default()
    };
    // Two replicas see six requests each: neither alone is over ten a minute.
    let mut one = Recent::default();
    let mut other = Bucket {
        second: at(0).unix_timestamp(),
        ..Bucket::default()
    };
    for i in 0..6 {
        assert_eq!(
            one.record(&rules, &seen(i, 0, false, i.cast_unsigned())),
            None
        );
        other.add(&seen(0, 0, false, 100 + i.cast_unsigned()));
    }
    let mut shared = one.clone();
    shared.add(&rules, &other);
    assert_eq!(
        shared.judge(&rules),
        Some(Trip::RequestRate { requests: 12 })
    );
    // A bucket from long ago counts for nothing.
    let mut stale = one.clone();
    stale.add(
        &rules,
        &Bucket {
            second: at(-600).unix_timestamp(),
            ..other
        },
    );
    assert_eq!(stale.judge(&rules), None);
    assert_eq!(horizon_secs(&Rules::default()), 300);
}
