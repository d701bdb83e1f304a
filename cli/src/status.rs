//! `smartlead status`: the pipeline's health in one screen, and an exit code
//! for cron and CI (0 healthy, 2 something needs attention, 1 could not tell).
//!
//! The AWS calls are thin; what they return is gathered into [`Status`],
//! whose rendering and verdict ([`attention`]) are plain functions.

use crate::ops::{Stack, StackArgs};
use anyhow::Result;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StateValue};
use serde::Serialize;
use serde_json::Value;
use smartlead::adapters::aws::dynamodb::{item_to_json, REJECTED_TTL_DAYS};
use smartlead::aws_sdk_sqs::types::QueueAttributeName as Q;
use smartlead::domain::records::RecordKind;
use smartlead::domain::time::EventTime;
use std::collections::BTreeMap;

/// A count `status` reads: (label, metric, dimensions).
type Count = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The counts `status` reads: the metrics the functions publish (in the
/// stack's namespace, [`smartlead::metrics::stack_namespace`]).
pub const COUNTS: &[Count] = &[
    ("received", "Received", &[("Function", "ingest")]),
    ("refused by ingest", "Rejected", &[("Function", "ingest")]),
    ("processed", "Processed", &[("Function", "consumer")]),
    ("duplicates", "Duplicates", &[("Function", "consumer")]),
    ("rejected", "RejectedEvents", &[("Function", "consumer")]),
    (
        "unknown type",
        "Processed",
        &[("Function", "consumer"), ("EventType", "UNKNOWN")],
    ),
    ("failures", "Failures", &[("Function", "consumer")]),
    (
        "effect failures",
        "EffectsFailed",
        &[("Function", "consumer")],
    ),
    ("sent back", "WebhooksRequeued", &[("Function", "consumer")]),
];

/// Counts that mean something needs a look when not zero.
const BAD: &[&str] = &["rejected", "failures", "effect failures", "sent back"];

#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub stack: String,
    pub queue_waiting: Option<u64>,
    pub queue_in_flight: Option<u64>,
    /// Sent with a delay and not yet visible: webhooks the consumer sent
    /// back because their effects could not be queued.
    pub queue_delayed: Option<u64>,
    pub dlq: Option<u64>,
    /// Seconds (CloudWatch's `ApproximateAgeOfOldestMessage`; deployed only).
    pub oldest_age_secs: Option<f64>,
    /// Alarms of the stack in ALARM: (name, reason). None: not read (local).
    pub alarms: Option<Vec<(String, String)>>,
    /// Counts over the last hour and day, by label. None: no metrics (local).
    pub last_hour: Option<BTreeMap<String, f64>>,
    pub last_day: Option<BTreeMap<String, f64>>,
    /// Events that name no lead, kept in the table (UNATTRIBUTED records).
    pub unattributed_hour: u64,
    pub unattributed_day: u64,
    pub last_rejected: Option<Value>,
    pub last_unattributed: Option<Value>,
}

/// What needs attention; empty when all is well.
pub fn attention(s: &Status) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(d) = s.dlq.filter(|d| *d > 0) {
        a.push(format!(
            "{d} message(s) in the DLQ: find why they failed (the consumer's logs: docs/operating.md, Monitoring), fix, then `smartlead redrive`"
        ));
    }
    if let Some(d) = s.queue_delayed.filter(|d| *d > 0) {
        a.push(format!(
            "{d} webhook(s) sent back, delayed: the effects queue did not take their effects (the consumer's logs: \"effects not queued\"); they queue them when they come back"
        ));
    }
    for (name, reason) in s.alarms.iter().flatten() {
        a.push(format!("alarm {name} is in ALARM: {reason}"));
    }
    if let Some(h) = &s.last_hour {
        for label in BAD {
            if let Some(n) = h.get(*label).filter(|n| **n > 0.0) {
                a.push(format!("{n} {label} in the last hour"));
            }
        }
    }
    a
}

