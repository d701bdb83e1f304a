//! The results part of BENCHMARKS.md.
#[allow(unused_imports)]
use super::*;

pub(crate) fn markdown(r: &Results) -> String {
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
    for section in [
        targets,
        in_process,
        handler_tail,
        consumer_direct,
        under_the_emulator,
        end_to_end,
        by_batch_size,
        write_units,
        cost,
    ] {
        section(&mut m, r);
    }
    m
}

/// A table row: `| a | b | ... |`.
fn row(m: &mut String, cells: &[String]) {
    let _ = writeln!(m, "| {} |", cells.join(" | "));
}

/// A comparison sentence: `what: 2.5x of.`
fn times(m: &mut String, what: &str, x: f64, of: &str) {
    let _ = writeln!(m, "\n{what}: {}x {of}.", f(x, 1));
}

/// A target: what, the figure measured, whether it is met.
type Target = (String, String, bool);

/// The targets table.
fn targets(m: &mut String, r: &Results) {
    m.push_str("### Targets\n\n| target | figure | met |\n|---|---|---|\n");
    let all = handler_target(r)
        .into_iter()
        .chain(function_targets(r))
        .chain(pipeline_targets(r))
        .chain(cost_targets(r));
    for (name, figure, ok) in all {
        let met = if ok { "yes" } else { "**no**" };
        row(m, &[name, figure, met.to_owned()]);
    }
}

fn handler_target(r: &Results) -> Option<Target> {
    let c = r.criterion.iter().find(|c| c.id == "ingest_handler/1KB")?;
    Some((
        "ingest handler p50 < 20 µs (1 KB)".into(),
        format!("{} µs", f(c.median_ns / 1000.0, 2)),
        c.median_ns < 20_000.0,
    ))
}

/// First invoke, RSS and binary size of each function.
fn function_targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    for fig in &r.functions {
        out.push((
            format!("{} first invoke < 50 ms locally", fig.name),
            format!("{} ms p50 from process start", f(fig.cold_start_ms.p50, 1)),
            fig.cold_start_ms.p50 < 50.0,
        ));
    }
    for fig in &r.functions {
        out.push((
            format!("{} RSS < 30 MB", fig.name),
            format!("{} MB peak", f(fig.peak_rss_kib as f64 / 1024.0, 1)),
            fig.peak_rss_kib < 30 * 1024,
        ));
    }
    for fig in &r.functions {
        // What deploys (arm64, from sam build) when it was built; else the host build.
        let (bytes, what) = match fig.arm64_bytes {
            Some(b) => (b, "arm64 sam build"),
            None => (fig.binary_bytes, "host release build"),
        };
        out.push((
            format!("{} binary < 10 MB", fig.name),
            format!("{} MB stripped ({what})", f(bytes as f64 / 1048576.0, 2)),
            bytes < 10 * 1048576,
        ));
    }
    out
}

/// Consumer rate, write units and log bytes.
fn pipeline_targets(r: &Results) -> Vec<Target> {
    let ci = &r.cost_inputs;
    let most = r.units.iter().map(|u| u.write_units).fold(0.0, f64::max);
    vec![
        (
            "consumer ≥ 600 events/s against DynamoDB Local (batch 10)".into(),
            format!("{} events/s", f(r.consumer_direct.events_per_s, 0)),
            r.consumer_direct.events_per_s >= 600.0,
        ),
        (
            "1 DynamoDB write unit per typical event".into(),
            format!(
                "{} WRU (mean of a repeat sent/open/click)",
                f(ci.typical_wru, 2)
            ),
            ci.typical_wru <= 1.0,
        ),
        (
            "index writes ≤ +0.15 WRU per event".into(),
            format!(
                "+{} WRU (`xtask scale`'s book, 2,000 leads)",
                f(ci.index_wru, 3)
            ),
            ci.index_wru <= 0.15,
        ),
        (
            "no event type above 2 write units".into(),
            format!("{} WRU at most", f(most, 0)),
            most <= 2.0,
        ),
        (
            "≤ 400 bytes of logs per webhook".into(),
            format!("{} bytes", f(ci.log_bytes_per_event, 0)),
            ci.log_bytes_per_event <= 400.0,
        ),
    ]
}

/// The bill per million webhooks per front, and the fan-out's share.
fn cost_targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    for (front, max) in [("HTTP API", 2.75), ("Function URL", 1.75)] {
        if let Some(c) = r.costs.iter().find(|c| c.front == front) {
            out.push((
                format!("≤ USD {max} per million webhooks ({front}, without the fan-out)"),
                format!(
                    "USD {} (USD {} with the default fan-out)",
                    f(c.total, 2),
                    f(c.total_with_fanout, 2)
                ),
                c.total <= max,
            ));
        }
    }
    if let Some(c) = r.costs.first() {
        let share = c.total_with_fanout - c.total;
        out.push((
            "the fan-out's share ≤ USD 1.10 per million".into(),
            format!("USD {} (PutEvents alone is 1.00)", f(share, 2)),
            share <= 1.10,
        ));
    }
    out
}

