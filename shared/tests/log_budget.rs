//! What a webhook costs in CloudWatch Logs at the default level: every line
//! both functions print for ten EMAIL_OPEN webhooks (log records and metric
//! documents), divided by ten.

mod common;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::json;
use smartlead::ingest::*;
use smartlead::message::OutgoingMessage;
use smartlead::metrics::Metrics;
use std::sync::{Arc, Mutex};

/// Measured 735 bytes (869 before the ingest's record and metrics became
/// one line). Issue #14 asks for 400: the ingest's metric document alone
/// (Received, Queued and IngestLatency with both dimension sets, which the
/// dashboard, the alarms and `smartlead status` read) is ~430 bytes, so 400
/// needs metrics aggregated across requests (see BENCHMARKS.md). This
/// holds the line where it is.
const BUDGET: usize = 750;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct UuidQueue;
#[async_trait]
impl Queue for UuidQueue {
    async fn send(&self, _msg: OutgoingMessage) -> Result<String, QueueError> {
        Ok("0b9f36b4-87a3-44ab-83d2-661975830a7d".into())
    }
}
struct NoBlobs;
#[async_trait]
impl BlobStore for NoBlobs {
    fn bucket(&self) -> &str {
        "b"
    }
    async fn put(&self, _k: &str, _b: &[u8]) -> Result<(), QueueError> {
        Ok(())
    }
}

fn open(i: usize) -> String {
    json!({"event_type": "EMAIL_OPEN", "to_email": format!("lead{i}@acme-corp.com"),
           "campaign_id": 123, "campaign_name": "Q1 Outreach - SaaS CTOs",
           "sequence_number": 1, "time_opened": format!("2025-01-15T10:{:02}:00Z", i),
           "stats_id": format!("st-{i}-7f3a")})
    .to_string()
}

fn json_bytes(buf: &Arc<Mutex<Vec<u8>>>) -> (usize, usize) {
    let text = String::from_utf8_lossy(&buf.lock().expect("lock")).to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    (lines.iter().map(|l| l.len() + 1).sum(), lines.len())
}

#[tokio::test]
async fn a_webhook_logs_at_most_750_bytes_at_the_default_level() {
    let logs = Lines::default();
    let writer = logs.clone();
    // As `smartlead::logging::init` sets it up with AWS_LAMBDA_LOG_FORMAT=JSON.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (ingest_metrics, ingest_lines) = Metrics::capturing("ingest");
    let svc = Ingest {
        config: IngestConfig {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new("local-dev-secret").expect("secret"),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 256 * 1024,
        },
        queue: UuidQueue,
        blobs: Some(NoBlobs),
        metrics: ingest_metrics,
    };
    let n = 10;
    for i in 0..n {
        let body = open(i);
        let r = svc
            .handle(IngestRequest {
                method: "POST",
                path: "/webhooks/smartlead",
                query_token: Some("local-dev-secret"),
                signature: None,
                smartlead_request_id: None,
                webhook_level: None,
                body: body.as_bytes(),
                request_id: "5c3e1a52-2f0d-4e8b-9a51-0d2b1b7e4c11",
                source_ip: "203.0.113.9",
            })
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    let mut c = common::consumer_with(common::fresh_store().await, Default::default());
    let (consumer_metrics, consumer_lines) = Metrics::capturing("consumer");
    c.metrics = consumer_metrics;
    let mut batch = SqsEvent::default();
    batch.records = (0..n)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("0b9f36b4-87a3-44ab-83d2-66197583{i:04}"));
            m.body = Some(open(i));
            m
        })
        .collect();
    assert!(c.handle_batch(batch).await.batch_item_failures.is_empty());

    let (log_bytes, log_lines) = json_bytes(&logs.0);
    let (ingest_bytes, ingest_docs) = json_bytes(&ingest_lines);
    let (consumer_bytes, consumer_docs) = json_bytes(&consumer_lines);
    let per_webhook = (log_bytes + ingest_bytes + consumer_bytes) / n;
    println!(
        "log bytes per webhook: {per_webhook} (records {log_bytes} B in {log_lines} lines, \
         ingest metrics {ingest_bytes} B in {ingest_docs}, consumer metrics {consumer_bytes} B in {consumer_docs})"
    );
    // Every event's outcome stays findable: one line per webhook in each function.
    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).to_string();
    assert_eq!(
        text.matches("\"outcome\":\"processed\"").count(),
        n,
        "{text}"
    );
    assert!(text.contains("\"dedup_key\":\"EMAIL_OPEN:"), "{text}");
    let ingest_text = String::from_utf8_lossy(&ingest_lines.lock().expect("lock")).to_string();
    assert_eq!(ingest_text.matches("\"message_id\":\"0b9f36b4").count(), n);
    if std::env::var_os("SHOW_LINES").is_some() {
        println!("{}", text.lines().next().unwrap_or_default());
        println!("{}", ingest_text.lines().next().unwrap_or_default());
        println!(
            "{}",
            String::from_utf8_lossy(&consumer_lines.lock().expect("lock"))
        );
    }
    assert!(per_webhook <= BUDGET, "{per_webhook} bytes per webhook");
}
