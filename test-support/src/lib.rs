//! What tests share (a dev-dependency of the production crates; the
//! developer tools `stack` and `xtask` use it directly): the one fixture
//! loader, the local token, and the API Gateway 2.0 and SQS events the
//! fixture generator writes.

use serde_json::{json, Value};
use smartlead::message::{attr, sha256_hex, LOCATION_INLINE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The token the local stack and the fixtures use (never a production secret).
pub const TOKEN: &str = "local-dev-secret";
/// Fixed instant for generated request metadata, so output is reproducible.
// After every payload's own time: SQS receives an event after it happened.
pub const FIXED_EPOCH_MS: i64 = 1_737_709_200_000; // 2025-01-24T09:00:00Z
const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:smartlead-webhooks";

/// This checkout (the folder with template.yaml and events/).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The one fixture loader: every `events/<sub>/*.json` under `root`, file
/// stem -> raw text.
pub fn read_fixtures(root: &Path, sub: &str) -> std::io::Result<BTreeMap<String, String>> {
    let dir = root.join("events").join(sub);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            out.insert(stem.to_owned(), std::fs::read_to_string(&path)?);
        }
    }
    Ok(out)
}

/// `events/<sub>/` of this checkout, for tests: panics when it is missing or empty.
pub fn fixtures(sub: &str) -> BTreeMap<String, String> {
    let out = read_fixtures(&root(), sub).unwrap_or_else(|e| panic!("events/{sub}: {e}"));
    assert!(!out.is_empty(), "no fixtures in events/{sub}");
    out
}

/// One fixture of this checkout: `fixture("payloads", "email_open")`.
pub fn fixture(sub: &str, name: &str) -> String {
    fixtures(sub)
        .remove(name)
        .unwrap_or_else(|| panic!("no events/{sub}/{name}.json"))
}

/// Every payload: file stem -> raw text.
pub fn payloads(root: &Path) -> std::io::Result<BTreeMap<String, String>> {
    read_fixtures(root, "payloads")
}

/// The flat twin of every nested or envelope payload (`events/twins/`,
/// same stem): the same event in the flat shape, for state comparisons.
pub fn twins(root: &Path) -> std::io::Result<BTreeMap<String, String>> {
    read_fixtures(root, "twins")
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
        "rawQueryString": format!("token={TOKEN}"),
        "queryStringParameters": { "token": TOKEN },
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

pub fn string_attr(v: &str) -> Value {
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

/// A built function binary under the Lambda Runtime Interface Emulator
/// (`sam build`'s bootstrap when `SAM_BUILD_DIR` names one, else cargo's).
pub struct Function {
    pub rie: local_aws::Service,
    url: String,
    http: reqwest::Client,
}

impl Function {
    /// Starts `cargo_bin` (`env!("CARGO_BIN_EXE_...")`) as the template's
    /// `logical_id`, with test credentials and region and then `env`.
    pub fn start(logical_id: &str, cargo_bin: &str, env: &[(&str, &str)]) -> Function {
        let base = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ];
        let env: Vec<(String, String)> = base
            .iter()
            .chain(env)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let binary = local_aws::function_binary(logical_id, Path::new(cargo_bin));
        let rie = local_aws::start_rie_any(&binary, &env).unwrap_or_else(|e| panic!("{e}"));
        Function {
            url: local_aws::rie_invoke_url(&rie),
            rie,
            http: smartlead::http::client(),
        }
    }

    /// One invoke: the function's answer (the emulator's error object when
    /// the function failed).
    pub async fn invoke(&self, event: &Value) -> Value {
        self.http
            .post(&self.url)
            .json(event)
            .send()
            .await
            .expect("invoke")
            .json()
            .await
            .expect("a JSON answer")
    }
}
