//! `cargo run --release -p xtask -- bench` (what `scripts/bench.sh` runs):
//! every figure of BENCHMARKS.md, measured on this machine.
//!
//! 1. criterion, in process: parse + normalize + key per payload, the
//!    ingest handler per request (1 KB, 100 KB), the consumer per record;
//! 2. release binaries: stripped sizes;
//! 3. under the Lambda RIE with the local stack: process start to first
//!    answered invoke, warm invoke latency, peak RSS of each `bootstrap`;
//! 4. end to end over HTTP: webhooks/s and POST-to-stored latency at
//!    concurrency 1, 8 and 32; consumer events/s at batch sizes 1 and 10;
//! 5. cost: DynamoDB write units per event type (ReturnConsumedCapacity),
//!    log bytes per event, Lambda GB-seconds from the measured durations and
//!    the template's memory sizes, and the bill per million webhooks.
//!
//! Results go to `bench/results.json`, `bench/latency.svg` and the part of
//! BENCHMARKS.md between its `results` markers.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use stack::{self as local, Options, Pool, Ports, Stack};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::{api_request, payloads, sqs_record};

pub struct BenchOptions {
    /// Fewer repetitions: a quick look, not figures to publish.
    pub quick: bool,
    /// Skip criterion (already run) and use its last results.
    pub skip_criterion: bool,
}

/// Medians and spreads of a sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            let i = ((v.len() - 1) as f64 * p).round() as usize;
            v[i.min(v.len() - 1)]
        };
        Stats {
            n: v.len(),
            min: q(0.0),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: q(1.0),
        }
    }
}

/// List prices used for the cost table (us-east-1).
pub struct Prices;
impl Prices {
    pub const AS_OF: &'static str =
        "AWS us-east-1 list prices as of 2026-11-27 (standard tiers, free tiers ignored)";
    pub const HTTP_API_PER_M: f64 = 1.00;
    pub const LAMBDA_REQUESTS_PER_M: f64 = 0.20;
    pub const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
    pub const SQS_PER_M: f64 = 0.40;
    pub const DDB_WRU_PER_M: f64 = 0.625;
    pub const LOGS_PER_GB: f64 = 0.50;
    pub const EVENTBRIDGE_PER_M: f64 = 1.00;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn f(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.digits$}")
    }
}

// ---------------------------------------------------------------- criterion

#[derive(Debug, Clone, serde::Serialize)]
pub struct Criterion {
    pub id: String,
    pub median_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
    pub mad_ns: f64,
}

fn run_criterion(root: &Path, quick: bool) -> Result<()> {
    let measure = if quick { "1" } else { "4" };
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(root)
        .args(["bench", "-p", "smartlead", "--bench", "hot_paths", "--"])
        .args([
            "--noplot",
            "--warm-up-time",
            "1",
            "--measurement-time",
            measure,
        ])
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }
    Ok(())
}

