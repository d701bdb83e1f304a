//! What tests share (a dev-dependency of the production crates; the
//! developer tools in `xtask` use it directly, the CLI's `tail --local` its
//! log follower): the one fixture loader, the local token, the API Gateway
//! 2.0 and SQS events (typed, from `aws_lambda_events`) that the fixture
//! generator writes and the local stack's front and poller hand to the
//! functions, [`Function`], a built function under the Lambda RIE,
//! [`memory::MemoryStore`] (the state store in memory), and the
//! stand-ins themselves ([`standins`]: DynamoDB Local, moto, the RIE, Slack
//! and SmartLead, their limits).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

pub mod faults;
pub mod memory;
pub mod standins;
pub mod store;

/// SQS's Lambda event types: the tests build the consumer's input with them.
pub use aws_lambda_events::event::sqs;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};
use aws_lambda_events::sqs::{SqsMessage, SqsMessageAttribute};
use base64::Engine as _;
use serde_json::{json, Value};
use smartlead::domain::message::{attr, sha256_hex, LOCATION_INLINE};
use std::collections::{BTreeMap, HashMap};
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
    read_json_files(&root.join("events").join(sub))
}

/// Every `*.json` file in `dir`: file stem -> raw text.
pub fn read_json_files(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
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

/// SmartLead's two field generations of each event (help center, "Webhook
/// Guide Updated"): `events/deprecated/<stem>.json` uses only the
/// deprecated spelling of each renamed field, `events/current/<stem>.json`
/// (same stem) only the current one; fields no page renamed are in both.
/// Stem -> (deprecated, current); an error names a stem without its partner.
pub fn generations(root: &Path) -> std::io::Result<BTreeMap<String, (String, String)>> {
    let mut deprecated = read_fixtures(root, "deprecated")?;
    let mut out = BTreeMap::new();
    for (stem, current) in read_fixtures(root, "current")? {
        let old = deprecated.remove(&stem).ok_or_else(|| {
            std::io::Error::other(format!("events/current/{stem}.json has no deprecated twin"))
        })?;
        out.insert(stem, (old, current));
    }
    if let Some(stem) = deprecated.keys().next() {
        return Err(std::io::Error::other(format!(
            "events/deprecated/{stem}.json has no current twin"
        )));
    }
    Ok(out)
}

/// State attributes only a current-generation body can fill (the
/// deprecated one has no field for them): left out when the states of the
/// two [`generations`] are compared, and checked on their own.
pub const CURRENT_ONLY_ATTRIBUTES: &[&str] = &[
    "previous_category",
    "previous_category_id",
    "sl_email_lead_id",
    "sl_email_lead_map_id",
    "stats_thread_id",
    "last_reply_cc",
    "last_reply_company_domain",
    "sent_message_ids",
    "cc",
];

/// `X-Request-Id` and `X-Webhook-Level` as SmartLead sends them with an
/// envelope-shaped body (its `id` and `meta.level`): (header, attribute, value).
pub fn delivery_headers(body: &str) -> Vec<(&'static str, &'static str, String)> {
    let Ok(ev) = smartlead::domain::event::SmartleadEvent::from_slice(body.as_bytes()) else {
        return Vec::new();
    };
    if ev.shape != smartlead::domain::shape::Shape::Envelope {
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

/// One HTTP request as API Gateway's HTTP API hands it to a function
/// (payload format 2.0): `rawPath` and `http.path` percent-decoded (`%2F`
/// included), `rawQueryString` as sent and its parameters decoded (a
/// repeated one joined by commas), header names lower-cased and a repeated
/// header joined by commas, a body that is not UTF-8 in base64. The request
/// context says `local`; callers set what they know better.
pub fn api_gateway_request(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    source_ip: &str,
) -> ApiGatewayV2httpRequest {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| s.to_owned())
    };
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = decode(raw_path);
    let mut params: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        join(params.entry(decode(k)).or_default(), &decode(v));
    }
    let mut joined: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        match joined.iter_mut().find(|(name, _)| *name == k) {
            Some((_, all)) => join(all, v),
            None => joined.push((k, v.clone())),
        }
    }
    let mut header_map = HeaderMap::new();
    for (k, v) in &joined {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            header_map.insert(k, v);
        }
    }
    let (body, b64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let user_agent = joined
        .iter()
        .find(|(k, _)| k == "user-agent")
        .map(|(_, v)| v.clone());
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method;
    http.path = Some(path.clone());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(source_ip.into());
    http.user_agent = user_agent;
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some("ANY /{proxy+}".into());
    context.account_id = Some("000000000000".into());
    context.stage = Some("$default".into());
    context.apiid = Some("local".into());
    context.domain_name = Some("127.0.0.1".into());
    context.domain_prefix = Some("local".into());
    context.time = Some(String::new());
    context.http = http;
    let mut req = ApiGatewayV2httpRequest::default();
    req.version = Some("2.0".into());
    req.route_key = Some("ANY /{proxy+}".into());
    req.raw_path = Some(path);
    req.raw_query_string = Some(query.to_owned());
    req.headers = header_map;
    req.query_string_parameters = params.into();
    req.request_context = context;
    req.body = Some(body);
    req.is_base64_encoded = b64;
    req
}

