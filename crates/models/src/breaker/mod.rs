//! The runaway-agent breaker's rules and the per-user windows they are judged on: spending per
//! minute sustained for some minutes, requests per minute, near-identical requests repeated,
//! errors in a tight loop. Pure bookkeeping (no clock, no I/O): the gateway feeds each finished
//! request in with its time and asks whether a rule trips.

mod trips;
pub use trips::*;

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

/// One second of one user's requests: what replicas share with each other.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    pub second: i64,
    pub requests: u32,
    pub errors: u32,
    pub cost_nano: i64,
    /// The fingerprint of each request.
    pub prints: Vec<u64>,
}

impl Bucket {
    /// Counts a request in.
    pub fn add(&mut self, seen: &Seen) {
        self.requests += 1;
        self.errors += u32::from(seen.failed);
        self.cost_nano = self.cost_nano.saturating_add(seen.cost_nano);
        self.prints.push(seen.fingerprint);
    }
}

/// One user's recent requests.
#[derive(Debug, Default, Clone)]
pub struct Recent {
    /// (unix second, requests, errors) per second, the last ten minutes at most.
    seconds: VecDeque<(i64, u32, u32)>,
    /// (unix minute, spending) per minute.
    minutes: VecDeque<(i64, i64)>,
    /// Times each fingerprint was seen within the repeat window.
    prints: HashMap<u64, VecDeque<i64>>,
    /// The newest second seen.
    latest: i64,
}

impl Recent {
    /// Adds a request and says which rule, if any, it trips.
    pub fn record(&mut self, rules: &Rules, seen: &Seen) -> Option<Trip> {
        let mut bucket = Bucket {
            second: seen.at.unix_timestamp(),
            ..Bucket::default()
        };
        bucket.add(seen);
        self.add(rules, &bucket);
        self.judge(rules)
    }

    /// Adds a second's requests (this replica's or another's, in any order).
    pub fn add(&mut self, rules: &Rules, bucket: &Bucket) {
        let second = bucket.second;
        let minute = second.div_euclid(60);
        match self.seconds.iter_mut().find(|s| s.0 == second) {
            Some((_, requests, errors)) => {
                *requests += bucket.requests;
                *errors += bucket.errors;
            }
            None => {
                let at = self.seconds.partition_point(|s| s.0 < second);
                self.seconds
                    .insert(at, (second, bucket.requests, bucket.errors));
            }
        }
        match self.minutes.iter_mut().find(|m| m.0 == minute) {
            Some((_, spent)) => *spent = spent.saturating_add(bucket.cost_nano),
            None => {
                let at = self.minutes.partition_point(|m| m.0 < minute);
                self.minutes.insert(at, (minute, bucket.cost_nano));
            }
        }
        for print in &bucket.prints {
            self.prints.entry(*print).or_default().push_back(second);
        }
        self.latest = self.latest.max(second);
        self.forget(rules);
    }

    /// Which rule, if any, the requests held now trip.
    pub fn judge(&self, rules: &Rules) -> Option<Trip> {
        if !rules.enabled {
            return None;
        }
        let now = self.latest;
        if let Some(limit) = rules.requests_per_minute {
            let requests = self.sum(now, 60, |(_, r, _)| *r);
            if requests > limit {
                return Some(Trip::RequestRate { requests });
            }
        }
        if let Some(limit) = rules.repeats {
            let window = i64::from(rules.repeat_window_secs.max(1));
            let repeated = self
                .prints
                .values()
                .map(|times| times.iter().filter(|t| **t > now - window).count())
                .max()
                .unwrap_or(0);
            let repeated = u32::try_from(repeated).unwrap_or(u32::MAX);
            if repeated >= limit {
                return Some(Trip::Repeats {
                    requests: repeated,
                    window_secs: rules.repeat_window_secs,
                });
            }
        }
        if let Some(limit) = rules.errors {
            let errors = self.sum(now, i64::from(rules.error_window_secs), |(_, _, e)| *e);
            if errors >= limit {
                return Some(Trip::Errors {
                    errors,
                    window_secs: rules.error_window_secs,
                });
            }
        }
        if let Some(limit) = rules.spend_per_minute_nano {
            let minute = now.div_euclid(60);
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
            .filter(|s| s.0 > now - secs && s.0 <= now)
            .map(part)
            .fold(0, u32::saturating_add)
    }

    /// Drops what no rule looks at any more.
    fn forget(&mut self, rules: &Rules) {
        let now = self.latest;
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
        self.prints.retain(|_, times| {
            times.retain(|t| *t > now - window);
            !times.is_empty()
        });
    }

    /// The newest second seen (0: none).
    pub fn latest(&self) -> i64 {
        self.latest
    }

    /// Nothing recent is held (the user's entry can be dropped).
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty() && self.minutes.is_empty() && self.prints.is_empty()
    }
}

/// How far back any rule looks, in seconds.
pub fn horizon_secs(rules: &Rules) -> i64 {
    i64::from(
        rules
            .error_window_secs
            .max(rules.repeat_window_secs)
            .max(rules.sustained_minutes * 60)
            .max(60),
    )
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
mod tests;
