//! Generates `events/api/` and `events/sqs/` from `events/payloads/`.
//!
//! `cargo xtask fixtures` writes them; `cargo xtask fixtures --check` fails
//! when a committed file differs from what would be generated (the test
//! suite runs the same comparison).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use smartlead::message::{attr, sha256_hex, LOCATION_INLINE};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The token the local stack and the fixtures use (never a production secret).
pub const LOCAL_TOKEN: &str = "local-dev-secret";
/// Fixed instant for generated request metadata, so output is reproducible.
// After every payload's own time: SQS receives an event after it happened.
const FIXED_EPOCH_MS: i64 = 1_737_709_200_000; // 2025-01-24T09:00:00Z
const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:smartlead-webhooks";

pub fn events_dir(root: &Path) -> PathBuf {
    root.join("events")
}

fn stable_uuid(seed: &str) -> String {
    let h = sha256_hex(seed.as_bytes());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// An API Gateway HTTP API (payload format 2.0) request carrying `body`.
pub fn api_request(name: &str, body: &str, event_type: &str) -> Value {
    let request_id = format!("fixture-{name}");
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/smartlead",
        "rawPath": "/webhooks/smartlead",
        "rawQueryString": format!("token={LOCAL_TOKEN}"),
        "queryStringParameters": { "token": LOCAL_TOKEN },
        "headers": {
            "accept": "*/*",
            "content-length": body.len().to_string(),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "SmartLead-Webhook/1.0",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-proto": "https",
            "x-smartlead-event": event_type
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/webhooks/smartlead",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "SmartLead-Webhook/1.0"
            },
            "requestId": request_id,
            "routeKey": "POST /webhooks/smartlead",
            "stage": "$default",
            "time": "15/Jan/2025:09:00:00 +0000",
            "timeEpoch": FIXED_EPOCH_MS
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn string_attr(v: &str) -> Value {
    json!({ "stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String" })
}

/// One SQS record as the Lambda event source mapping delivers it.
pub fn sqs_record(id_seed: &str, body: &str, event_type: &str) -> Value {
    let sha = sha256_hex(body.as_bytes());
    let mut attrs = serde_json::Map::new();
    attrs.insert(attr::EVENT_TYPE.into(), string_attr(event_type));
    attrs.insert(
        attr::RECEIVED_AT.into(),
        string_attr(
            &smartlead::time::EventTime::from_millis(FIXED_EPOCH_MS)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ),
    );
    attrs.insert(
        attr::REQUEST_ID.into(),
        string_attr(&format!("fixture-{id_seed}")),
    );
    attrs.insert(attr::BODY_SHA256.into(), string_attr(&sha));
    attrs.insert(attr::SOURCE_IP.into(), string_attr("203.0.113.10"));
    attrs.insert(attr::BODY_LOCATION.into(), string_attr(LOCATION_INLINE));
    json!({
        "messageId": stable_uuid(id_seed),
        "receiptHandle": format!("AQEB{}", &sha256_hex(format!("rh-{id_seed}").as_bytes())[..40]),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": FIXED_EPOCH_MS.to_string(),
            "SenderId": "AROAEXAMPLE:smartlead-ingest",
            "ApproximateFirstReceiveTimestamp": (FIXED_EPOCH_MS + 50).to_string()
        },
        "messageAttributes": attrs,
        "md5OfBody": format!("{:x}", md5::compute(body.as_bytes())),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1"
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Reads every payload: file stem -> raw text.
pub fn payloads(root: &Path) -> Result<BTreeMap<String, String>> {
    let dir = events_dir(root).join("payloads");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("file name")?
            .to_owned();
        out.insert(stem, fs::read_to_string(&path)?);
    }
    Ok(out)
}

/// `X-Request-Id` and `X-Webhook-Level` as SmartLead sends them with an
/// envelope-shaped body (its `id` and `meta.level`): (header, attribute, value).
pub fn delivery_headers(body: &str) -> Vec<(&'static str, &'static str, String)> {
    let Ok(ev) = smartlead::event::SmartleadEvent::from_slice(body.as_bytes()) else {
        return Vec::new();
    };
    if ev.shape != smartlead::shape::Shape::Envelope {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(id) = ev.raw.get("id").and_then(Value::as_str) {
        out.push(("x-request-id", attr::SMARTLEAD_REQUEST_ID, id.to_owned()));
    }
    if let Some(level) = ev
        .raw
        .get("meta")
        .and_then(|m| m.get("level"))
        .and_then(Value::as_str)
    {
        out.push(("x-webhook-level", attr::WEBHOOK_LEVEL, level.to_owned()));
    }
    out
}

/// The flat twin of every nested or envelope payload (`events/twins/`,
/// same stem): the same event in the flat shape, for state comparisons.
#[cfg(test)]
pub fn twins(root: &Path) -> Result<BTreeMap<String, String>> {
    let dir = events_dir(root).join("twins");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| path.extension().and_then(|e| e.to_str()) == Some("json"))
        {
            out.insert(stem.to_owned(), fs::read_to_string(&path)?);
        }
    }
    Ok(out)
}

/// Every generated file: relative path under events/ -> content.
pub fn generate(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    let payloads = payloads(root)?;
    let mut all = Vec::new();
    for (name, body) in &payloads {
        let probe = smartlead::event::probe(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("events/payloads/{name}.json: {e}"))?;
        let kind = probe.event_type.as_str().to_owned();
        let mut api = api_request(name, body, &kind);
        let mut rec = sqs_record(name, body, &kind);
        // The envelope shape comes with SmartLead's event id and webhook
        // level as headers; the ingest passes them on as attributes.
        for (header, attribute, value) in delivery_headers(body) {
            api["headers"][header] = json!(value);
            rec["messageAttributes"][attribute] = string_attr(&value);
        }
        out.insert(PathBuf::from(format!("api/{name}.json")), pretty(&api));
        out.insert(
            PathBuf::from(format!("sqs/{name}.json")),
            pretty(&json!({ "Records": [rec.clone()] })),
        );
        all.push(rec);
    }
    // A batch of every payload, one of each.
    out.insert(
        PathBuf::from("sqs/batch_all.json"),
        pretty(&json!({ "Records": all })),
    );
    // A mixed batch: a poison body, a redelivered duplicate, and good records.
    let mut mixed = Vec::new();
    for (seed, name) in [
        ("mixed-1", "email_open"),
        ("mixed-2", "email_open"),
        ("mixed-3", "email_reply"),
    ] {
        let body = payloads.get(name).context("mixed batch payload")?;
        mixed.push(sqs_record(
            seed,
            body,
            if name == "email_open" {
                "EMAIL_OPEN"
            } else {
                "EMAIL_REPLY"
            },
        ));
    }
    mixed.push(sqs_record("mixed-poison", "this is not json", "UNKNOWN"));
    out.insert(
        PathBuf::from("sqs/batch_mixed.json"),
        pretty(&json!({ "Records": mixed })),
    );
    Ok(out)
}

/// Writes (or, with `check`, compares) the generated files.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let generated = generate(root)?;
    let dir = events_dir(root);
    let mut stale = Vec::new();
    for (rel, content) in &generated {
        let path = dir.join(rel);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current != *content {
            if check {
                stale.push(rel.display().to_string());
            } else {
                fs::create_dir_all(path.parent().context("parent")?)?;
                fs::write(&path, content)?;
            }
        }
    }
    // Generated folders hold nothing else.
    for sub in ["api", "sqs"] {
        for entry in fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let rel = PathBuf::from(sub).join(entry.file_name());
            if !generated.contains_key(&rel) {
                if check {
                    stale.push(format!("{} (no payload generates it)", rel.display()));
                } else {
                    fs::remove_file(entry.path())?;
                }
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "events/ fixtures are out of date; run `cargo run -p xtask -- fixtures`:\n  {}",
            stale.join("\n  ")
        );
    }
    if !check {
        println!("events/: {} generated files up to date", generated.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_fixtures_match_the_generator() {
        super::run(&crate::workspace_root(), true).expect("fixtures are current");
    }
}
