//! The runaway-agent breaker's rules and the per-user windows they are judged on: spending per
//! minute sustained for some minutes, requests per minute, near-identical requests repeated,
//! errors in a tight loop. Pure bookkeeping (no clock, no I/O): the gateway feeds each finished
//! request in with its time and asks whether a rule trips.

use std::collections::{HashMap, VecDeque};
use time::OffsetDateTime;

/// What an admin tunes. `None` turns a rule off.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub enabled: bool,
    /// Spending (nano-dollars) per minute that, held for `sustained_minutes` minutes in a row,
    /// trips.
    pub spend_per_minute_nano: Option<i64>,
    pub sustained_minutes: u32,
    /// Requests within any 60 seconds.
    pub requests_per_minute: Option<u32>,
    /// Near-identical requests within `repeat_window_secs`.
    pub repeats: Option<u32>,
    pub repeat_window_secs: u32,
    /// Failed requests within `error_window_secs`.
    pub errors: Option<u32>,
    pub error_window_secs: u32,
    /// How long after a trip its owner may resume (an admin may at once).
    pub cooldown_minutes: u32,
    /// Personal keys count too (runtime keys always do).
    pub include_personal_keys: bool,
}

impl Default for Rules {
    /// Far above what a person or a working agent does, well below a loop: $0.50 a minute for
    /// 5 minutes, 120 requests a minute, 20 identical requests in 2 minutes, 30 errors a minute.
    fn default() -> Self {
        Rules {
            enabled: true,
            spend_per_minute_nano: Some(500_000_000),
            sustained_minutes: 5,
            requests_per_minute: Some(120),
            repeats: Some(20),
            repeat_window_secs: 120,
            errors: Some(30),
            error_window_secs: 60,
            cooldown_minutes: 10,
            include_personal_keys: false,
        }
    }
}

/// Which rule tripped, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trip {
    SpendRate { per_minute_nano: i64, minutes: u32 },
    RequestRate { requests: u32 },
    Repeats { requests: u32, window_secs: u32 },
    Errors { errors: u32, window_secs: u32 },
}

impl Trip {
    /// Stable name, as stored.
    pub fn code(&self) -> &'static str {
        match self {
            Trip::SpendRate { .. } => "spend_rate",
            Trip::RequestRate { .. } => "request_rate",
            Trip::Repeats { .. } => "repeats",
            Trip::Errors { .. } => "errors",
        }
    }

    /// In words, for the owner and admins.
    pub fn words(&self) -> String {
        match self {
            Trip::SpendRate {
                per_minute_nano,
                minutes,
            } => format!(
                "it spent more than ${:.2} a minute for {minutes} minutes in a row",
                *per_minute_nano as f64 / 1e9
            ),
            Trip::RequestRate { requests } => {
                format!("it sent {requests} model requests within a minute")
            }
            Trip::Repeats {
                requests,
                window_secs,
            } => format!(
                "it sent the same request {requests} times within {}",
                seconds_words(*window_secs)
            ),
            Trip::Errors {
                errors,
                window_secs,
            } => format!(
                "{errors} of its requests failed within {}",
                seconds_words(*window_secs)
            ),
        }
    }
}

fn seconds_words(secs: u32) -> String {
    match secs {
        s if s % 60 == 0 && s >= 120 => format!("{} minutes", s / 60),
        60 => "a minute".into(),
        s => format!("{s} seconds"),
    }
}

/// One finished request, as the breaker sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub at: OffsetDateTime,
    pub cost_nano: i64,
    pub failed: bool,
    /// The request's near-identity ([`fingerprint`]).
    pub fingerprint: u64,
}

/// One user's recent requests.
#[derive(Debug, Default)]
pub struct Recent {
    /// (unix second, requests, errors) per second, the last ten minutes at most.
    seconds: VecDeque<(i64, u32, u32)>,
    /// (unix minute, spending) per minute.
    minutes: VecDeque<(i64, i64)>,
    /// Times each fingerprint was seen within the repeat window.
    prints: HashMap<u64, VecDeque<i64>>,
}

