//! Event times. SmartLead names the time differently per event type and
//! spells it as RFC 3339, as `YYYY-MM-DD HH:MM:SS`, or as epoch seconds or
//! milliseconds. All of them become one canonical UTC form with millisecond
//! precision and a fixed width, so that two deliveries of one event agree and
//! string comparison in DynamoDB orders times correctly.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(DateTime<Utc>);

impl EventTime {
    pub fn from_millis(ms: i64) -> Option<EventTime> {
        Utc.timestamp_millis_opt(ms).single().map(EventTime)
    }

    pub fn now() -> EventTime {
        EventTime(Utc::now())
    }

    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn seconds(&self) -> i64 {
        self.0.timestamp()
    }

    /// Parses a JSON value as a time; `None` when it is not one.
    pub fn from_value(v: &Value) -> Option<EventTime> {
        match v {
            Value::String(s) => EventTime::parse(s),
            Value::Number(n) => match n.as_i64() {
                Some(i) => EventTime::from_epoch(i),
                // Fractional epoch seconds (`1736937000.25`).
                None => n
                    .as_f64()
                    .filter(|f| f.is_finite() && *f > 0.0 && *f < 1e11)
                    .and_then(|f| EventTime::from_millis((f * 1000.0).round() as i64)),
            },
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<EventTime> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(EventTime(t.with_timezone(&Utc)));
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(EventTime(t.and_utc()));
            }
        }
        if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
            return Some(EventTime(t.with_timezone(&Utc)));
        }
        s.parse::<i64>().ok().and_then(EventTime::from_epoch)
    }

    /// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart
    /// by size: each unit's values up to the year 5138 stay below the next
    /// unit's values from 1973 on (10^11 s, 10^14 ms, 10^17 µs).
    fn from_epoch(n: i64) -> Option<EventTime> {
        match n {
            ..=0 => None,
            1..=99_999_999_999 => EventTime::from_millis(n.checked_mul(1000)?),
            100_000_000_000..=99_999_999_999_999 => EventTime::from_millis(n),
            100_000_000_000_000..=99_999_999_999_999_999 => EventTime::from_millis(n / 1000),
            _ => EventTime::from_millis(n / 1_000_000),
        }
    }

    /// This time if it lies within `window` of `received`, else `received`
    /// (a far-future time would freeze every "latest" field for good, an
    /// ancient one every "earliest"). The second value says it was clamped.
    pub fn within(self, received: EventTime, window: &TimeWindow) -> (EventTime, bool) {
        let span =
            |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        // Past either end of chrono's range, that end is unbounded.
        let too_old = received
            .0
            .checked_sub_signed(span(window.max_past))
            .is_some_and(|past| self.0 < past);
        let too_new = received
            .0
            .checked_add_signed(span(window.max_future))
            .is_some_and(|future| self.0 > future);
        if too_old || too_new {
            (received, true)
        } else {
            (self, false)
        }
    }
}

/// How far before and after its receive time an event's own time is
/// believed (`EVENT_TIME_MAX_PAST_DAYS`, `EVENT_TIME_MAX_FUTURE_HOURS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub max_past: std::time::Duration,
    pub max_future: std::time::Duration,
}

pub const DEFAULT_MAX_PAST_DAYS: u64 = 3650;
pub const DEFAULT_MAX_FUTURE_HOURS: u64 = 24;

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow {
            max_past: std::time::Duration::from_secs(DEFAULT_MAX_PAST_DAYS * 86_400),
            max_future: std::time::Duration::from_secs(DEFAULT_MAX_FUTURE_HOURS * 3600),
        }
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spellings_of_one_instant_agree() {
        let a = EventTime::parse("2025-01-15T10:30:00Z").unwrap();
        for other in [
            json!("2025-01-15T10:30:00.000Z"),
            json!("2025-01-15T11:30:00+01:00"),
            json!("2025-01-15 10:30:00"),
            json!("2025-01-15 10:30:00.000+00:00"),
            json!(1736937000),
            json!(1736937000000_i64),
            json!("1736937000"),
        ] {
            assert_eq!(EventTime::from_value(&other), Some(a), "{other}");
        }
        assert_eq!(a.to_string(), "2025-01-15T10:30:00.000Z");
    }

    #[test]
    fn epoch_units_are_told_apart() {
        let a = EventTime::parse("2025-01-15T10:30:00Z").unwrap();
        for n in [
            1_736_937_000_i64,
            1_736_937_000_000,
            1_736_937_000_000_000,
            1_736_937_000_000_000_000,
        ] {
            assert_eq!(EventTime::from_value(&json!(n)), Some(a), "{n}");
        }
        assert_eq!(EventTime::from_value(&json!(1_736_937_000.0_f64)), Some(a));
        assert_eq!(
            EventTime::from_value(&json!("1736937000000000")),
            Some(a),
            "µs as text"
        );
    }

    #[test]
    fn times_far_from_the_receive_time_are_clamped() {
        let received = EventTime::parse("2026-01-01T00:00:00Z").unwrap();
        let w = TimeWindow::default();
        let near = EventTime::parse("2026-01-01T06:00:00Z").unwrap();
        assert_eq!(near.within(received, &w), (near, false));
        let old = EventTime::parse("2025-01-15T10:30:00Z").unwrap();
        assert_eq!(old.within(received, &w), (old, false));
        for far in ["2099-01-01T00:00:00Z", "1971-01-01T00:00:00Z"] {
            let t = EventTime::parse(far).unwrap();
            assert_eq!(t.within(received, &w), (received, true), "{far}");
        }
    }

    #[test]
    fn non_times_are_none() {
        for v in [json!("soon"), json!(""), json!(true), json!(-5), json!({})] {
            assert_eq!(EventTime::from_value(&v), None, "{v}");
        }
    }
}