fn join(all: &mut String, v: &str) {
    if !all.is_empty() {
        all.push(',');
    }
    all.push_str(v);
}

/// An event as the function receives it: the typed event's JSON without
/// the fields a real one lacks (nulls, and the Custom Authorizer v1 fields
/// aws_lambda_events still writes for a 2.0 request: `httpMethod`, empty
/// `stageVariables`).
pub fn event_json<T: serde::Serialize>(event: &T) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(event).unwrap_or_default();
    strip(&mut v);
    if let Some(m) = v.as_object_mut() {
        if m.contains_key("requestContext") {
            m.remove("httpMethod");
            if m.get("stageVariables") == Some(&json!({})) {
                m.remove("stageVariables");
            }
        }
    }
    v
}

/// An API Gateway HTTP API (payload format 2.0) request carrying `body`, as
/// SmartLead's POST arrives in AWS (fixed ids and time: reproducible).
pub fn api_request(name: &str, body: &str, event_type: &str) -> Value {
    const DOMAIN: &str = "abc123.execute-api.us-east-1.amazonaws.com";
    const ROUTE: &str = "POST /webhooks/smartlead";
    let headers: Vec<(String, String)> = [
        ("accept", "*/*"),
        ("content-length", &body.len().to_string()),
        ("content-type", "application/json"),
        ("host", DOMAIN),
        ("user-agent", "SmartLead-Webhook/1.0"),
        ("x-forwarded-for", "203.0.113.10"),
        ("x-forwarded-proto", "https"),
        ("x-smartlead-event", event_type),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let target = format!("/webhooks/smartlead?token={TOKEN}");
    let mut req = api_gateway_request("POST", &target, &headers, body.as_bytes(), "203.0.113.10");
    req.route_key = Some(ROUTE.into());
    let c = &mut req.request_context;
    c.route_key = Some(ROUTE.into());
    c.account_id = Some("123456789012".into());
    c.apiid = Some("abc123".into());
    c.domain_name = Some(DOMAIN.into());
    c.domain_prefix = Some("abc123".into());
    c.request_id = Some(format!("fixture-{name}"));
    c.time = Some("15/Jan/2025:09:00:00 +0000".into());
    c.time_epoch = FIXED_EPOCH_MS;
    event_json(&req)
}

/// A `String` message attribute as the event source mapping passes it on.
pub fn string_attribute(v: &str) -> SqsMessageAttribute {
    let mut a = SqsMessageAttribute::default();
    a.string_value = Some(v.into());
    a.data_type = Some("String".into());
    a
}

/// [`string_attribute`] as JSON.
pub fn string_attr(v: &str) -> Value {
    event_json(&string_attribute(v))
}

/// One SQS record of queue `queue_arn` as the Lambda event source mapping
/// delivers it; the caller adds attributes and the receipt handle.
pub fn sqs_message(queue_arn: &str, message_id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.into());
    m.body = Some(body.into());
    m.md5_of_body = Some(format!("{:x}", md5::compute(body.as_bytes())));
    m.event_source = Some("aws:sqs".into());
    m.event_source_arn = Some(queue_arn.into());
    m.aws_region = Some("us-east-1".into());
    m
}

/// A message received from `queue_arn`'s queue as the Lambda event
/// source mapping hands it to the function.
pub fn sqs_message_from(queue_arn: &str, m: &smartlead::aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut r = sqs_message(
        queue_arn,
        m.message_id().unwrap_or_default(),
        m.body().unwrap_or_default(),
    );
    r.receipt_handle = m.receipt_handle().map(str::to_owned);
    r.md5_of_body = m.md5_of_body().map(str::to_owned);
    r.attributes = m
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    r.message_attributes = m
        .message_attributes()
        .into_iter()
        .flatten()
        // A binary attribute: none is sent; the consumer's framing drops it.
        .filter_map(|(k, v)| {
            let mut a = string_attribute(v.string_value()?);
            a.data_type = Some(v.data_type().to_owned());
            Some((k.clone(), a))
        })
        .collect();
    r
}

/// A new queue `name` (or the one of that name) at `sqs`: its URL.
pub async fn create_queue(sqs: &smartlead::aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// A client of the DynamoDB at `endpoint` (DynamoDB Local) with the state
/// table `table` created.
pub async fn state_table(endpoint: &str, table: &str) -> smartlead::aws_sdk_dynamodb::Client {
    let cfg = smartlead::adapters::aws::local_sdk_config(endpoint).await;
    let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    smartlead::adapters::aws::dynamodb::create_table(&client, table)
        .await
        .expect("table");
    client
}

/// Every message a queue holds ([`store::drain`]): their bodies as JSON (a
/// test's queue of pipeline events or webhooks).
pub async fn take_all(sqs: &smartlead::aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    store::drain(sqs, queue_url)
        .await
        .unwrap_or_else(|e| panic!("draining {queue_url}: {e}"))
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or("null")).expect("a JSON body"))
        .collect()
}