fn line(counts: &BTreeMap<String, f64>) -> String {
    COUNTS
        .iter()
        .map(|(label, _, _)| format!("{label} {}", counts.get(*label).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("?")
}

pub fn render(s: &Status) -> String {
    let mut out = format!("pipeline {}\n", s.stack);
    out.push_str(&format!(
        "  queue        {} waiting, {} in flight, {} delayed{}\n",
        opt(s.queue_waiting),
        opt(s.queue_in_flight),
        opt(s.queue_delayed),
        match s.oldest_age_secs {
            Some(a) => format!(", oldest {a:.0}s"),
            None => String::new(),
        }
    ));
    out.push_str(&format!("  DLQ          {}\n", opt(s.dlq)));
    match &s.alarms {
        Some(a) if a.is_empty() => out.push_str("  alarms       none in ALARM\n"),
        Some(a) => {
            for (name, _) in a {
                out.push_str(&format!("  alarm        {name} in ALARM\n"));
            }
        }
        None => out.push_str("  alarms       (none locally)\n"),
    }
    match (&s.last_hour, &s.last_day) {
        (Some(h), Some(d)) => {
            out.push_str(&format!("  last hour    {}\n", line(h)));
            out.push_str(&format!("  last day     {}\n", line(d)));
        }
        _ => out.push_str("  metrics      (the local stack publishes none)\n"),
    }
    out.push_str(&format!(
        "  unattributed {} in the last hour, {} in the last day (events naming no lead, kept in the table)\n",
        s.unattributed_hour, s.unattributed_day
    ));
    if let Some(r) = &s.last_rejected {
        out.push_str(&format!(
            "  last REJECTED     {} message {}: {} ({})\n",
            field(r, "received_at"),
            field(r, "message_id"),
            field(r, "reason"),
            field(r, "detail")
        ));
    }
    if let Some(u) = &s.last_unattributed {
        let sk = field(u, "sk");
        out.push_str(&format!(
            "  last UNATTRIBUTED {} {}: the event names neither a lead e-mail nor a lead id (`smartlead lead` cannot find it; the raw event is in the item {} / {})\n",
            sk.split('#').next().unwrap_or(sk),
            field(u, "event_type"),
            field(u, "pk"),
            sk
        ));
    }
    let a = attention(s);
    if a.is_empty() {
        out.push_str("OK: nothing needs attention\n");
    } else {
        out.push_str("NEEDS ATTENTION:\n");
        for x in a {
            out.push_str(&format!("  - {x}\n"));
        }
    }
    out
}

/// The queue's visible, in-flight and delayed messages.
async fn depth(stack: &Stack, url: &str) -> Result<(u64, u64, u64)> {
    let a = stack
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Q::ApproximateNumberOfMessages)
        .attribute_names(Q::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(Q::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(crate::aws_err(format!("reading queue {url}")))?
        .attributes
        .unwrap_or_default();
    let n = |k: Q| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((
        n(Q::ApproximateNumberOfMessages),
        n(Q::ApproximateNumberOfMessagesNotVisible),
        n(Q::ApproximateNumberOfMessagesDelayed),
    ))
}

/// `secs` from now (back when negative).
fn from_now(secs: i64) -> EventTime {
    let now = EventTime::now();
    EventTime::from_millis(now.millis() + secs * 1000).unwrap_or(now)
}

/// Days back the last REJECTED and UNATTRIBUTED records are looked for:
/// a REJECTED record lives [`REJECTED_TTL_DAYS`].
const LOOKBACK_DAYS: u32 = REJECTED_TTL_DAYS as u32 + 1;

/// The records `status` shows: the newest REJECTED and UNATTRIBUTED, and
/// how many UNATTRIBUTED the last hour and day kept.
async fn records(stack: &Stack, s: &mut Status) -> Result<()> {
    let store = stack.store();
    // An event's own time is believed up to a day ahead of its receipt.
    let until = from_now(86_400);
    let (rejected, unattributed) = (RecordKind::Rejected, RecordKind::Unattributed);
    // At once: each looks back day by day, 16 partitions a day.
    let (last_rejected, last_unattributed, hour, day) = tokio::try_join!(
        store.newest_record(rejected, until, LOOKBACK_DAYS),
        store.newest_record(unattributed, until, LOOKBACK_DAYS),
        store.count_records(unattributed, from_now(-3600), until),
        store.count_records(unattributed, from_now(-86_400), until),
    )
    .map_err(|e| anyhow::anyhow!("reading the records of table {}: {e}", stack.table))?;
    s.last_rejected = last_rejected.as_ref().map(item_to_json);
    s.last_unattributed = last_unattributed.as_ref().map(item_to_json);
    (s.unattributed_hour, s.unattributed_day) = (hour, day);
    Ok(())
}

/// One metric's statistic over periods of `period` seconds, as query `id`.
fn metric_query(
    id: String,
    ns: &str,
    name: &str,
    dims: &[(&str, &str)],
    period: i32,
    stat: &str,
) -> MetricDataQuery {
    let mut m = Metric::builder().namespace(ns).metric_name(name);
    for (k, v) in dims {
        m = m.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(m.build())
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// Sums of the [`COUNTS`] metrics in namespace `ns` (and the queue's
/// oldest age) over `secs` up to now.
async fn metric_sums(
    cw: &aws_sdk_cloudwatch::Client,
    ns: &str,
    secs: i64,
    queue_name: &str,
) -> Result<(BTreeMap<String, f64>, Option<f64>)> {
    // Whole minutes, the next one up: CloudWatch answers aligned times
    // best (moto only whole seconds), and the current minute counts.
    let end = chrono::Utc::now().timestamp().div_euclid(60) * 60 + 60;
    let start = end - secs;
    let mut req = cw
        .get_metric_data()
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_millis(
            start * 1000,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_millis(
            end * 1000,
        ));
    for (i, (_, name, dims)) in COUNTS.iter().enumerate() {
        req = req.metric_data_queries(metric_query(
            format!("c{i}"),
            ns,
            name,
            dims,
            secs as i32,
            "Sum",
        ));
    }
    req = req.metric_data_queries(metric_query(
        "age".into(),
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        &[("QueueName", queue_name)],
        60,
        "Maximum",
    ));
    read_metric_sums(req).await
}

/// The sums (by label) and the age [`metric_sums`] asks for, every page.
async fn read_metric_sums(
    req: aws_sdk_cloudwatch::operation::get_metric_data::builders::GetMetricDataFluentBuilder,
) -> Result<(BTreeMap<String, f64>, Option<f64>)> {
    let mut sums = BTreeMap::new();
    let mut age = None;
    let mut next = None;
    loop {
        let out = req
            .clone()
            .set_next_token(next)
            .send()
            .await
            .map_err(crate::aws_err("reading metrics"))?;
        for r in out.metric_data_results() {
            let id = r.id().unwrap_or_default();
            if id == "age" {
                // Newest first (the default order).
                age = age.or(r.values().first().copied());
            } else if let Some((label, _, _)) = id
                .strip_prefix('c')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| COUNTS.get(i))
            {
                *sums.entry((*label).to_owned()).or_insert(0.0) += r.values().iter().sum::<f64>();
            }
        }
        next = out.next_token;
        if next.is_none() {
            break;
        }
    }
    for (label, _, _) in COUNTS {
        sums.entry((*label).to_owned()).or_insert(0.0);
    }
    Ok((sums, age))
}

/// The names of the stack's alarms: the physical ids of its own
/// `AWS::CloudWatch::Alarm` resources. Not a name prefix: stack `x-b`'s
/// alarms are named `x-b-...`, which `x-` matches too.
async fn stack_alarms(cfg: &aws_config::SdkConfig, stack: &str) -> Result<Vec<String>> {
    let cfn = aws_sdk_cloudformation::Client::new(cfg);
    let mut names = Vec::new();
    let mut pages = cfn
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(crate::aws_err(format!("listing stack {stack}'s resources")))?;
        names.extend(
            page.stack_resource_summaries()
                .iter()
                .filter(|r| r.resource_type() == Some("AWS::CloudWatch::Alarm"))
                .filter_map(|r| r.physical_resource_id().map(str::to_owned)),
        );
    }
    Ok(names)
}

/// The alarms of `names` in ALARM: (name, reason).
async fn alarms(
    cw: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    // DescribeAlarms takes at most 100 names (and none means every alarm).
    for some in names.chunks(100) {
        let mut pages = cw
            .describe_alarms()
            .set_alarm_names(Some(some.to_vec()))
            .state_value(StateValue::Alarm)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(crate::aws_err("reading alarms"))?;
            found.extend(page.metric_alarms().iter().map(|a| {
                (
                    a.alarm_name().unwrap_or_default().to_owned(),
                    a.state_reason().unwrap_or_default().to_owned(),
                )
            }));
        }
    }
    Ok(found)
}

pub async fn gather(args: &StackArgs) -> Result<Status> {
    let stack = Stack::resolve(args).await?;
    let (queue, dlq) = stack.queues().await?;
    let (waiting, in_flight, delayed) = depth(&stack, &queue).await?;
    // A DLQ message someone is reading (`tail`, a redrive under way) is
    // still undelivered: count it.
    let (dlq_visible, dlq_in_flight, _) = depth(&stack, &dlq).await?;
    let dlq_depth = dlq_visible + dlq_in_flight;
    let mut s = Status {
        stack: match &stack.deployed {
            Some((name, _)) => name.clone(),
            None => "local".into(),
        },
        queue_waiting: Some(waiting),
        queue_in_flight: Some(in_flight),
        queue_delayed: Some(delayed),
        dlq: Some(dlq_depth),
        ..Status::default()
    };
    if let Some((name, outputs)) = &stack.deployed {
        let cw = aws_sdk_cloudwatch::Client::new(&stack.cfg);
        let queue_name = queue.rsplit('/').next().unwrap_or_default();
        // The stack says its namespace (`--stack` may be an ARN); one
        // deployed before it said so is named after the stack.
        let ns = outputs
            .get("MetricsNamespace")
            .cloned()
            .unwrap_or_else(|| smartlead::metrics::stack_namespace(name));
        let (hour, age) = metric_sums(&cw, &ns, 3600, queue_name).await?;
        let (day, _) = metric_sums(&cw, &ns, 86_400, queue_name).await?;
        s.last_hour = Some(hour);
        s.last_day = Some(day);
        s.oldest_age_secs = age;
        s.alarms = Some(alarms(&cw, &stack_alarms(&stack.cfg, name).await?).await?);
    }
    records(&stack, &mut s).await?;
    Ok(s)
}

/// `smartlead status`: prints the status; true when something needs attention.
pub async fn status(args: &StackArgs, json: bool, client: Option<&str>) -> Result<bool> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("reading queues, metrics, alarms and the table");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let s = gather(args).await;
    bar.finish_and_clear();
    let s = s?;
    let mut a = attention(&s);
    let standing = match client {
        Some(c) => Some(crate::clients::standing(&Stack::resolve(args).await?, c).await?),
        None => None,
    };
    if let (Some(c), Some(serde_json::Value::Null)) = (client, &standing) {
        a.push(format!(
            "client {c} is not in the registry (smartlead clients sync)"
        ));
    }
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["attention"] = serde_json::json!(a);
        if let Some(st) = standing {
            v["client"] = st;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&s));
        if let Some(st) = standing.filter(|v| !v.is_null()) {
            print!("{}", crate::clients::render_standing(&st));
        }
    }
    Ok(!a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn healthy() -> Status {
        let counts: BTreeMap<String, f64> = COUNTS
            .iter()
            .map(|(l, _, _)| ((*l).to_owned(), 0.0))
            .collect();
        Status {
            stack: "s".into(),
            queue_waiting: Some(3),
            queue_in_flight: Some(1),
            queue_delayed: Some(0),
            dlq: Some(0),
            oldest_age_secs: Some(2.0),
            alarms: Some(vec![]),
            last_hour: Some(counts.clone()),
            last_day: Some(counts),
            ..Status::default()
        }
    }

    #[test]
    fn a_healthy_pipeline_needs_nothing_and_says_so() {
        let s = healthy();
        assert!(attention(&s).is_empty());
        let out = render(&s);
        assert!(out.contains("OK: nothing needs attention"), "{out}");
        assert!(
            out.contains("3 waiting, 1 in flight, 0 delayed, oldest 2s"),
            "{out}"
        );
        // Duplicates, unknown types and unattributed events are normal.
        let mut s = healthy();
        for l in [
            "duplicates",
            "unknown type",
            "processed",
            "refused by ingest",
        ] {
            s.last_hour.as_mut().unwrap().insert(l.into(), 5.0);
        }
        s.unattributed_hour = 2;
        assert!(attention(&s).is_empty(), "{:?}", attention(&s));
    }

    #[test]
    fn the_dlq_alarms_and_failures_need_attention() {
        let mut s = healthy();
        s.dlq = Some(4);
        s.alarms = Some(vec![(
            "s-DeadLetterQueueAlarm-X".into(),
            "Threshold crossed".into(),
        )]);
        s.last_hour
            .as_mut()
            .unwrap()
            .insert("effect failures".into(), 2.0);
        s.last_hour.as_mut().unwrap().insert("rejected".into(), 1.0);
        let a = attention(&s);
        assert_eq!(a.len(), 4, "{a:?}");
        assert!(a[0].contains("4 message(s) in the DLQ") && a[0].contains("redrive"));
        assert!(a[1].contains("s-DeadLetterQueueAlarm-X"));
        let out = render(&s);
        assert!(out.contains("NEEDS ATTENTION"), "{out}");
        // Failures a day ago, none this hour: the hour decides.
        let mut s = healthy();
        s.last_day.as_mut().unwrap().insert("failures".into(), 9.0);
        assert!(attention(&s).is_empty());
    }

    #[test]
    fn the_last_rejected_and_unattributed_records_show_their_reasons() {
        let mut s = healthy();
        s.last_rejected = Some(
            json!({"received_at": "2026-11-27T10:00:00.000Z", "message_id": "m-1", "reason": "store_refused", "detail": "Item size too large"}),
        );
        s.last_unattributed = Some(
            json!({"pk": "UNATTRIBUTED#EMAIL_OPEN", "sk": "2026-11-27T09:00:00.000Z#EMAIL_OPEN:x", "event_type": "EMAIL_OPEN"}),
        );
        let out = render(&s);
        assert!(out.contains("last REJECTED     2026-11-27T10:00:00.000Z message m-1: store_refused (Item size too large)"), "{out}");
        assert!(
            out.contains(
                "last UNATTRIBUTED 2026-11-27T09:00:00.000Z EMAIL_OPEN: the event names neither"
            ),
            "{out}"
        );
    }
}
