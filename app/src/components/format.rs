//! Turning values into words for people. Pure functions, the same on server and browser so
//! hydration sees identical text.

use time::{Duration, OffsetDateTime, macros::format_description};

/// `2026-11-25 14:03:09 UTC`.
pub fn utc(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// `14:03:09 UTC`.
pub fn utc_time(at: OffsetDateTime) -> String {
    let format = format_description!("[hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// A duration in the largest two units that matter: `45 s`, `3 min 20 s`, `2 h 5 min`, `4 d 1 h`.
pub fn duration(span: Duration) -> String {
    let secs = span.whole_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A latency in milliseconds with a sensible precision.
pub fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_utc_timestamps() {
        let at = datetime!(2026-11-25 14:03:09 +02:00);
        assert_eq!(utc(at), "2026-11-25 12:03:09 UTC");
        assert_eq!(utc_time(at), "12:03:09 UTC");
    }

    #[test]
    fn formats_durations_in_two_units() {
        assert_eq!(duration(Duration::seconds(45)), "45 s");
        assert_eq!(duration(Duration::seconds(200)), "3 min 20 s");
        assert_eq!(
            duration(Duration::seconds(2 * 3600 + 5 * 60 + 7)),
            "2 h 5 min"
        );
        assert_eq!(duration(Duration::seconds(4 * 86_400 + 3600)), "4 d 1 h");
        assert_eq!(duration(Duration::seconds(-5)), "0 s");
    }

    #[test]
    fn formats_latencies() {
        assert_eq!(millis(1.234), "1.2 ms");
        assert_eq!(millis(42.6), "43 ms");
    }
}
