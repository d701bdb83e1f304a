//! What a webhook costs in CloudWatch Logs at the default level: every line
//! both functions print (log records and metric documents) for two batches
//! of ten typical webhooks (4 EMAIL_SENT, 4 EMAIL_OPEN, 1 EMAIL_LINK_CLICK,
//! 1 EMAIL_REPLY), fan-out on as the template's default, divided by twenty.

mod common;

use async_trait::async_trait;
use serde_json::json;
use smartlead::app::effects::{BusEvent, EffectError, Effects, Notifier, Publisher};
use smartlead::app::ingest::*;
use smartlead::metrics::Metrics;
use std::sync::{Arc, Mutex};
use test_support::sqs::{SqsEvent, SqsMessage};

/// The log-budget target: at most 400 bytes a webhook. Measured 735 bytes (ten EMAIL_OPEN, no fan-out) when the
/// ingest wrote an EMF document per request and the consumer one per event
/// type and batch; the ingest's queued line is now a record the template's
/// metric filters count, and the consumer writes one document a batch.
const BUDGET: usize = 400;

/// The `i`th webhook of the mix: of each ten, 4 sent, 4 opens, a click and
/// a reply, each for its own lead.
fn webhook(i: usize) -> String {
    let name = match i % 10 {
        0..=3 => "email_sent",
        4..=7 => "email_open",
        8 => "email_link_click",
        _ => "email_reply",
    };
    let mut v: serde_json::Value = serde_json::from_str(&common::payload(name)).expect("fixture");
    v["to_email"] = json!(format!("lead{i}@acme-corp.com"));
    v["stats_id"] = json!(format!("st-{i}-7f3a"));
    v["lead_id"] = json!(1000 + i);
    if v.get("message_id").is_some() {
        v["message_id"] = json!(format!("<sent-{i}@mail.outreach-co.io>"));
    }
    if v.get("reply_message").is_some() {
        v["reply_message"]["message_id"] = json!(format!("<reply-{i}@mail.acme-corp.com>"));
    }
    v.to_string()
}

/// The bus, accepting every event.
struct Bus;
#[async_trait]
impl Publisher for Bus {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        events.iter().map(|_| Ok(())).collect()
    }
}

/// The alert topic (the template always has one, and EMAIL_REPLY is among
/// the default `AlertEvents`), accepting every alert.
struct AlertTopic;
#[async_trait]
impl Notifier for AlertTopic {
    fn effect(&self) -> &'static str {
        smartlead::app::effects::SNS
    }
    async fn notify(
        &self,
        _ev: &smartlead::SmartleadEvent,
        _key: &str,
        _deadline: std::time::Instant,
    ) -> Result<(), EffectError> {
        Ok(())
    }
}

fn json_bytes(buf: &Arc<Mutex<Vec<u8>>>) -> (usize, usize) {
    let text = String::from_utf8_lossy(&buf.lock().expect("lock")).to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    (lines.iter().map(|l| l.len() + 1).sum(), lines.len())
}

#[tokio::test]
async fn a_webhook_logs_at_most_400_bytes_at_the_default_level() {
    // As `smartlead::logging::init` sets it up with AWS_LAMBDA_LOG_FORMAT=JSON.
    let (logs, _guard) = common::json_logs(tracing::Level::INFO, false);

    let (ingest_metrics, ingest_lines) = Metrics::capturing("ingest");
    let svc = Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new("local-dev-secret").expect("secret"),
            clients: Default::default(),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 256 * 1024,
        },
        queue: test_support::NoopQueue,
        blobs: Some(test_support::NoBlobs),
        metrics: ingest_metrics,
    };
    let n = 20;
    for i in 0..n {
        let body = webhook(i);
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

    // As deployed by default: the fan-out on, and the alert topic for the
    // default alert events (the mix's replies).
    let effects = Effects {
        publisher: Some(Box::new(Bus)),
        notifiers: vec![Box::new(AlertTopic)],
        ..Default::default()
    };
    let mut c = common::consumer_with(common::fresh_store().await, effects);
    let (consumer_metrics, consumer_lines) = Metrics::capturing("consumer");
    c.metrics = consumer_metrics;
    for b in 0..n / 10 {
        let mut batch = SqsEvent::default();
        batch.records = (b * 10..b * 10 + 10)
            .map(|i| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("0b9f36b4-87a3-44ab-83d2-66197583{i:04}"));
                m.body = Some(webhook(i));
                m
            })
            .collect();
        assert!(c.handle_batch(batch).await.batch_item_failures.is_empty());
    }

    let (log_bytes, log_lines) = json_bytes(&logs.0);
    let (ingest_bytes, ingest_docs) = json_bytes(&ingest_lines);
    let (consumer_bytes, consumer_docs) = json_bytes(&consumer_lines);
    let per_webhook = (log_bytes + ingest_bytes + consumer_bytes) / n;
    println!(
        "log bytes per webhook: {per_webhook} (records {log_bytes} B in {log_lines} lines, \
         ingest metrics {ingest_bytes} B in {ingest_docs}, consumer metrics {consumer_bytes} B in {consumer_docs})"
    );
    // Every event's outcome stays findable: one line per webhook in each function.
    let text = logs.text();
    assert_eq!(
        text.matches("\"outcome\":\"processed\"").count(),
        n,
        "{text}"
    );
    for t in [
        "EMAIL_SENT",
        "EMAIL_OPEN",
        "EMAIL_LINK_CLICK",
        "EMAIL_REPLY",
    ] {
        assert!(text.contains(&format!("\"dedup_key\":\"{t}:")), "{text}");
    }
    let ingest_text = String::from_utf8_lossy(&ingest_lines.lock().expect("lock")).to_string();
    assert_eq!(ingest_text.matches("\"message_id\":\"0b9f36b4").count(), n);
    // What the template's metric filters count (`Received`, `Queued` by
    // `EventType`): one line a queued webhook with these fields.
    let queued: Vec<serde_json::Value> = ingest_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|v: &serde_json::Value| v["outcome"] == "queued")
        .collect();
    assert_eq!(queued.len(), n, "{ingest_text}");
    for v in &queued {
        assert_eq!(v["Function"], "ingest", "{v}");
        assert!(
            v["EventType"]
                .as_str()
                .is_some_and(|t| t.starts_with("EMAIL_")),
            "{v}"
        );
    }
    // The metrics the alarms, dashboard and `smartlead status` read are
    // still published, summed over each batch.
    let consumer_text = String::from_utf8_lossy(&consumer_lines.lock().expect("lock")).to_string();
    let docs: Vec<serde_json::Value> = consumer_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let sum = |m: &str| docs.iter().filter_map(|d| d[m].as_f64()).sum::<f64>();
    assert_eq!(sum("Processed"), n as f64, "{consumer_text}");
    // Every event's fan-out, and each reply's alert (one in ten), ran on
    // the effects queue without a document of their own (AWS/SQS counts
    // them: `NumberOfMessagesDeleted`).
    assert_eq!(c.effects_run(), n + n / 10);
    assert_eq!(c.failed_effects(), 0);
    assert_eq!(sum("EffectsDone"), 0.0, "{consumer_text}");
    assert!(
        consumer_text.contains("\"ProcessingLatency\":["),
        "{consumer_text}"
    );
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