/// Criterion's figures.
fn in_process(m: &mut String, r: &Results) {
    let get = |id: &str| r.criterion.iter().find(|c| c.id == id);
    m.push_str("\n### In process (criterion; median, 95% interval of the median, MAD)\n\n| benchmark | median | interval | MAD |\n|---|---|---|---|\n");
    for c in &r.criterion {
        let us = |ns: f64| f(ns / 1000.0, 2);
        row(
            m,
            &[
                c.id.clone(),
                format!("{} µs", us(c.median_ns)),
                format!("{}–{} µs", us(c.low_ns), us(c.high_ns)),
                format!("{} µs", us(c.mad_ns)),
            ],
        );
    }
    if let (Some(a), Some(b)) = (get("ingest_handler/1KB"), get("ingest_handler/100KB")) {
        let x = b.median_ns / a.median_ns;
        times(m, "100 KB vs 1 KB ingest", x, "the time for 100x the bytes");
    }
}

/// The ingest handler's tail.
fn handler_tail(m: &mut String, r: &Results) {
    m.push_str("\n### Ingest handler, one request at a time (in process, no-op queue; the first tenth discarded as warm-up)\n\n| body | requests | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n");
    for t in &r.handler_tails {
        let us = |x: f64, digits: usize| format!("{} µs", f(x, digits));
        row(
            m,
            &[
                format!("{} bytes", t.body_bytes),
                t.micros.n.to_string(),
                us(t.micros.p50, 2),
                us(t.micros.p90, 2),
                us(t.micros.p99, 2),
                us(t.micros.max, 1),
            ],
        );
    }
}

/// The consumer against DynamoDB Local, in process.
fn consumer_direct(m: &mut String, r: &Results) {
    let c = &r.consumer_direct;
    let spread = format!(
        "p90 {} ms, p99 {} ms",
        f(c.batch_ms.p90, 1),
        f(c.batch_ms.p99, 1)
    );
    let rate = format!("**{} events/s**", f(c.events_per_s, 0));
    let _ = writeln!(
        m,
        "\n### Consumer handler against DynamoDB Local (in process, batches of 10 distinct events)\n\n{}.",
        direct_figures(c, &rate, &spread)
    );
    let c = &r.consumer_direct_fanout;
    let spread = format!("p99 {} ms", f(c.batch_ms.p99, 1));
    let rate = format!("{} events/s", f(c.events_per_s, 0));
    let _ = writeln!(
        m,
        "\nWith the fan-out on (PutEvents to moto's EventBridge, the done marks, the state reads): {}. moto's PutEvents is the slow part here; the end-to-end runs below are without the fan-out for that reason.",
        direct_figures(c, &rate, &spread)
    );
}

/// `N events: <rate>, a batch p50 X ms (<spread>), Y DynamoDB requests per event`.
fn direct_figures(c: &ConsumerDirect, rate: &str, spread: &str) -> String {
    format!(
        "{} events: {rate}, a batch p50 {} ms ({spread}), {} DynamoDB requests per event",
        c.events,
        f(c.batch_ms.p50, 1),
        f(c.dynamodb_requests_per_event, 2)
    )
}

/// The release binaries under the Lambda RIE.
fn under_the_emulator(m: &mut String, r: &Results) {
    m.push_str("\n### Under the Lambda RIE (release build, local stack)\n\n| function | binary (stripped, host / arm64) | peak RSS | process start → first answer p50 (p90) | bootstrap init p50 | warm invoke p50 / p99 | billed duration p50 |\n|---|---|---|---|---|---|---|\n");
    for fig in &r.functions {
        let mb = |b: u64| f(b as f64 / 1048576.0, 2);
        row(
            m,
            &[
                fig.name.clone(),
                format!(
                    "{} / {} MB",
                    mb(fig.binary_bytes),
                    fig.arm64_bytes
                        .map(mb)
                        .unwrap_or_else(|| "not built".into())
                ),
                format!("{} MB", f(fig.peak_rss_kib as f64 / 1024.0, 1)),
                format!(
                    "{} ms ({} ms)",
                    f(fig.cold_start_ms.p50, 1),
                    f(fig.cold_start_ms.p90, 1)
                ),
                format!("{} ms", f(fig.init_ms.p50, 1)),
                format!("{} / {} ms", f(fig.warm_ms.p50, 2), f(fig.warm_ms.p99, 2)),
                format!("{} ms", f(fig.warm_billed_ms.p50, 2)),
            ],
        );
    }
}

