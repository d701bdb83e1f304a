//! `cargo run --release -p xtask --bin bench` (xtask's second binary; what `scripts/bench.sh` runs):
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
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::{api_request, payloads, sqs_record};
use xtask::pipeline::{self, Options, Pool, Ports, Stack};

mod chart;
mod cost;
mod criterion;
mod e2e;
mod inproc;
mod markdown;
mod rie;

pub use chart::latency_svg;
use cost::*;
use criterion::*;
use e2e::*;
use inproc::*;
use markdown::*;
use rie::*;

/// Measure speed, memory and cost; writes BENCHMARKS.md, bench/results.json
/// and bench/latency.svg (run it with --release: `scripts/bench.sh`).
#[derive(clap::Parser)]
#[command(name = "bench")]
pub struct BenchOptions {
    /// Few repetitions: a quick look, not figures to publish.
    #[arg(long)]
    pub quick: bool,
    /// Use criterion's last results instead of running it again.
    #[arg(long)]
    pub skip_criterion: bool,
}

fn main() -> Result<()> {
    let opts = <BenchOptions as clap::Parser>::parse();
    run(&pipeline::workspace_root(), opts)
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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn f(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.digits$}")
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

pub(crate) fn machine() -> String {
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

pub(crate) fn template_memory(root: &Path, function: &str) -> Result<f64> {
    let t = pipeline::template::Template::load(root)?;
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
            // --bin at the root: the default members' features only, as
            // `sam build` builds them (see the root Cargo.toml).
            "--bin",
            "smartlead-ingest",
            "--bin",
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

pub(crate) async fn measure(
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
    let options = stack_options();
    let ports = Ports::free(options.ingest_instances);
    println!("== local stack (release binaries)");
    let stack = Arc::new(pipeline::start(root, &ports, &options).await?);

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
    let mut functions = measure_functions(&stack, rounds, warm).await?;
    let consumer = Pool::new(vec![stack.consumer_url()]);
    let (e2es, log_bytes_per_event) = measure_e2e(&stack, &consumer, events).await?;
    let peak = stack
        .ingest
        .iter()
        .map(|s| children_peak_rss(s.pid()))
        .max();
    functions[0].peak_rss_kib = functions[0].peak_rss_kib.max(peak.unwrap_or(0));
    let peak = children_peak_rss(stack.consumer.pid());
    functions[1].peak_rss_kib = functions[1].peak_rss_kib.max(peak);

    let rates = measure_rates(&stack, &consumer, rate_events).await?;

    println!("== DynamoDB write units per event type");
    let units = write_units(root, &stack).await?;
    let cost_inputs = cost_inputs(root, &units, &functions, &rates, log_bytes_per_event).await?;
    let costs = vec![cost(&cost_inputs, true), cost(&cost_inputs, false)];
    Ok(Results {
        date: smartlead::domain::time::EventTime::now().to_string(),
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

/// The indexes' write units per event on `xtask scale`'s book of 2,000
/// leads: what a table with them consumed beyond one without.
async fn index_share() -> Result<f64> {
    let endpoint = test_support::store::dynamodb().endpoint();
    let unique = test_support::store::unique;
    let store = test_support::store::store_at(&endpoint, &unique("book")).await;
    let bare = test_support::store::bare_store_at(&endpoint, &unique("bare")).await;
    let book = xtask::scale::Book {
        leads: 2_000,
        campaigns: 20,
        seed: 2026,
    };
    let f = xtask::scale::run(&store, &bare, book, 16).await?;
    Ok(f.index_write_units / f.events.max(1) as f64)
}

/// What the bill is computed from: the typical event's write units (sent,
/// open, click, less their index entries: a repeat's), the indexes' share
/// on a book of leads, the billed durations and the template's memory sizes.
async fn cost_inputs(
    root: &Path,
    units: &[Units],
    functions: &[FunctionFigures],
    rates: &[ConsumerRate],
    log_bytes_per_event: f64,
) -> Result<CostInputs> {
    let typical: Vec<f64> = units
        .iter()
        .filter(|u| {
            ["EMAIL_SENT", "EMAIL_OPEN", "EMAIL_LINK_CLICK"].contains(&u.event_type.as_str())
        })
        .map(|u| u.write_units - u.index_units)
        .collect();
    Ok(CostInputs {
        typical_wru: typical.iter().sum::<f64>() / typical.len().max(1) as f64,
        index_wru: index_share().await?,
        ingest_billed_ms: functions[0].warm_billed_ms.p50,
        consumer_batch10_billed_ms: rates[1].invoke_billed_ms.p50,
        ingest_memory_mb: template_memory(root, "IngestFunction")?,
        consumer_memory_mb: template_memory(root, "ConsumerFunction")?,
        log_bytes_per_event,
        batch: 10.0,
    })
}

/// The consumer's rate at batch sizes 1 and 10.
async fn measure_rates(stack: &Stack, consumer: &Pool, events: usize) -> Result<Vec<ConsumerRate>> {
    println!("== consumer throughput by batch size");
    let mut rates = Vec::new();
    for batch in [1, 10] {
        let r = consumer_rate(stack, consumer, batch, events).await?;
        println!("batch {batch}: {} events/s", f(r.events_per_s, 0));
        rates.push(r);
    }
    Ok(rates)
}

/// The local stack the benchmark runs: release binaries, 4 ingest
/// instances, metrics on, no fan-out.
fn stack_options() -> Options {
    Options {
        bin_dir: pipeline::target_dir().join("release"),
        ingest_instances: 4,
        visibility_secs: 30,
        metrics: true,
        dynamodb_dir: None,
        slack_url: None,
        // moto's EventBridge takes ~150 ms a PutEvents here and would hide
        // the pipeline's own figures; the fan-out is measured on its own.
        fanout: false,
        webhook_secret: pipeline::TOKEN.into(),
        moto_all_interfaces: false,
        clients: false,
    }
}

/// Cold and warm invokes of both functions under the RIE.
async fn measure_functions(
    stack: &Stack,
    rounds: usize,
    warm: u32,
) -> Result<Vec<FunctionFigures>> {
    println!("== cold and warm invokes under the RIE");
    let mut functions = Vec::new();
    for function in ["ingest", "consumer"] {
        let fig = function_figures(stack, function, rounds, warm).await?;
        println!(
            "{function}: cold p50 {} ms, warm p50 {} ms, RSS {} KiB, {} bytes",
            f(fig.cold_start_ms.p50, 1),
            f(fig.warm_ms.p50, 2),
            fig.peak_rss_kib,
            fig.binary_bytes
        );
        functions.push(fig);
    }
    Ok(functions)
}

/// POST-to-stored over HTTP at concurrency 1, 8 and 32, and the log bytes
/// per event at 8.
async fn measure_e2e(
    stack: &Arc<Stack>,
    consumer: &Pool,
    events: usize,
) -> Result<(Vec<E2e>, f64)> {
    println!("== end to end over HTTP");
    let front = stack.serve_front().await?;
    let done: DoneMap = Arc::new(Mutex::new(HashMap::new()));
    let pollers = spawn_pollers(stack.clone(), consumer.clone(), done.clone(), 2);
    // Warm every instance first: the figures are for a warm pipeline.
    e2e(stack.ports.http, &done, stack.ingest.len() * 4, 40).await?;
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
    Ok((e2es, log_bytes_per_event))
}

/// The peak RSS (KiB) of a process' children (the function under the RIE).
fn children_peak_rss(pid: Option<u32>) -> u64 {
    pid.map(test_support::standins::children)
        .unwrap_or_default()
        .into_iter()
        .map(|child| test_support::standins::peak_rss_kib(child).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

pub(crate) fn write(root: &Path, r: &Results) -> Result<()> {
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
            index_wru: 0.1,
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
