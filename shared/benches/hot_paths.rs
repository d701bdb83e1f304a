//! In-process benchmarks: parse + normalize + key per sample payload, and
//! the ingest handler per request (1 KB and 100 KB) with a no-op queue.
//! `cargo bench -p smartlead` (criterion prints medians and spreads).

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smartlead::ingest::*;
use smartlead::message::OutgoingMessage;
use smartlead::metrics::Metrics;
use smartlead::SmartleadEvent;

struct NoopQueue;
#[async_trait]
impl Queue for NoopQueue {
    async fn send(&self, _msg: OutgoingMessage) -> Result<String, QueueError> {
        Ok("id".into())
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
        config: IngestConfig {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new("local-dev-secret").unwrap(),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 1024 * 1024,
        },
        queue: NoopQueue,
        blobs: Some(NoBlobs),
        metrics: Metrics::disabled(),
    };
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
                        query_token: Some("local-dev-secret"),
                        signature: None,
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

criterion_group!(benches, model, ingest);
criterion_main!(benches);
