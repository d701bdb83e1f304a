//! In-process benchmarks: parse + normalize + key per sample payload, the
//! ingest handler per request (1 KB and 100 KB) with a no-op queue, and the
//! consumer's per-record work (parse, plan, outcome, log, metrics) with an
//! in-memory store. `cargo bench --bench hot_paths` prints medians and spreads;
//! `scripts/bench.sh` runs these and the rest and writes BENCHMARKS.md.

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smartlead::app::consumer::{BlobError, BlobReader, Consumer, QueueMessage};
use smartlead::app::ingest::*;
use smartlead::app::store::{
    ApplyOutcome, Dedup, EffectLedger, RejectSink, Rejected, StateReader, StoreError,
};
use smartlead::domain::plan::{Plan, ScoreWeights};
use smartlead::metrics::Metrics;
use smartlead::{DedupKey, SmartleadEvent};

fn payloads() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/payloads");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("payloads")
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn model(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_normalize_key");
    for (name, body) in payloads() {
        g.bench_with_input(BenchmarkId::from_parameter(&name), &body, |b, body| {
            b.iter(|| {
                let ev = SmartleadEvent::from_slice(body.as_bytes()).unwrap();
                (ev.normalized(), ev.dedup_key())
            })
        });
    }
    g.finish();
}

fn ingest(c: &mut Criterion) {
    let svc = Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new(test_support::TOKEN).unwrap(),
            clients: Default::default(),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 1024 * 1024,
        },
        queue: test_support::NoopQueue,
        blobs: Some(test_support::NoBlobs),
        metrics: Metrics::disabled(),
    };
    // No timer: the ingest's handler sets none (a timer driver would add
    // its own cost to every `block_on` below).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("ingest_handler");
    for size in [1024usize, 100 * 1024] {
        let pad = "x".repeat(size.saturating_sub(200));
        let body = format!("{{\"event_type\":\"EMAIL_REPLY\",\"to_email\":\"a@b.example\",\"campaign_id\":1,\"reply_body\":\"{pad}\"}}");
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{}KB", size / 1024)),
            &body,
            |b, body| {
                b.iter(|| {
                    rt.block_on(svc.handle(IngestRequest {
                        method: "POST",
                        path: "/webhooks/smartlead",
                        query_token: Some(test_support::TOKEN),
                        signature: None,
                        smartlead_request_id: None,
                        webhook_level: None,
                        body: body.as_bytes(),
                        request_id: "r",
                        source_ip: "127.0.0.1",
                    }))
                })
            },
        );
    }
    g.finish();
}

/// Applies every plan (the processed path, the common one) and keeps nothing.
struct MemStore;
#[async_trait]
impl Dedup for MemStore {
    async fn apply(&self, plan: &Plan, _message_id: &str) -> Result<ApplyOutcome, StoreError> {
        Ok(ApplyOutcome::Applied {
            transactions: 1,
            write_units: plan.items.len() as f64,
            state: None,
            fanout: true,
            trimmed: false,
            refused: Vec::new(),
        })
    }
}
#[async_trait]
impl RejectSink for MemStore {
    async fn reject(&self, _r: Rejected<'_>) -> Result<(), StoreError> {
        Ok(())
    }
}
#[async_trait]
impl EffectLedger for MemStore {
    async fn claim(&self, _: smartlead::app::store::Claim<'_>) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn settle(
        &self,
        _: &DedupKey,
        _: &str,
        _: i64,
        _: smartlead::app::store::Settle,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
#[async_trait]
impl StateReader for MemStore {
    async fn item(&self, _: &str, _: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(None)
    }
}
struct NoReader;
#[async_trait]
impl BlobReader for NoReader {
    async fn get(&self, _bucket: &str, _key: &str) -> Result<Vec<u8>, BlobError> {
        Err(BlobError::NotFound)
    }
}

fn consumer(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/sqs");
    // The SQS fixtures as the consumer function hands them to the library.
    let read = |name: &str| -> Vec<QueueMessage> {
        smartlead_consumer::messages(
            serde_json::from_slice(&std::fs::read(dir.join(name)).expect("sqs fixture"))
                .expect("sqs event"),
        )
    };
    let consumer = Consumer {
        store: MemStore,
        blobs: None::<NoReader>,
        weights: ScoreWeights::default(),
        concurrency: 10,
        metrics: Metrics::disabled(),
        effects: Default::default(),
        time_window: Default::default(),
        effect_path: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        // The consumer bounds each record by the invocation's deadline.
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("consumer_record");
    for name in [
        "email_open",
        "email_reply",
        "email_bounce",
        "lead_category_updated",
    ] {
        let record = read(&format!("{name}.json")).remove(0);
        g.bench_with_input(BenchmarkId::from_parameter(name), &record, |b, r| {
            b.iter(|| rt.block_on(consumer.handle_record(r)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("consumer_batch");
    let batch = read("batch_mixed.json");
    g.bench_function(format!("{}_records", batch.len()), |b| {
        b.iter(|| rt.block_on(consumer.handle_batch(batch.clone())))
    });
    g.finish();
}

criterion_group!(benches, model, ingest, consumer);
criterion_main!(benches);
