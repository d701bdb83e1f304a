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
            Value::Number(n) => n.as_i64().and_then(EventTime::from_epoch),
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

    /// Epoch seconds or milliseconds (values past 10^11 are taken as milliseconds).
    fn from_epoch(n: i64) -> Option<EventTime> {
        if n <= 0 {
            return None;
        }
        if n >= 100_000_000_000 {
            EventTime::from_millis(n)
        } else {
            EventTime::from_millis(n.checked_mul(1000)?)
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
    fn non_times_are_none() {
        for v in [json!("soon"), json!(""), json!(true), json!(-5), json!({})] {
            assert_eq!(EventTime::from_value(&v), None, "{v}");
        }
    }
}