impl Recent {
    /// Adds a request and says which rule, if any, it trips.
    pub fn record(&mut self, rules: &Rules, seen: Seen) -> Option<Trip> {
        let second = seen.at.unix_timestamp();
        let minute = second.div_euclid(60);
        match self.seconds.back_mut() {
            Some((s, requests, errors)) if *s == second => {
                *requests += 1;
                *errors += u32::from(seen.failed);
            }
            _ => self.seconds.push_back((second, 1, u32::from(seen.failed))),
        }
        match self.minutes.back_mut() {
            Some((m, spent)) if *m == minute => *spent = spent.saturating_add(seen.cost_nano),
            _ => self.minutes.push_back((minute, seen.cost_nano)),
        }
        let window = i64::from(rules.repeat_window_secs.max(1));
        let times = self.prints.entry(seen.fingerprint).or_default();
        times.push_back(second);
        while times.front().is_some_and(|t| *t <= second - window) {
            times.pop_front();
        }
        let repeated = u32::try_from(times.len()).unwrap_or(u32::MAX);
        self.forget(rules, second);
        if !rules.enabled {
            return None;
        }
        if let Some(limit) = rules.requests_per_minute {
            let requests = self.sum(second, 60, |(_, r, _)| *r);
            if requests > limit {
                return Some(Trip::RequestRate { requests });
            }
        }
        if let Some(limit) = rules.repeats
            && repeated >= limit
        {
            return Some(Trip::Repeats {
                requests: repeated,
                window_secs: rules.repeat_window_secs,
            });
        }
        if let Some(limit) = rules.errors {
            let errors = self.sum(second, i64::from(rules.error_window_secs), |(_, _, e)| *e);
            if errors >= limit {
                return Some(Trip::Errors {
                    errors,
                    window_secs: rules.error_window_secs,
                });
            }
        }
        if let Some(limit) = rules.spend_per_minute_nano {
            let needed = i64::from(rules.sustained_minutes.max(1));
            // The last `needed` whole minutes, this one included, each over the rate.
            let over = (0..needed).all(|back| {
                self.minutes
                    .iter()
                    .find(|(m, _)| *m == minute - back)
                    .is_some_and(|(_, spent)| *spent > limit)
            });
            if over {
                return Some(Trip::SpendRate {
                    per_minute_nano: limit,
                    minutes: rules.sustained_minutes.max(1),
                });
            }
        }
        None
    }

    fn sum(&self, now: i64, secs: i64, part: impl Fn(&(i64, u32, u32)) -> u32) -> u32 {
        self.seconds
            .iter()
            .filter(|s| s.0 > now - secs)
            .map(part)
            .fold(0, u32::saturating_add)
    }

    /// Drops what no rule looks at any more.
    fn forget(&mut self, rules: &Rules, now: i64) {
        let keep_secs = i64::from(rules.error_window_secs.max(60));
        while self.seconds.front().is_some_and(|s| s.0 <= now - keep_secs) {
            self.seconds.pop_front();
        }
        let keep_minutes = i64::from(rules.sustained_minutes.max(1));
        let minute = now.div_euclid(60);
        while self
            .minutes
            .front()
            .is_some_and(|m| m.0 <= minute - keep_minutes)
        {
            self.minutes.pop_front();
        }
        let window = i64::from(rules.repeat_window_secs.max(1));
        self.prints
            .retain(|_, times| times.back().is_some_and(|t| *t > now - window));
    }

    /// Nothing recent is held (the user's entry can be dropped).
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty() && self.minutes.is_empty() && self.prints.is_empty()
    }
}

/// A request's near-identity: its model and what it asks, with case, runs of whitespace and
/// digits (timestamps, counters, ids) not telling requests apart.
pub fn fingerprint(model: &str, text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut normal = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !normal.is_empty() {
            normal.push(' ');
        }
        space = false;
        if c.is_ascii_digit() {
            if !normal.ends_with('#') {
                normal.push('#');
            }
        } else {
            normal.extend(c.to_lowercase());
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    model.hash(&mut hasher);
    normal.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
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
            assert_eq!(r.record(&rules, seen(i * 5, 0, false, i.cast_unsigned())), None);
        }
        // The 11th within 60 s trips; after a minute's pause the count starts over.
        assert_eq!(
            r.record(&rules, seen(50, 0, false, 99)),
            Some(Trip::RequestRate { requests: 11 })
        );
        let mut r = Recent::default();
        for i in 0..30 {
            assert_eq!(
                r.record(&rules, seen(i * 7, 0, false, i.cast_unsigned())),
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
            assert_eq!(r.record(&rules, seen(i * 10, 0, false, first)), None);
        }
        assert_eq!(
            r.record(&rules, seen(45, 0, false, first)),
            Some(Trip::Repeats {
                requests: 5,
                window_secs: 60
            })
        );
        // Spread out beyond the window: never five at once.
        let mut r = Recent::default();
        for i in 0..10 {
            assert_eq!(r.record(&rules, seen(i * 20, 0, false, first)), None);
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
        assert_eq!(r.record(&rules, seen(0, 0, true, 1)), None);
        assert_eq!(r.record(&rules, seen(1, 0, false, 2)), None);
        assert_eq!(r.record(&rules, seen(2, 0, true, 3)), None);
        assert_eq!(
            r.record(&rules, seen(3, 0, true, 4)),
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
        assert_eq!(r.record(&rules, seen(0, 2_000, false, 1)), None);
        assert_eq!(r.record(&rules, seen(60, 2_000, false, 2)), None);
        assert_eq!(r.record(&rules, seen(120, 500, false, 3)), None);
        assert_eq!(r.record(&rules, seen(180, 2_000, false, 4)), None);
        assert_eq!(r.record(&rules, seen(240, 2_000, false, 5)), None);
        assert_eq!(
            r.record(&rules, seen(300, 2_000, false, 6)),
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
            assert_eq!(r.record(&off, seen(i * 60, 5_000, true, 7)), None);
        }
    }
}