fn read_criterion() -> Result<Vec<Criterion>> {
    let dir = local::target_dir().join("criterion");
    let mut out = Vec::new();
    for group in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let group = group?.path();
        let Ok(benches) = std::fs::read_dir(&group) else {
            continue;
        };
        for bench in benches {
            let bench = bench?.path();
            let Ok(text) = std::fs::read_to_string(bench.join("new/estimates.json")) else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            let name = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            out.push(Criterion {
                id: format!("{}/{}", name(&group), name(&bench)),
                median_ns: v["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
                low_ns: v["median"]["confidence_interval"]["lower_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                high_ns: v["median"]["confidence_interval"]["upper_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                mad_ns: v["median_abs_dev"]["point_estimate"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    if out.is_empty() {
        bail!("no criterion results under {}", dir.display());
    }
    Ok(out)
}

// ------------------------------------------------ in-process percentiles

struct NoopQueue;
#[async_trait::async_trait]
impl smartlead::ingest::Queue for NoopQueue {
    async fn send(
        &self,
        _msg: smartlead::message::OutgoingMessage,
    ) -> Result<String, smartlead::ingest::QueueError> {
        Ok("id".into())
    }
}
struct NoBlobs;
#[async_trait::async_trait]
impl smartlead::ingest::BlobStore for NoBlobs {
    fn bucket(&self) -> &str {
        "b"
    }
    async fn put(&self, _k: &str, _b: &[u8]) -> Result<(), smartlead::ingest::QueueError> {
        Ok(())
    }
}

/// The ingest handler timed one request at a time (criterion gives medians;
/// this gives the tail): p50/p99 in µs for each body size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HandlerTail {
    pub body_bytes: usize,
    pub micros: Stats,
}

fn handler_tails(requests: usize) -> Result<Vec<HandlerTail>> {
    use smartlead::ingest::*;
    let svc = Ingest {
        config: IngestConfig {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new(local::TOKEN).context("secret")?,
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 1024 * 1024,
        },
        queue: NoopQueue,
        blobs: Some(NoBlobs),
        metrics: smartlead::metrics::Metrics::disabled(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut out = Vec::new();
    for size in [1024usize, 100 * 1024] {
        let pad = "x".repeat(size.saturating_sub(200));
        let body = format!("{{\"event_type\":\"EMAIL_REPLY\",\"to_email\":\"a@b.example\",\"campaign_id\":1,\"reply_body\":\"{pad}\"}}");
        let mut micros = Vec::with_capacity(requests);
        for i in 0..requests + requests / 10 {
            let t = Instant::now();
            let r = rt.block_on(svc.handle(IngestRequest {
                method: "POST",
                path: "/webhooks/smartlead",
                query_token: Some(local::TOKEN),
                signature: None,
                smartlead_request_id: None,
                webhook_level: None,
                body: body.as_bytes(),
                request_id: "r",
                source_ip: "127.0.0.1",
            }));
            let us = t.elapsed().as_secs_f64() * 1e6;
            if r.status != 200 {
                bail!("the handler answered {}", r.status);
            }
            // The first tenth warms caches and the allocator.
            if i >= requests / 10 {
                micros.push(us);
            }
        }
        out.push(HandlerTail {
            body_bytes: body.len(),
            micros: Stats::of(&micros),
        });
    }
    Ok(out)
}

/// Counts DynamoDB calls (the store asks before each one).
#[derive(Default)]
struct CallCounter(std::sync::atomic::AtomicUsize);
impl smartlead::store::FaultInjector for CallCounter {
    fn before_call(&self) -> Result<(), smartlead::store::StoreError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn after_call(&self) -> Result<(), smartlead::store::StoreError> {
        Ok(())
    }
}

/// The consumer's handler in process against DynamoDB Local: batches of 10
/// distinct events, one after another.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerDirect {
    pub events: usize,
    pub batch: usize,
    pub events_per_s: f64,
    pub batch_ms: Stats,
    pub dynamodb_requests_per_event: f64,
}

async fn run_consumer_direct(stack: &Stack, events: usize, fanout: bool) -> Result<ConsumerDirect> {
    let counter = Arc::new(CallCounter::default());
    let mut store = stack.store();
    store.faults = Some(counter.clone());
    let mut effects = smartlead::effects::Effects::default();
    if fanout {
        let cfg = smartlead::aws::local_sdk_config(&stack.moto.endpoint()).await;
        effects.publisher = Some(Box::new(smartlead::effects::EventBridgePublisher {
            client: aws_sdk_eventbridge::Client::new(&cfg),
            bus: local::BUS.into(),
        }));
    }
    let consumer = smartlead::consumer::Consumer {
        store,
        blobs: None::<smartlead::aws_sdk_s3::Client>,
        weights: smartlead::plan::ScoreWeights::default(),
        concurrency: smartlead::consumer::DEFAULT_CONCURRENCY,
        metrics: smartlead::metrics::Metrics::disabled(),
        effects,
        time_window: Default::default(),
    };
    let run = format!("direct-{}-{fanout}", std::process::id());
    let mut batch_ms = Vec::new();
    let started = Instant::now();
    for start in (0..events).step_by(10) {
        let records: Vec<Value> = (start..(start + 10).min(events))
            .map(|i| {
                sqs_record(
                    &format!("{run}-{i}"),
                    &open_body(&format!("{run}-{i}@bench.example"), i as u32),
                    "EMAIL_OPEN",
                )
            })
            .collect();
        let batch: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_value(json!({"Records": records}))?;
        let t = Instant::now();
        let r = consumer.handle_batch(batch).await;
        batch_ms.push(ms(t.elapsed()));
        if !r.batch_item_failures.is_empty() {
            bail!("{} records failed", r.batch_item_failures.len());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(ConsumerDirect {
        events,
        batch: 10,
        events_per_s: events as f64 / elapsed,
        batch_ms: Stats::of(&batch_ms),
        dynamodb_requests_per_event: counter.0.load(std::sync::atomic::Ordering::Relaxed) as f64
            / events as f64,
    })
}

// ------------------------------------------------------------ RIE figures

#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionFigures {
    pub name: String,
    pub binary_bytes: u64,
    /// The arm64 `bootstrap` of `sam build` (what deploys), when built.
    pub arm64_bytes: Option<u64>,
    /// Process start (emulator spawn) to the first answered invoke, ms.
    pub cold_start_ms: Stats,
    /// The emulator's INIT REPORT: the bootstrap's own init, ms.
    pub init_ms: Stats,
    /// Warm invokes, as the caller sees them through the emulator, ms.
    pub warm_ms: Stats,
    /// Warm invokes, the emulator's REPORT Duration (what Lambda bills), ms.
    pub warm_billed_ms: Stats,
    pub peak_rss_kib: u64,
}

/// Lines of a log file from `offset`, and the new end offset.
fn log_lines(path: &Path, offset: u64) -> (Vec<String>, u64) {
    let text = std::fs::read(path).unwrap_or_default();
    let from = (offset as usize).min(text.len());
    let lines = String::from_utf8_lossy(&text[from..])
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, text.len() as u64)
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `Duration: X ms` of the emulator's REPORT lines.
fn report_durations(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.starts_with("REPORT RequestId"))
        .filter_map(|l| {
            l.split('\t')
                .map(str::trim)
                .find(|p| p.starts_with("Duration:"))
                .and_then(|p| {
                    p.trim_start_matches("Duration:")
                        .trim_end_matches("ms")
                        .trim()
                        .parse()
                        .ok()
                })
        })
        .collect()
}

fn init_duration(lines: &[String]) -> Option<f64> {
    lines.iter().find_map(|l| {
        let i = l.find("INIT REPORT(durationMs: ")?;
        l[i + 24..].trim_end_matches(')').trim().parse().ok()
    })
}

/// Bytes of the function's own JSON log lines (what CloudWatch ingests with
/// `SystemLogLevel: WARN`: no platform START/END/REPORT records).
fn json_log_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| l.len() as u64 + 1)
        .sum()
}

async fn invoke_until_answered(http: &reqwest::Client, url: &str, event: &Value) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http.post(url).json(event).send().await {
            Ok(r) => return Ok(r.json().await?),
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn open_body(email: &str, second: u32) -> String {
    json!({"event_type": "EMAIL_OPEN", "to_email": email, "campaign_id": 4242,
           "campaign_name": "Benchmark", "sequence_number": 1,
           "time_opened": format!("2026-01-01T00:{:02}:{:02}Z", (second / 60) % 60, second % 60)})
    .to_string()
}

/// The event a function gets for its `i`-th invoke.
fn invoke_event(function: &str, run: &str, i: u32) -> Value {
    let body = open_body(&format!("{run}-{i}@bench.example"), i);
    if function == "ingest" {
        api_request(&format!("{run}-{i}"), &body, "EMAIL_OPEN")
    } else {
        json!({"Records": [sqs_record(&format!("{run}-{i}"), &body, "EMAIL_OPEN")]})
    }
}

async fn function_figures(
    stack: &Stack,
    function: &str,
    rounds: usize,
    warm: u32,
) -> Result<FunctionFigures> {
    let (binary, env) = match function {
        "ingest" => ("smartlead-ingest", &stack.ingest_env),
        _ => ("smartlead-consumer", &stack.consumer_env),
    };
    let bin = stack.options.bin_dir.join(binary);
    let http = smartlead::http::client();
    let (mut cold, mut init, mut warm_ms, mut billed) = (vec![], vec![], vec![], vec![]);
    let mut peak = 0;
    for round in 0..rounds {
        let port = local_aws::free_port();
        let started = Instant::now();
        let mut svc = local_aws::spawn_rie(&bin, port, env)?;
        let url = local_aws::rie_invoke_url(&svc);
        let run = format!("{function}-cold-{}-{round}", std::process::id());
        let first = invoke_until_answered(&http, &url, &invoke_event(function, &run, 0)).await?;
        cold.push(ms(started.elapsed()));
        if first.get("errorType").is_some() {
            bail!("{function}: the first invoke failed: {first}");
        }
        if round == 0 {
            let offset = log_len(&svc.log);
            for i in 1..=warm {
                let t = Instant::now();
                let out = http
                    .post(&url)
                    .json(&invoke_event(function, &run, i))
                    .send()
                    .await?
                    .json::<Value>()
                    .await?;
                warm_ms.push(ms(t.elapsed()));
                if out.get("errorType").is_some() {
                    bail!("{function}: a warm invoke failed: {out}");
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            billed = report_durations(&log_lines(&svc.log, offset).0);
            let pid = svc.pid().context("emulator pid")?;
            for child in local_aws::children(pid) {
                peak = peak.max(local_aws::peak_rss_kib(child).unwrap_or(0));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(d) = init_duration(&log_lines(&svc.log, 0).0) {
            init.push(d);
        }
        svc.stop();
    }
    let logical = if function == "ingest" {
        "IngestFunction"
    } else {
        "ConsumerFunction"
    };
    Ok(FunctionFigures {
        name: function.into(),
        binary_bytes: std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0),
        arm64_bytes: std::fs::metadata(
            crate::workspace_root()
                .join(".aws-sam/build-arm64")
                .join(logical)
                .join("bootstrap"),
        )
        .ok()
        .map(|m| m.len()),
        cold_start_ms: Stats::of(&cold),
        init_ms: Stats::of(&init),
        warm_ms: Stats::of(&warm_ms),
        warm_billed_ms: Stats::of(&billed),
        peak_rss_kib: peak,
    })
}

// ------------------------------------------------------------- end to end

#[derive(Debug, Clone, serde::Serialize)]
pub struct E2e {
    pub concurrency: usize,
    pub events: usize,
    /// Webhooks stored per second, first POST to last record stored.
    pub stored_per_s: f64,
    /// Webhooks accepted (200) per second.
    pub accepted_per_s: f64,
    pub post_ms: Stats,
    pub post_to_stored_ms: Stats,
    #[serde(skip)]
    pub samples: Vec<f64>,
}

type DoneMap = Arc<Mutex<HashMap<String, Instant>>>;

/// Pollers that record when each message's state was stored.
fn spawn_pollers(
    stack: Arc<Stack>,
    consumer: Pool,
    done: DoneMap,
    pollers: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..pollers)
        .map(|_| {
            let (stack, consumer, done) = (stack.clone(), consumer.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    match local::poll_once(&stack, &consumer, 10, 1).await {
                        Ok(p) => {
                            if let (Some(at), Ok(mut d)) = (p.answered_at, done.lock()) {
                                for id in p.done {
                                    d.entry(id).or_insert(at);
                                }
                            }
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        })
        .collect()
}

async fn e2e(http_port: u16, done: &DoneMap, concurrency: usize, events: usize) -> Result<E2e> {
    let url = format!(
        "http://127.0.0.1:{http_port}/webhooks/smartlead?token={}",
        local::TOKEN
    );
    let http = smartlead::http::client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let run = format!("e2e-c{concurrency}-{}", std::process::id());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next, run) = (http.clone(), url.clone(), next.clone(), run.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    return Ok::<_, anyhow::Error>(out);
                }
                let body = open_body(&format!("{run}-{i}@bench.example"), i as u32);
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let ended = Instant::now();
                if status != 200 {
                    bail!("POST answered {status}: {v}");
                }
                let id = v["id"].as_str().context("no id in the answer")?.to_owned();
                out.push((id, t, ended));
            }
        }));
    }
    let mut posted = Vec::new();
    for w in workers {
        posted.extend(w.await??);
    }
    let accepted_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let missing = {
            let d = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            posted
                .iter()
                .filter(|(id, _, _)| !d.contains_key(id))
                .count()
        };
        if missing == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{missing} of {events} events were not stored within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let stored: Vec<f64> = posted
        .iter()
        .map(|(id, t, _)| ms(d[id].saturating_duration_since(*t)))
        .collect();
    let last = posted
        .iter()
        .map(|(id, _, _)| d[id])
        .max()
        .unwrap_or(started);
    Ok(E2e {
        concurrency,
        events,
        stored_per_s: events as f64 / last.duration_since(started).as_secs_f64(),
        accepted_per_s: events as f64 / accepted_at.duration_since(started).as_secs_f64(),
        post_ms: Stats::of(
            &posted
                .iter()
                .map(|(_, t, e)| ms(e.duration_since(*t)))
                .collect::<Vec<_>>(),
        ),
        post_to_stored_ms: Stats::of(&stored),
        samples: stored,
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerRate {
    pub batch: i32,
    pub events: usize,
    pub events_per_s: f64,
    /// The emulator's REPORT Duration per invoke (what Lambda bills), ms.
    pub invoke_billed_ms: Stats,
}

async fn consumer_rate(
    stack: &Stack,
    consumer: &Pool,
    batch: i32,
    events: usize,
) -> Result<ConsumerRate> {
    use smartlead::aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let run = format!("rate-b{batch}-{}", std::process::id());
    for chunk in (0..events).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|&i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(open_body(&format!("{run}-{i}@bench.example"), i as u32))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        stack
            .sqs
            .send_message_batch()
            .queue_url(&stack.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    let offset = log_len(&stack.consumer.log);
    let started = Instant::now();
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored < events {
        if Instant::now() > deadline {
            bail!("batch {batch}: {stored} of {events} stored within 300 s");
        }
        stored += local::poll_once(stack, consumer, batch, 0)
            .await?
            .done
            .len();
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(ConsumerRate {
        batch,
        events,
        events_per_s: events as f64 / elapsed.as_secs_f64(),
        invoke_billed_ms: Stats::of(&report_durations(&log_lines(&stack.consumer.log, offset).0)),
    })
}

// -------------------------------------------------------------------- cost

#[derive(Debug, Clone, serde::Serialize)]
pub struct Units {
    pub payload: String,
    pub event_type: String,
    pub items: usize,
    /// Requests sent (one conditional UpdateItem per item, plus a retry
    /// per register stage that did not hold).
    pub transactions: u32,
    /// What DynamoDB Local reported (ReturnConsumedCapacity).
    pub reported_units: f64,
    /// By DynamoDB's rule: 1 unit per started KB of each item written
    /// (an UpdateItem bills the larger of the item before and after; items
    /// only grow here, so the size after the write).
    pub write_units: f64,
    pub item_bytes: Vec<usize>,
}

async fn write_units(root: &Path, stack: &Stack) -> Result<Vec<Units>> {
    let store = stack.store();
    let weights = smartlead::plan::ScoreWeights::default();
    let mut out = Vec::new();
    for (name, body) in payloads(root)? {
        let ev = smartlead::SmartleadEvent::from_slice(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let plan = smartlead::plan::plan(&ev, smartlead::time::EventTime::now(), &weights);
        match smartlead::store::StateStore::apply(&store, &plan, &format!("bench-{name}"))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        {
            smartlead::store::ApplyOutcome::Applied {
                transactions,
                write_units,
                ..
            } => {
                // No dedup marker: each item records the event's key itself.
                let keys: Vec<(String, String)> = plan
                    .items
                    .iter()
                    .map(|u| (u.pk.clone(), u.sk.clone()))
                    .collect();
                let mut item_bytes = Vec::new();
                for (pk, sk) in keys {
                    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
                    let item = stack
                        .ddb
                        .get_item()
                        .table_name(&stack.table)
                        .key("pk", AttributeValue::S(pk))
                        .key("sk", AttributeValue::S(sk))
                        .send()
                        .await?
                        .item
                        .unwrap_or_default();
                    item_bytes.push(smartlead::store::item_size(&item));
                }
                out.push(Units {
                    payload: name,
                    event_type: ev.event_type.as_str().to_owned(),
                    items: plan.items.len(),
                    transactions,
                    reported_units: write_units,
                    // One conditional UpdateItem per item: 1 unit per started KB.
                    write_units: item_bytes
                        .iter()
                        .map(|b| b.div_ceil(1024).max(1) as f64)
                        .sum(),
                    item_bytes,
                })
            }
            // An alias of an event already applied (same key): not a new cost.
            smartlead::store::ApplyOutcome::Duplicate => {}
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cost {
    pub front: String,
    pub lines: Vec<(String, f64)>,
    /// The pipeline: front, functions, queue, state, logs.
    pub total: f64,
    /// What the fan-out (on by default) adds: PutEvents, marking it done, reading the state.
    pub fanout: Vec<(String, f64)>,
    pub total_with_fanout: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CostInputs {
    pub typical_wru: f64,
    pub ingest_billed_ms: f64,
    pub consumer_batch10_billed_ms: f64,
    pub ingest_memory_mb: f64,
    pub consumer_memory_mb: f64,
    pub log_bytes_per_event: f64,
    pub batch: f64,
}

fn cost(inputs: &CostInputs, http_api: bool) -> Cost {
    let i = inputs;
    let gb_s = |billed_ms: f64, mb: f64| billed_ms.ceil() / 1000.0 * mb / 1024.0;
    let mut lines = Vec::new();
    if http_api {
        lines.push((
            "API Gateway HTTP API (1 request)".to_owned(),
            Prices::HTTP_API_PER_M,
        ));
    }
    lines.push((
        format!("Lambda requests (1 ingest + 1/{} consumer)", i.batch),
        (1.0 + 1.0 / i.batch) * Prices::LAMBDA_REQUESTS_PER_M,
    ));
    lines.push((
        "Lambda compute, arm64 (ingest + consumer share)".to_owned(),
        1e6 * Prices::LAMBDA_ARM_GB_S
            * (gb_s(i.ingest_billed_ms, i.ingest_memory_mb)
                + gb_s(i.consumer_batch10_billed_ms, i.consumer_memory_mb) / i.batch),
    ));
    lines.push((
        format!("SQS requests (1 send + 2/{} receive and delete)", i.batch),
        (1.0 + 2.0 / i.batch) * Prices::SQS_PER_M,
    ));
    lines.push((
        format!("DynamoDB writes ({} WRU)", f(i.typical_wru, 1)),
        i.typical_wru * Prices::DDB_WRU_PER_M,
    ));
    lines.push((
        format!("CloudWatch Logs ({} bytes)", f(i.log_bytes_per_event, 0)),
        i.log_bytes_per_event * 1e6 / 1e9 * Prices::LOGS_PER_GB,
    ));
    let total: f64 = lines.iter().map(|(_, v)| v).sum();
    let fanout = vec![
        (
            "EventBridge PutEvents (1 entry)".to_owned(),
            Prices::EVENTBRIDGE_PER_M,
        ),
        (
            // The state comes from the write's own answer: no read.
            "fan-out bookkeeping (1 WRU outcome mark)".to_owned(),
            Prices::DDB_WRU_PER_M,
        ),
    ];
    let total_with_fanout = total + fanout.iter().map(|(_, v)| v).sum::<f64>();
    Cost {
        front: if http_api { "HTTP API" } else { "Function URL" }.into(),
        lines,
        total,
        fanout,
        total_with_fanout,
    }
}

// ----------------------------------------------------------------- report

#[derive(Debug, serde::Serialize)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub quick: bool,
    pub criterion: Vec<Criterion>,
    pub handler_tails: Vec<HandlerTail>,
    pub consumer_direct: ConsumerDirect,
    /// The same with the fan-out publishing to moto's EventBridge.
    pub consumer_direct_fanout: ConsumerDirect,
    pub functions: Vec<FunctionFigures>,
    pub e2e: Vec<E2e>,
    pub consumer: Vec<ConsumerRate>,
    pub units: Vec<Units>,
    pub cost_inputs: CostInputs,
    pub costs: Vec<Cost>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k / 1024 / 1024)
        .unwrap_or(0);
    format!(
        "{cpu}, {cores} cores, {mem} GiB, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn template_memory(root: &Path, function: &str) -> Result<f64> {
    let t = crate::template::Template::load(root)?;
    let p = t.props(function)?;
    t.resolve(&p["MemorySize"])
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{function} MemorySize"))
}

pub fn run(root: &Path, opts: BenchOptions) -> Result<()> {
    if !opts.skip_criterion {
        println!("== criterion (in process)");
        run_criterion(root, opts.quick)?;
    }
    let criterion = read_criterion()?;
    println!("== release build");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "smartlead-ingest",
            "-p",
            "smartlead-consumer",
        ])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    println!("== ingest handler, one request at a time");
    let handler_tails = handler_tails(if opts.quick { 5_000 } else { 50_000 })?;
    let rt = tokio::runtime::Runtime::new()?;
    let results = rt.block_on(measure(root, &opts, criterion, handler_tails))?;
    write(root, &results)
}

async fn measure(
    root: &Path,
    opts: &BenchOptions,
    criterion: Vec<Criterion>,
    handler_tails: Vec<HandlerTail>,
) -> Result<Results> {
    let (rounds, warm, events, rate_events) = if opts.quick {
        (3, 50, 100, 100)
    } else {
        (15, 300, 400, 300)
    };
    let options = Options {
        bin_dir: local::target_dir().join("release"),
        ingest_instances: 4,
        visibility_secs: 30,
        metrics: true,
        dynamodb_dir: None,
        slack_url: None,
        // moto's EventBridge takes ~150 ms a PutEvents here and would hide
        // the pipeline's own figures; the fan-out is measured on its own.
        fanout: false,
        webhook_secret: local::TOKEN.into(),
        moto_all_interfaces: false,
    };
    let ports = Ports::free(options.ingest_instances);
    println!("== local stack (release binaries)");
    let stack = Arc::new(local::start(root, &ports, &options).await?);

    println!("== consumer handler against DynamoDB Local, batches of 10");
    let consumer_direct =
        run_consumer_direct(&stack, if opts.quick { 500 } else { 3000 }, false).await?;
    let consumer_direct_fanout =
        run_consumer_direct(&stack, if opts.quick { 200 } else { 500 }, true).await?;
    println!(
        "{} events/s, {} DynamoDB requests per event",
        f(consumer_direct.events_per_s, 0),
        f(consumer_direct.dynamodb_requests_per_event, 2)
    );
    println!("== cold and warm invokes under the RIE");
    let mut functions = Vec::new();
    for function in ["ingest", "consumer"] {
        let fig = function_figures(&stack, function, rounds, warm).await?;
        println!(
            "{function}: cold p50 {} ms, warm p50 {} ms, RSS {} KiB, {} bytes",
            f(fig.cold_start_ms.p50, 1),
            f(fig.warm_ms.p50, 2),
            fig.peak_rss_kib,
            fig.binary_bytes
        );
        functions.push(fig);
    }

    println!("== end to end over HTTP");
    let front = stack.serve_front().await?;
    let consumer = Pool::new(vec![stack.consumer_url()]);
    let done: DoneMap = Arc::new(Mutex::new(HashMap::new()));
    let pollers = spawn_pollers(stack.clone(), consumer.clone(), done.clone(), 2);
    // Warm every instance first: the figures are for a warm pipeline.
    e2e(stack.ports.http, &done, options.ingest_instances * 4, 40).await?;
    let mut e2es = Vec::new();
    let mut log_bytes_per_event = f64::NAN;
    for c in [1, 8, 32] {
        let ingest_offsets: Vec<u64> = stack.ingest.iter().map(|s| log_len(&s.log)).collect();
        let consumer_offset = log_len(&stack.consumer.log);
        let r = e2e(stack.ports.http, &done, c, events).await?;
        if c == 8 {
            // Steady state, batches as full as the pollers make them.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut bytes = json_log_bytes(&log_lines(&stack.consumer.log, consumer_offset).0);
            for (s, off) in stack.ingest.iter().zip(&ingest_offsets) {
                bytes += json_log_bytes(&log_lines(&s.log, *off).0);
            }
            log_bytes_per_event = bytes as f64 / events as f64;
        }
        println!(
            "concurrency {c}: {} stored/s, POST-to-stored p50 {} ms p99 {} ms",
            f(r.stored_per_s, 0),
            f(r.post_to_stored_ms.p50, 1),
            f(r.post_to_stored_ms.p99, 1)
        );
        e2es.push(r);
    }
    for p in pollers {
        p.abort();
    }
    front.abort();
    // An aborted long poll still runs in moto for its wait time and would
    // hide the next messages behind their visibility timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut peak = 0;
    for s in &stack.ingest {
        for child in s.pid().map(local_aws::children).unwrap_or_default() {
            peak = peak.max(local_aws::peak_rss_kib(child).unwrap_or(0));
        }
    }
    functions[0].peak_rss_kib = functions[0].peak_rss_kib.max(peak);
    let mut peak = 0;
    for child in stack
        .consumer
        .pid()
        .map(local_aws::children)
        .unwrap_or_default()
    {
        peak = peak.max(local_aws::peak_rss_kib(child).unwrap_or(0));
    }
    functions[1].peak_rss_kib = functions[1].peak_rss_kib.max(peak);

    println!("== consumer throughput by batch size");
    let mut rates = Vec::new();
    for batch in [1, 10] {
        let r = consumer_rate(&stack, &consumer, batch, rate_events).await?;
        println!("batch {batch}: {} events/s", f(r.events_per_s, 0));
        rates.push(r);
    }

    println!("== DynamoDB write units per event type");
    let units = write_units(root, &stack).await?;
    let typical: Vec<f64> = units
        .iter()
        .filter(|u| {
            ["EMAIL_SENT", "EMAIL_OPEN", "EMAIL_LINK_CLICK"].contains(&u.event_type.as_str())
        })
        .map(|u| u.write_units)
        .collect();
    let cost_inputs = CostInputs {
        typical_wru: typical.iter().sum::<f64>() / typical.len().max(1) as f64,
        ingest_billed_ms: functions[0].warm_billed_ms.p50,
        consumer_batch10_billed_ms: rates[1].invoke_billed_ms.p50,
        ingest_memory_mb: template_memory(root, "IngestFunction")?,
        consumer_memory_mb: template_memory(root, "ConsumerFunction")?,
        log_bytes_per_event,
        batch: 10.0,
    };
    let costs = vec![cost(&cost_inputs, true), cost(&cost_inputs, false)];
    Ok(Results {
        date: smartlead::time::EventTime::now().to_string(),
        machine: machine(),
        quick: opts.quick,
        criterion,
        handler_tails,
        consumer_direct,
        consumer_direct_fanout,
        functions,
        e2e: e2es,
        consumer: rates,
        units,
        cost_inputs,
        costs,
    })
}

/// A cumulative distribution of POST-to-stored latency per concurrency, as SVG.
pub fn latency_svg(e2es: &[E2e]) -> String {
    let (w, h, left, bottom, top, right) = (800.0, 400.0, 60.0, 50.0, 30.0, 230.0);
    let all: Vec<f64> = e2es
        .iter()
        .flat_map(|e| e.samples.iter().copied())
        .filter(|x| *x > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.1)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1.0)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let x = |v: f64| left + (v.max(0.1).log10() - lo) / (hi - lo) * (w - left - right);
    let y = |q: f64| top + (1.0 - q) * (h - top - bottom);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">POST-to-stored latency, local stack (cumulative share of webhooks)</text>
"##,
        (w - right + left) / 2.0
    );
    let mut d = lo;
    while d <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(d) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"##,
                x(v),
                y(1.0),
                y(0.0),
                y(0.0) + 16.0,
                if v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            );
        }
        d += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}%</text>"##,
            y(q),
            w - right,
            left - 6.0,
            y(q) + 4.0,
            q * 100.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">milliseconds (log scale)</text>"##,
        (w - right + left) / 2.0,
        h - 10.0
    );
    for (i, e) in e2es.iter().enumerate() {
        let color = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][i % 4];
        let mut v = e.samples.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, ms)| format!("{:.1},{:.1}", x(*ms), y((k + 1) as f64 / n)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let ly = top + 20.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}" stroke="{color}" stroke-width="3"/><text x="{3:.1}" y="{4:.1}">concurrency {5} (p50 {6} ms)</text>"##,
            w - right + 10.0,
            ly,
            w - right + 30.0,
            w - right + 34.0,
            ly + 4.0,
            e.concurrency,
            f(e.post_to_stored_ms.p50, 0)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn markdown(r: &Results) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "Measured {} on {}{}.\n",
        r.date,
        r.machine,
        if r.quick {
            " (QUICK run: few repetitions)"
        } else {
            ""
        }
    );
    let get = |id: &str| r.criterion.iter().find(|c| c.id == id);
    m.push_str("### Targets\n\n| target | figure | met |\n|---|---|---|\n");
    let mut target = |name: &str, figure: String, ok: bool| {
        let _ = writeln!(
            m,
            "| {name} | {figure} | {} |",
            if ok { "yes" } else { "**no**" }
        );
    };
    if let Some(c) = get("ingest_handler/1KB") {
        target(
            "ingest handler p50 < 20 µs (1 KB)",
            format!("{} µs", f(c.median_ns / 1000.0, 2)),
            c.median_ns < 20_000.0,
        );
    }
    for fig in &r.functions {
        target(
            &format!("{} first invoke < 50 ms locally", fig.name),
            format!("{} ms p50 from process start", f(fig.cold_start_ms.p50, 1)),
            fig.cold_start_ms.p50 < 50.0,
        );
    }
    for fig in &r.functions {
        target(
            &format!("{} RSS < 30 MB", fig.name),
            format!("{} MB peak", f(fig.peak_rss_kib as f64 / 1024.0, 1)),
            fig.peak_rss_kib < 30 * 1024,
        );
    }
    for fig in &r.functions {
        // What deploys (arm64, from sam build) when it was built; else the host build.
        let (bytes, what) = match fig.arm64_bytes {
            Some(b) => (b, "arm64 sam build"),
            None => (fig.binary_bytes, "host release build"),
        };
        target(
            &format!("{} binary < 10 MB", fig.name),
            format!("{} MB stripped ({what})", f(bytes as f64 / 1048576.0, 2)),
            bytes < 10 * 1048576,
        );
    }
    target(
        "consumer ≥ 600 events/s against DynamoDB Local (batch 10)",
        format!("{} events/s", f(r.consumer_direct.events_per_s, 0)),
        r.consumer_direct.events_per_s >= 600.0,
    );
    let ci = &r.cost_inputs;
    target(
        "1 DynamoDB write unit per typical event (issue 14)",
        format!("{} WRU (mean of sent/open/click)", f(ci.typical_wru, 2)),
        ci.typical_wru <= 1.0,
    );
    let most = r.units.iter().map(|u| u.write_units).fold(0.0, f64::max);
    target(
        "no event type above 2 write units",
        format!("{} WRU at most", f(most, 0)),
        most <= 2.0,
    );
    target(
        "≤ 400 bytes of logs per webhook",
        format!("{} bytes", f(ci.log_bytes_per_event, 0)),
        ci.log_bytes_per_event <= 400.0,
    );
    for (front, max) in [("HTTP API", 2.75), ("Function URL", 1.75)] {
        if let Some(c) = r.costs.iter().find(|c| c.front == front) {
            target(
                &format!("≤ USD {max} per million webhooks ({front}, without the fan-out)"),
                format!(
                    "USD {} (USD {} with the default fan-out)",
                    f(c.total, 2),
                    f(c.total_with_fanout, 2)
                ),
                c.total <= max,
            );
        }
    }
    if let Some(c) = r.costs.first() {
        let share = c.total_with_fanout - c.total;
        target(
            "the fan-out's share ≤ USD 1.10 per million",
            format!("USD {} (PutEvents alone is 1.00)", f(share, 2)),
            share <= 1.10,
        );
    }
    m.push_str("\n### In process (criterion; median, 95% interval of the median, MAD)\n\n| benchmark | median | interval | MAD |\n|---|---|---|---|\n");
    for c in &r.criterion {
        let _ = writeln!(
            m,
            "| {} | {} µs | {}–{} µs | {} µs |",
            c.id,
            f(c.median_ns / 1000.0, 2),
            f(c.low_ns / 1000.0, 2),
            f(c.high_ns / 1000.0, 2),
            f(c.mad_ns / 1000.0, 2)
        );
    }
    if let (Some(a), Some(b)) = (get("ingest_handler/1KB"), get("ingest_handler/100KB")) {
        let _ = writeln!(
            m,
            "\n100 KB vs 1 KB ingest: {}x the time for 100x the bytes.",
            f(b.median_ns / a.median_ns, 1)
        );
    }
    m.push_str("\n### Ingest handler, one request at a time (in process, no-op queue; the first tenth discarded as warm-up)\n\n| body | requests | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n");
    for t in &r.handler_tails {
        let _ = writeln!(
            m,
            "| {} bytes | {} | {} µs | {} µs | {} µs | {} µs |",
            t.body_bytes,
            t.micros.n,
            f(t.micros.p50, 2),
            f(t.micros.p90, 2),
            f(t.micros.p99, 2),
            f(t.micros.max, 1)
        );
    }
    let c = &r.consumer_direct;
    let _ = writeln!(
        m,
        "\n### Consumer handler against DynamoDB Local (in process, batches of 10 distinct events)\n\n{} events: **{} events/s**, a batch p50 {} ms (p90 {} ms, p99 {} ms), {} DynamoDB requests per event.",
        c.events,
        f(c.events_per_s, 0),
        f(c.batch_ms.p50, 1),
        f(c.batch_ms.p90, 1),
        f(c.batch_ms.p99, 1),
        f(c.dynamodb_requests_per_event, 2)
    );
    let c = &r.consumer_direct_fanout;
    let _ = writeln!(
        m,
        "\nWith the fan-out on (PutEvents to moto's EventBridge, the done marks, the state reads): {} events: {} events/s, a batch p50 {} ms (p99 {} ms), {} DynamoDB requests per event. moto's PutEvents is the slow part here; the end-to-end runs below are without the fan-out for that reason.",
        c.events,
        f(c.events_per_s, 0),
        f(c.batch_ms.p50, 1),
        f(c.batch_ms.p99, 1),
        f(c.dynamodb_requests_per_event, 2)
    );
    m.push_str("\n### Under the Lambda RIE (release build, local stack)\n\n| function | binary (stripped, host / arm64) | peak RSS | process start → first answer p50 (p90) | bootstrap init p50 | warm invoke p50 / p99 | billed duration p50 |\n|---|---|---|---|---|---|---|\n");
    for fig in &r.functions {
        let _ = writeln!(
            m,
            "| {} | {} / {} MB | {} MB | {} ms ({} ms) | {} ms | {} / {} ms | {} ms |",
            fig.name,
            f(fig.binary_bytes as f64 / 1048576.0, 2),
            fig.arm64_bytes
                .map(|b| f(b as f64 / 1048576.0, 2))
                .unwrap_or_else(|| "not built".into()),
            f(fig.peak_rss_kib as f64 / 1024.0, 1),
            f(fig.cold_start_ms.p50, 1),
            f(fig.cold_start_ms.p90, 1),
            f(fig.init_ms.p50, 1),
            f(fig.warm_ms.p50, 2),
            f(fig.warm_ms.p99, 2),
            f(fig.warm_billed_ms.p50, 2)
        );
    }
    m.push_str("\n### End to end over HTTP (front → ingest ×4 → SQS → poller ×2 → consumer → DynamoDB Local; fan-out off)\n\n| concurrency | events | stored/s | accepted/s | POST p50 / p99 | POST-to-stored p50 | p90 | p99 |\n|---|---|---|---|---|---|---|---|\n");
    for e in &r.e2e {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} / {} ms | {} ms | {} ms | {} ms |",
            e.concurrency,
            e.events,
            f(e.stored_per_s, 0),
            f(e.accepted_per_s, 0),
            f(e.post_ms.p50, 1),
            f(e.post_ms.p99, 1),
            f(e.post_to_stored_ms.p50, 1),
            f(e.post_to_stored_ms.p90, 1),
            f(e.post_to_stored_ms.p99, 1)
        );
    }
    if let (Some(a), Some(b)) = (r.e2e.first(), r.e2e.last()) {
        let _ = writeln!(
            m,
            "\nConcurrency {} vs {}: {}x the throughput.",
            b.concurrency,
            a.concurrency,
            f(b.stored_per_s / a.stored_per_s, 1)
        );
    }
    m.push_str("\n![POST-to-stored latency](bench/latency.svg)\n");
    m.push_str("\n### Consumer by batch size (queue pre-filled, one poller, one instance)\n\n");
    m.push_str("| batch size | events | events/s | billed duration per invoke p50 (p90) |\n|---|---|---|---|\n");
    for c in &r.consumer {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} ms ({} ms) |",
            c.batch,
            c.events,
            f(c.events_per_s, 0),
            f(c.invoke_billed_ms.p50, 1),
            f(c.invoke_billed_ms.p90, 1)
        );
    }
    if let [a, b] = &r.consumer[..] {
        let _ = writeln!(
            m,
            "\nBatch 10 vs batch 1: {}x the events per second.",
            f(b.events_per_s / a.events_per_s, 1)
        );
    }
    m.push_str("\n### DynamoDB write units per processed event (each payload applied once, in order, to one table)\n\n| payload | event type | items | item bytes after | requests | write units by DynamoDB's rule | DynamoDB Local reported |\n|---|---|---|---|---|---|---|\n");
    for u in &r.units {
        let bytes: Vec<String> = u.item_bytes.iter().map(usize::to_string).collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            u.payload,
            u.event_type,
            u.items,
            bytes.join(" + "),
            u.transactions,
            f(u.write_units, 1),
            f(u.reported_units, 1)
        );
    }
    let _ = writeln!(m, "\n### Cost per million webhooks\n\n{}. Inputs: typical event {} WRU; ingest billed {} ms at {} MB; consumer billed {} ms per batch of {} at {} MB; {} bytes of JSON logs per webhook (both functions, EMF included, platform lines off).\n",
        Prices::AS_OF, f(ci.typical_wru, 1), f(ci.ingest_billed_ms, 2), ci.ingest_memory_mb, f(ci.consumer_batch10_billed_ms, 2), ci.batch, ci.consumer_memory_mb, f(ci.log_bytes_per_event, 0));
    m.push_str("| item | HTTP API front | Function URL front |\n|---|---|---|\n");
    if let [api, url] = &r.costs[..] {
        for (label, v) in &api.lines {
            let other = url
                .lines
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| *v)
                .unwrap_or(0.0);
            let _ = writeln!(m, "| {label} | {} | {} |", f(*v, 3), f(other, 3));
        }
        let _ = writeln!(
            m,
            "| **pipeline total (USD)** | **{}** | **{}** |",
            f(api.total, 2),
            f(url.total, 2)
        );
        for (label, v) in &api.fanout {
            let _ = writeln!(m, "| + {label} | {} | {} |", f(*v, 3), f(*v, 3));
        }
        let _ = writeln!(
            m,
            "| **with the fan-out (template default)** | **{}** | **{}** |",
            f(api.total_with_fanout, 2),
            f(url.total_with_fanout, 2)
        );
    }
    m
}