/// End to end over HTTP, and the chart.
fn end_to_end(m: &mut String, r: &Results) {
    m.push_str("\n### End to end over HTTP (front → ingest ×4 → SQS → poller ×2 → consumer → DynamoDB Local; fan-out off)\n\n| concurrency | events | stored/s | accepted/s | POST p50 / p99 | POST-to-stored p50 | p90 | p99 |\n|---|---|---|---|---|---|---|---|\n");
    for e in &r.e2e {
        let ms = |x: f64| format!("{} ms", f(x, 1));
        row(
            m,
            &[
                e.concurrency.to_string(),
                e.events.to_string(),
                f(e.stored_per_s, 0),
                f(e.accepted_per_s, 0),
                format!("{} / {}", f(e.post_ms.p50, 1), ms(e.post_ms.p99)),
                ms(e.post_to_stored_ms.p50),
                ms(e.post_to_stored_ms.p90),
                ms(e.post_to_stored_ms.p99),
            ],
        );
    }
    if let (Some(a), Some(b)) = (r.e2e.first(), r.e2e.last()) {
        let what = format!("Concurrency {} vs {}", b.concurrency, a.concurrency);
        times(m, &what, b.stored_per_s / a.stored_per_s, "the throughput");
    }
    m.push_str("\n![POST-to-stored latency](bench/latency.svg)\n");
}

/// The consumer by batch size.
fn by_batch_size(m: &mut String, r: &Results) {
    m.push_str("\n### Consumer by batch size (queue pre-filled, one poller, one instance)\n\n");
    m.push_str("| batch size | events | events/s | billed duration per invoke p50 (p90) |\n|---|---|---|---|\n");
    for c in &r.consumer {
        row(
            m,
            &[
                c.batch.to_string(),
                c.events.to_string(),
                f(c.events_per_s, 0),
                format!(
                    "{} ms ({} ms)",
                    f(c.invoke_billed_ms.p50, 1),
                    f(c.invoke_billed_ms.p90, 1)
                ),
            ],
        );
    }
    if let [a, b] = &r.consumer[..] {
        let x = b.events_per_s / a.events_per_s;
        times(m, "Batch 10 vs batch 1", x, "the events per second");
    }
}

/// Write units per payload.
fn write_units(m: &mut String, r: &Results) {
    m.push_str("\n### DynamoDB write units per processed event (each payload applied once, in order, to one table)\n\n| payload | event type | items | item bytes after | requests | index write units (included) | write units by DynamoDB's rule | DynamoDB Local reported |\n|---|---|---|---|---|---|---|---|\n");
    for u in &r.units {
        let bytes: Vec<String> = u.item_bytes.iter().map(usize::to_string).collect();
        row(
            m,
            &[
                u.payload.clone(),
                u.event_type.clone(),
                u.items.to_string(),
                bytes.join(" + "),
                u.transactions.to_string(),
                f(u.index_units, 1),
                f(u.write_units, 1),
                f(u.reported_units, 1),
            ],
        );
    }
}

/// The bill per million webhooks.
fn cost(m: &mut String, r: &Results) {
    let ci = &r.cost_inputs;
    let _ = writeln!(m, "\n### Cost per million webhooks\n\n{}. Inputs: typical event {} WRU, and {} WRU of index writes per event (`xtask scale`'s book of 2,000 leads); ingest billed {} ms at {} MB; consumer billed {} ms per batch of {} at {} MB; {} bytes of JSON logs per webhook (both functions, EMF included, platform lines off).\n",
        Prices::AS_OF, f(ci.typical_wru, 1), f(ci.index_wru, 3), f(ci.ingest_billed_ms, 2), ci.ingest_memory_mb, f(ci.consumer_batch10_billed_ms, 2), ci.batch, ci.consumer_memory_mb, f(ci.log_bytes_per_event, 0));
    m.push_str("| item | HTTP API front | Function URL front |\n|---|---|---|\n");
    if let [api, url] = &r.costs[..] {
        for (label, v) in &api.lines {
            let other = url
                .lines
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| *v)
                .unwrap_or(0.0);
            row(m, &[label.clone(), f(*v, 3), f(other, 3)]);
        }
        let bold = |x: f64| format!("**{}**", f(x, 2));
        row(
            m,
            &[
                "**pipeline total (USD)**".into(),
                bold(api.total),
                bold(url.total),
            ],
        );
        for (label, v) in &api.fanout {
            row(m, &[format!("+ {label}"), f(*v, 3), f(*v, 3)]);
        }
        row(
            m,
            &[
                "**with the fan-out (template default)**".into(),
                bold(api.total_with_fanout),
                bold(url.total_with_fanout),
            ],
        );
    }
}
