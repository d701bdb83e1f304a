//! `xtask show` and the readable function logs of `xtask local`.

use crate::pipeline::{depth, ALERT_TAP, BUS, BUS_TAP};
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::HashMap;

/// Prints a lead's state, the queue depths and recent rejected events.
pub async fn show(dynamodb_port: u16, moto_port: u16, email: Option<&str>) -> Result<()> {
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(
        &smartlead::adapters::aws::local_sdk_config(&format!("http://127.0.0.1:{dynamodb_port}"))
            .await,
    );
    let sqs = smartlead::aws_sdk_sqs::Client::new(
        &smartlead::adapters::aws::local_sdk_config(&format!("http://127.0.0.1:{moto_port}")).await,
    );
    let url = |name: &'static str| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map(|o| o.queue_url.unwrap_or_default())
        }
    };
    let (queue_url, dlq_url) = (
        url("smartlead-webhooks")
            .await
            .context("is the local stack running?")?,
        url("smartlead-webhooks-dlq").await?,
    );
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb, "smartlead-state");
    if let Some(email) = email {
        let items = store
            .partition(&format!("LEAD#{}", email.trim().to_ascii_lowercase()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let map: HashMap<String, Value> = items
            .iter()
            .map(|i| {
                let v = smartlead::adapters::aws::dynamodb::item_to_json(i);
                (v["sk"].as_str().unwrap_or_default().to_owned(), v)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    }
    let (q, inflight) = depth(&sqs, &queue_url).await?;
    let (d, _) = depth(&sqs, &dlq_url).await?;
    println!("queue: {q} waiting, {inflight} in flight; DLQ: {d}");
    let (published, _) = depth(&sqs, &url(BUS_TAP).await?).await?;
    let (alerts, _) = depth(&sqs, &url(ALERT_TAP).await?).await?;
    println!("bus {BUS}: {published} events published (in the tap queue {BUS_TAP}); alerts on SNS: {alerts}");
    // The last five REJECTED records of the last day.
    let now = smartlead::domain::time::EventTime::now();
    let day_ago = smartlead::domain::time::EventTime::from_millis(now.millis() - 86_400_000);
    let rejected = store
        .records(
            smartlead::domain::records::RecordKind::Rejected,
            day_ago.unwrap_or(now),
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in rejected.iter().rev().take(5) {
        let v = smartlead::adapters::aws::dynamodb::item_to_json(r);
        println!(
            "rejected {} {}: {}",
            v["received_at"], v["reason"], v["detail"]
        );
    }
    Ok(())
}

/// One function log line, made readable: JSON records as
/// `LEVEL message key=value ...`, the emulator's REPORT lines as durations,
/// its other chatter and EMF metric documents dropped.
pub fn readable(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Ok(Value::Object(v)) = serde_json::from_str::<Value>(line) {
        if v.contains_key("_aws") {
            return None;
        }
        let level = v.get("level").and_then(Value::as_str).unwrap_or("INFO");
        let fields = v.get("fields").and_then(Value::as_object);
        let message = fields
            .and_then(|f| f.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut out = format!("{level:<5} {message}");
        for (k, val) in fields.into_iter().flatten() {
            if k != "message" {
                match val {
                    Value::String(s) => out.push_str(&format!(" {k}={s}")),
                    other => out.push_str(&format!(" {k}={other}")),
                }
            }
        }
        return Some(out);
    }
    if let Some(rest) = line.strip_prefix("REPORT RequestId: ") {
        let parts: Vec<&str> = rest.split('\t').map(str::trim).collect();
        let pick = |name: &str| parts.iter().find(|p| p.starts_with(name)).copied();
        let mut out = "REPORT".to_owned();
        for p in [pick("Init Duration"), pick("Duration")]
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(" {p}"));
        }
        return Some(out);
    }
    if line.contains("[WARN") || line.contains("[ERROR") || line.contains("panicked") {
        return Some(line.to_owned());
    }
    None
}

/// Follows the functions' log files and prints their lines readably.
pub async fn follow_logs(sources: Vec<(String, std::path::PathBuf)>) {
    let mut follow =
        smartlead::local_stack::Follow::new(sources.iter().map(|(_, p)| p.clone()).collect());
    loop {
        for (i, line) in follow.lines() {
            if let Some(text) = readable(&line) {
                println!("{:<9} {text}", sources[i].0);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
