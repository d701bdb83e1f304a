//! The fan-out: one event for the bus per webhook, kept within what
//! EventBridge's `PutEvents` accepts.

use crate::domain::event::SmartleadEvent;
use crate::domain::time::EventTime;
use serde_json::{json, Value};

/// EventBridge's limit on one `PutEvents` request; entries are packed below it.
pub const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;
/// A detail larger than this drops the original payload (kept in S3/DynamoDB
/// by the pipeline anyway) and says so.
const MAX_DETAIL_BYTES: usize = 200 * 1024;

/// One event for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub detail_type: String,
    pub detail: String,
    pub time: Option<EventTime>,
}

/// Builds the fan-out event: the normalized view, the lead state after this
/// event and the original payload, with the dedup key as its stable id.
pub fn bus_event(ev: &SmartleadEvent, key: &str, state: Option<Value>) -> BusEvent {
    let n = ev.normalized();
    let mut detail = json!({
        "id": key,
        "dedup_key": key,
        "event_type": ev.event_type.as_str(),
        "normalized": n,
        "state": state.unwrap_or(Value::Null),
        "payload": Value::Object(ev.raw.clone()),
    });
    // PutEvents takes JSON integers within i64 only: a larger one (an id
    // of 2^63 or more) is kept as its text.
    fit_integers(&mut detail);
    // Over EventBridge's entry limit, the bulkiest parts give way, in this
    // order, to a note of their size: the payload, then the state (a lead
    // item grown near DynamoDB's 400 KB), then the normalized view. An
    // entry EventBridge refuses for its size would be retried forever.
    let mut text = detail.to_string();
    for part in ["payload", "state", "normalized"] {
        if text.len() <= MAX_DETAIL_BYTES {
            break;
        }
        let bytes = detail[part].to_string().len();
        detail[part] =
            json!({"omitted": "larger than the EventBridge entry limit", "bytes": bytes});
        text = detail.to_string();
    }
    BusEvent {
        // An unknown type's name may be longer than a detail-type can be.
        detail_type: crate::domain::plan::cut_bytes(ev.event_type.as_str(), MAX_DETAIL_TYPE_BYTES)
            .to_owned(),
        detail: text,
        time: n.event_time,
    }
}

/// EventBridge's limit on an entry's detail-type
/// (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html>).
pub const MAX_DETAIL_TYPE_BYTES: usize = 128;

/// Integers past i64's range as text: PutEvents refuses them
/// (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html>).
fn fit_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => *v = Value::String(n.to_string()),
        Value::Array(a) => a.iter_mut().for_each(fit_integers),
        Value::Object(o) => o.values_mut().for_each(fit_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::effects::test_event as ev;

    #[test]
    fn the_bus_event_carries_key_view_state_and_payload() {
        let e = ev(
            json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.c", "campaign_id": 1, "time_opened": "2025-01-01T00:00:00Z"}),
        );
        let b = bus_event(&e, "EMAIL_OPEN:fields:1", Some(json!({"opens": 1})));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert_eq!(d["dedup_key"], "EMAIL_OPEN:fields:1");
        assert_eq!(d["normalized"]["lead_email"], "a@b.c");
        assert_eq!(d["state"]["opens"], 1);
        assert_eq!(d["payload"]["campaign_id"], 1);
        assert_eq!(b.detail_type, "EMAIL_OPEN");
        let huge = ev(
            json!({"event_type": "EMAIL_REPLY", "to_email": "a@b.c", "reply_body": "x".repeat(300 * 1024)}),
        );
        let b = bus_event(&huge, "k", None);
        assert!(b.detail.len() < MAX_DETAIL_BYTES);
        assert!(b.detail.contains("omitted"));
        // A state grown near DynamoDB's 400 KB (distinct clicked links) gives
        // way too: the entry stays under EventBridge's limit, key and view kept.
        let links: Vec<String> = (0..4000)
            .map(|i| format!("https://x.example/{i:080}"))
            .collect();
        let b = bus_event(&e, "k2", Some(json!({"links_clicked": links})));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert!(b.detail.len() < MAX_DETAIL_BYTES, "{}", b.detail.len());
        assert_eq!(
            d["state"]["omitted"],
            "larger than the EventBridge entry limit"
        );
        assert_eq!(d["dedup_key"], "k2");
        assert_eq!(d["normalized"]["lead_email"], "a@b.c");
    }

    /// What PutEvents refuses, bounded in the entry: a detail-type over 128
    /// characters (PutEventsRequestEntry,
    /// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html)
    /// and JSON integers outside i64 (PutEvents,
    /// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
    #[test]
    fn the_bus_event_keeps_within_what_put_events_accepts() {
        let long_type = format!("LEAD_{}", "X".repeat(250));
        let e = ev(
            json!({"event_type": long_type, "campaign_id": 18446744073709551615_u64,
                          "ids": [9223372036854775807_i64, 9223372036854775808_u64, -3]}),
        );
        let b = bus_event(&e, "k", None);
        assert!(b.detail_type.len() <= 128, "{}", b.detail_type.len());
        assert!(b.detail_type.starts_with("LEAD_XX"));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert_eq!(d["payload"]["campaign_id"], "18446744073709551615");
        assert_eq!(
            d["payload"]["ids"],
            json!([9223372036854775807_i64, "9223372036854775808", -3])
        );
    }
}
