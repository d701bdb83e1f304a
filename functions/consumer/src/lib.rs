//! SQS adapter of the consumer function: the event source mapping's
//! `SqsEvent` in, as [`smartlead::app::consumer::QueueMessage`]s; the
//! library's [`BatchAnswer`] out, as `batchItemFailures`
//! (`ReportBatchItemFailures`).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use smartlead::app::consumer::{BatchAnswer, BlobReader, Consumer, QueueMessage};
use smartlead::app::store::StateStore;

pub mod wire;

/// Answers one SQS event before `deadline_ms` (epoch ms, the invocation's
/// deadline; `None`: the consumer's longest lease).
pub async fn handle<S: StateStore, B: BlobReader>(
    consumer: &Consumer<S, B>,
    event: SqsEvent,
    deadline_ms: Option<i64>,
) -> SqsBatchResponse {
    response(
        consumer
            .handle_batch_until(messages(event), deadline_ms)
            .await,
    )
}

/// The event's records, in order.
pub fn messages(event: SqsEvent) -> Vec<QueueMessage> {
    event.records.into_iter().map(message).collect()
}

/// One record: its string message attributes (a binary one is left out)
/// and the SQS attributes the consumer reads.
pub fn message(m: SqsMessage) -> QueueMessage {
    let system = |name: &str| m.attributes.get(name).map(String::as_str);
    let sent_ms = system("SentTimestamp").and_then(|t| t.parse().ok());
    let receive_count = system("ApproximateReceiveCount").and_then(|c| c.parse().ok());
    QueueMessage {
        message_id: m.message_id,
        body: m.body.unwrap_or_default(),
        attributes: m
            .message_attributes
            .into_iter()
            .filter_map(|(name, a)| a.string_value.map(|v| (name, v)))
            .collect(),
        sent_ms,
        receive_count,
        receipt_handle: m.receipt_handle,
    }
}

/// The answer as Lambda reads it: one `batchItemFailures` entry per id.
pub fn response(answer: BatchAnswer) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = answer
        .retry
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(records: serde_json::Value) -> SqsEvent {
        serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
    }

    #[test]
    fn a_record_keeps_its_id_body_attributes_and_times() {
        let e = event(json!([{
            "messageId": "m-1",
            "receiptHandle": "AQEB-1",
            "body": "{\"event_type\":\"EMAIL_OPEN\"}",
            "attributes": {
                "ApproximateReceiveCount": "3",
                "SentTimestamp": "1736931600000",
                "SenderId": "AROAEXAMPLE"
            },
            "messageAttributes": {
                "received_at": {"stringValue": "2025-01-15T09:00:00Z", "dataType": "String"},
                "requeued": {"stringValue": "2", "dataType": "Number"},
                "blob": {"binaryValue": "AAE=", "dataType": "Binary"}
            },
            "eventSource": "aws:sqs"
        }]));
        let m = messages(e);
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.message_id.as_deref(), Some("m-1"));
        assert_eq!(m.receipt_handle.as_deref(), Some("AQEB-1"));
        assert_eq!(m.body, "{\"event_type\":\"EMAIL_OPEN\"}");
        assert_eq!(m.sent_ms, Some(1_736_931_600_000));
        assert_eq!(m.receive_count, Some(3));
        assert_eq!(m.attribute("received_at"), Some("2025-01-15T09:00:00Z"));
        assert_eq!(m.attribute("requeued"), Some("2"));
        assert_eq!(m.attribute("blob"), None, "a binary attribute has no text");
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn a_bare_record_reads_as_empty_and_unnumbered() {
        let m = messages(event(json!([{ "attributes": {"SentTimestamp": "soon"} }])));
        assert_eq!(
            m,
            vec![QueueMessage {
                message_id: None,
                body: String::new(),
                attributes: Default::default(),
                sent_ms: None,
                receive_count: None,
                receipt_handle: None,
            }]
        );
    }

    #[test]
    fn records_keep_their_order() {
        let e = event(json!([{"messageId": "a"}, {"messageId": "b"}, {"messageId": "c"}]));
        let ids: Vec<String> = messages(e)
            .into_iter()
            .filter_map(|m| m.message_id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn the_answer_names_each_id_as_lambda_reads_it() {
        let answer = BatchAnswer {
            retry: vec!["m-2".into(), String::new()],
        };
        assert_eq!(
            serde_json::to_value(response(answer)).expect("JSON"),
            json!({"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": ""}]})
        );
        assert_eq!(
            serde_json::to_value(response(BatchAnswer::default())).expect("JSON"),
            json!({"batchItemFailures": []})
        );
    }
}