/// Refuses the first event of each publish and fails the second.
struct Picky;
#[async_trait]
impl Publisher for Picky {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        (0..events.len())
            .map(|i| match i {
                0 => Err(EffectError::Permanent("ValidationException".into())),
                1 => Err(EffectError::Transient("InternalFailure".into())),
                _ => Ok(()),
            })
            .collect()
    }
}

/// A subscriber for this thread that writes nothing (a thread with none
/// would make tracing's shared callsite cache drop the other test's
/// lines), and the consumer on a new table with `effects`, its metric
/// documents captured.
async fn metered_consumer(
    effects: Effects,
) -> (
    tracing::subscriber::DefaultGuard,
    common::TestConsumer,
    Arc<Mutex<Vec<u8>>>,
) {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let mut c = common::consumer_with(common::fresh_store().await, effects);
    let (metrics, lines) = Metrics::capturing("consumer");
    c.metrics = metrics;
    (guard, c, lines)
}

/// The batch document takes the done effects; an effect refused or failed
/// keeps its own document by `Effect` with all three counts, so the
/// `EffectsRefused` alarm and `smartlead status`'s "effect failures"
/// (by `Function`) still read them.
#[tokio::test]
async fn a_refused_or_failed_effect_keeps_its_document_by_effect() {
    let effects = Effects {
        publisher: Some(Box::new(Picky)),
        ..Default::default()
    };
    let (_guard, c, lines) = metered_consumer(effects).await;
    let mut batch = SqsEvent::default();
    batch.records = (100..110)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m-{i}"));
            m.body = Some(webhook(i));
            m
        })
        .collect();
    // The state is acknowledged; the failed publish is retried on the
    // effects queue (where, alone in its publish, it is refused).
    assert!(c.handle_batch(batch).await.batch_item_failures.is_empty());
    assert_eq!(c.failed_effects(), 1);
    let text = String::from_utf8_lossy(&lines.lock().expect("lock")).to_string();
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let by_effect: Vec<_> = docs.iter().filter(|d| d["Effect"] == "fanout").collect();
    assert_eq!(by_effect.len(), 2, "the batch, then the retry: {text}");
    let d = by_effect[0];
    assert_eq!(d["EffectsDone"], 8, "{text}");
    assert_eq!(d["EffectsRefused"], 1, "{text}");
    assert_eq!(d["EffectsFailed"], 1, "{text}");
    assert_eq!(
        d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function", "Effect"], ["Function"]])
    );
    let batch_doc = docs
        .iter()
        .find(|d| d.get("Processed").is_some())
        .expect("the batch's document");
    assert!(batch_doc.get("EffectsDone").is_none(), "{text}");
    assert_eq!(
        batch_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function"]])
    );
}

/// `Processed` by `Function` (what alarms, the dashboard and `smartlead
/// status` read) counts an event of an unknown type once: its breakdown by
/// `EventType=UNKNOWN` has no per-function roll-up of its own.
#[tokio::test]
async fn an_unknown_type_is_processed_once_in_the_per_function_total() {
    let (_guard, c, lines) = metered_consumer(Effects::default()).await;
    let mut batch = SqsEvent::default();
    let unknown =
        json!({"event_type": "LEAD_MEETING_BOOKED", "campaign_id": 1, "lead_email": "u@x.example"});
    batch.records = [webhook(200), unknown.to_string()]
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m-unknown-{i}"));
            m.body = Some(body);
            m
        })
        .collect();
    assert!(c.handle_batch(batch).await.batch_item_failures.is_empty());
    let text = String::from_utf8_lossy(&lines.lock().expect("lock")).to_string();
    // What CloudWatch adds up for Processed{Function=consumer}: every
    // document that has the dimension set ["Function"].
    let per_function: f64 = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .is_some_and(|sets| sets.contains(&json!(["Function"])))
        })
        .filter_map(|d| d["Processed"].as_f64())
        .sum();
    assert_eq!(per_function, 2.0, "{text}");
    assert!(
        text.contains(r#""EventType":"UNKNOWN""#),
        "the UNKNOWN breakdown is still there: {text}"
    );
}