/// One SQS record carrying `body` as the ingest queues it and the event
/// source mapping delivers it (fixed ids and times: reproducible).
pub fn sqs_record(id_seed: &str, body: &str, event_type: &str) -> Value {
    let sha = sha256_hex(body.as_bytes());
    let received_at = smartlead::domain::time::EventTime::from_millis(FIXED_EPOCH_MS)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut m = sqs_message(QUEUE_ARN, &stable_uuid(id_seed), body);
    m.receipt_handle = Some(format!(
        "AQEB{}",
        &sha256_hex(format!("rh-{id_seed}").as_bytes())[..40]
    ));
    m.attributes = [
        ("ApproximateReceiveCount", "1".to_owned()),
        ("SentTimestamp", FIXED_EPOCH_MS.to_string()),
        ("SenderId", "AROAEXAMPLE:smartlead-ingest".to_owned()),
        (
            "ApproximateFirstReceiveTimestamp",
            (FIXED_EPOCH_MS + 50).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    m.message_attributes = [
        (attr::EVENT_TYPE, event_type.to_owned()),
        (attr::RECEIVED_AT, received_at),
        (attr::REQUEST_ID, format!("fixture-{id_seed}")),
        (attr::BODY_SHA256, sha),
        (attr::SOURCE_IP, "203.0.113.10".to_owned()),
        (attr::BODY_LOCATION, LOCATION_INLINE.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), string_attribute(&v)))
    .collect();
    event_json(&m)
}

/// A built function binary under the Lambda Runtime Interface Emulator
/// (`sam build`'s bootstrap when `SAM_BUILD_DIR` names one, else cargo's).
pub struct Function {
    pub rie: standins::Service,
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
        let binary = standins::function_binary(logical_id, Path::new(cargo_bin));
        let rie = standins::start_rie_any(&binary, &env).unwrap_or_else(|e| panic!("{e}"));
        Function {
            url: standins::rie_invoke_url(&rie),
            rie,
            http: smartlead::adapters::http::client(),
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

/// A queue that takes every message and answers a fixed, UUID-shaped
/// message id (the ingest's handler in process, with no SQS).
pub struct NoopQueue;

#[async_trait::async_trait]
impl smartlead::app::ingest::Queue for NoopQueue {
    async fn send(
        &self,
        _msg: smartlead::domain::message::OutgoingMessage,
    ) -> Result<String, smartlead::app::ingest::QueueError> {
        Ok("0b9f36b4-87a3-44ab-83d2-661975830a7d".into())
    }
}

/// A reply webhook of about `size` bytes (at least 200), for the ingest's
/// benchmarks.
pub fn reply_of_size(size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(200));
    format!("{{\"event_type\":\"EMAIL_REPLY\",\"to_email\":\"a@b.example\",\"campaign_id\":1,\"reply_body\":\"{pad}\"}}")
}

/// A POST of `body` to the webhook path with the local token, as the
/// ingest's handler takes it in process.
pub fn token_post(body: &[u8]) -> smartlead::app::ingest::IngestRequest<'_> {
    smartlead::app::ingest::IngestRequest {
        method: "POST",
        path: "/webhooks/smartlead",
        query_token: Some(TOKEN),
        signature: None,
        smartlead_request_id: None,
        webhook_level: None,
        body,
        request_id: "r",
        source_ip: "127.0.0.1",
    }
}

/// A claim-check store that keeps nothing (bodies over the inline limit).
pub struct NoBlobs;

#[async_trait::async_trait]
impl smartlead::app::ingest::BlobStore for NoBlobs {
    fn bucket(&self) -> &str {
        "b"
    }
    async fn put(&self, _k: &str, _b: &[u8]) -> Result<(), smartlead::app::ingest::QueueError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_and_parameters_arrive_joined_and_binary_bodies_in_base64() {
        let headers = [
            ("X-Tag".to_owned(), "a".to_owned()),
            ("x-tag".to_owned(), "b".to_owned()),
        ];
        let req = api_gateway_request("POST", "/p?k=1&k=2", &headers, &[0xff, 0xfe], "::1");
        let v = event_json(&req);
        assert_eq!(v["headers"]["x-tag"], "a,b");
        assert_eq!(v["queryStringParameters"]["k"], "1,2");
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(v["body"], "//4=");
        assert_eq!(v["requestContext"]["http"]["method"], "POST");
        assert!(v.get("httpMethod").is_none() && v.get("stageVariables").is_none());
        // What the function's runtime reads back.
        let back: ApiGatewayV2httpRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.raw_path.as_deref(), Some("/p"));
    }
}
