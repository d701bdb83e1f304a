//! SQS records and batches as the consumer receives them, and its answer.

use serde_json::json;
use test_support::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// The SQS event fixture `name` (`events/sqs/`).
pub fn sqs_fixture(name: &str) -> SqsEvent {
    serde_json::from_str(&test_support::fixtures("sqs")[name]).expect("SQS fixture")
}

/// A queued record with the ingest's optional SmartLead attributes.
pub fn record(id: &str, body: &str, request_id: Option<&str>) -> SqsMessage {
    let mut attrs = serde_json::Map::new();
    if let Some(r) = request_id {
        attrs.insert(
            "smartlead_request_id".into(),
            json!({"stringValue": r, "dataType": "String"}),
        );
    }
    serde_json::from_value(json!({
        "messageId": id, "body": body, "messageAttributes": attrs,
        "attributes": {"SentTimestamp": "1737709200000"}
    }))
    .expect("record")
}

/// A batch of `records`.
pub fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

/// The message ids the answer reports failed, in its order.
pub fn failures(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}