fn write(root: &Path, r: &Results) -> Result<()> {
    let dir = root.join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(r)? + "\n",
    )?;
    std::fs::write(dir.join("latency.svg"), latency_svg(&r.e2e))?;
    let doc_path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let (start, end) = ("<!-- results:start -->", "<!-- results:end -->");
    let generated = markdown(r);
    let doc = match (doc.find(start), doc.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{start}\n{generated}{}", &doc[..a], &doc[b..]),
        _ => format!("{doc}\n## Results\n\n{start}\n{generated}{end}\n"),
    };
    std::fs::write(&doc_path, doc)?;
    println!("{generated}");
    println!("wrote BENCHMARKS.md, bench/results.json, bench/latency.svg");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v);
        assert_eq!(
            (s.min, s.p50, s.p99, s.max, s.n),
            (1.0, 51.0, 99.0, 100.0, 100)
        );
        assert!(Stats::of(&[]).p50.is_nan());
    }

    #[test]
    fn emulator_report_lines_parse() {
        let lines = vec![
            "27 Nov 2026 05:30:49,561 [INFO] (rapid) INIT REPORT(durationMs: 43.933000)".to_owned(),
            "REPORT RequestId: x\tInit Duration: 0.02 ms\tDuration: 55.47 ms\tBilled Duration: 56 ms\t".to_owned(),
            "REPORT RequestId: y\tDuration: 5.11 ms\tBilled Duration: 6 ms\t".to_owned(),
            "{\"level\":\"INFO\"}".to_owned(),
        ];
        assert_eq!(report_durations(&lines), vec![55.47, 5.11]);
        assert_eq!(init_duration(&lines), Some(43.933));
        assert_eq!(json_log_bytes(&lines), 17);
    }

    #[test]
    fn cost_adds_up_and_the_function_url_saves_the_api() {
        let inputs = CostInputs {
            typical_wru: 1.0,
            ingest_billed_ms: 9.2,
            consumer_batch10_billed_ms: 40.0,
            ingest_memory_mb: 128.0,
            consumer_memory_mb: 256.0,
            log_bytes_per_event: 1000.0,
            batch: 10.0,
        };
        let api = cost(&inputs, true);
        let url = cost(&inputs, false);
        assert!((api.total - url.total - Prices::HTTP_API_PER_M).abs() < 1e-9);
        // PutEvents and one outcome mark; no state read.
        assert!((api.total_with_fanout - api.total - 1.0 - 0.625).abs() < 1e-9);
        // 1 WRU at 0.625, 1.2 SQS requests at 0.40, 1.1 Lambda requests at 0.20, 1000 log bytes.
        let fixed = 0.625 + 0.48 + 0.22 + 0.5;
        assert!(
            url.total > fixed && url.total < fixed + 0.1,
            "{}",
            url.total
        );
    }

    #[test]
    fn the_chart_draws_one_line_per_concurrency() {
        let e = |c: usize| E2e {
            concurrency: c,
            events: 3,
            stored_per_s: 1.0,
            accepted_per_s: 1.0,
            post_ms: Stats::of(&[1.0]),
            post_to_stored_ms: Stats::of(&[5.0, 10.0, 200.0]),
            samples: vec![5.0, 10.0, 200.0],
        };
        let svg = latency_svg(&[e(1), e(8)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.ends_with("</svg>\n"));
    }
}
