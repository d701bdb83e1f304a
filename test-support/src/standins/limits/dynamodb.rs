//! DynamoDB's write throughput per partition key, in front of DynamoDB
//! Local (which enforces none). One partition takes at most 1,000 write
//! units a second, and a write costs one unit per started KB of the item
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>);
//! past that DynamoDB answers HTTP 400 `ProvisionedThroughputExceededException`,
//! which the SDKs retry as throttling
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>).
//!
//! The proxy forwards every request; a single-item write (`PutItem`,
//! `UpdateItem`, `DeleteItem`) first meets its partition key's token
//! bucket: refused while the bucket is empty, else sent on with
//! `ReturnConsumedCapacity` forced to `TOTAL`, and the units DynamoDB Local
//! reports are taken from the bucket (a write is admitted, then charged,
//! as DynamoDB does). A refused conditional write is charged by the size of
//! the item it returns (`ReturnValuesOnConditionCheckFailure`), else one
//! unit. The bucket holds one second of units: DynamoDB's burst capacity
//! (up to 300 s of unused table capacity) is not modelled, since it never
//! lifts one partition past its 1,000 units a second. Reads and batch or
//! transactional writes pass through uncounted.

use super::{answer, serve, Answer, Req};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One partition's limit (write units a second).
pub const UNITS_PER_SECOND: f64 = 1000.0;
const THROTTLED: &str = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException";

/// One single-item write the proxy saw.
#[derive(Debug, Clone)]
pub struct Write {
    /// When it was answered.
    pub at: Instant,
    pub op: String,
    pub table: String,
    /// The item's partition and sort key values, as text.
    pub pk: String,
    pub sk: String,
    /// Write units charged (DynamoDB Local's own count when it reports one).
    pub units: f64,
    /// The answer's status; `throttled` writes never reached DynamoDB Local.
    pub status: u16,
    pub throttled: bool,
    /// Of a successful write: the binary values it carried (base64 as sent),
    /// set elements included.
    pub binaries: Vec<String>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct State {
    rate: f64,
    buckets: HashMap<String, Bucket>,
    writes: Vec<Write>,
}

impl State {
    /// Whether the partition has units left now.
    fn has_units(&mut self, partition: &str, now: Instant) -> bool {
        let rate = self.rate;
        let b = self.buckets.entry(partition.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        b.tokens > 0.0
    }

    fn charge(&mut self, partition: &str, units: f64) {
        if let Some(b) = self.buckets.get_mut(partition) {
            b.tokens -= units;
        }
    }
}

/// The throttling proxy on 127.0.0.1; point the functions'
/// `AWS_ENDPOINT_URL_DYNAMODB` at [`DynamoThrottle::endpoint`].
#[derive(Clone)]
pub struct DynamoThrottle {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

/// What the proxy needs to know of one write request.
struct Target {
    op: String,
    table: String,
    pk: String,
    sk: String,
    /// The client asked for `ConsumedCapacity` itself.
    asked: bool,
}

impl DynamoThrottle {
    /// In front of `upstream` (DynamoDB Local's endpoint): `pk` and `sk`
    /// name the table's key attributes, `units_per_second` is one
    /// partition's limit ([`UNITS_PER_SECOND`]).
    pub async fn start(
        upstream: &str,
        pk: &str,
        sk: &str,
        units_per_second: f64,
    ) -> std::io::Result<DynamoThrottle> {
        let state = Arc::new(Mutex::new(State {
            rate: units_per_second,
            buckets: HashMap::new(),
            writes: Vec::new(),
        }));
        let proxy = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            keys: (pk.to_owned(), sk.to_owned()),
            http: super::http_client(),
            state: state.clone(),
        });
        let endpoint = serve(Arc::new(move |req| {
            let proxy = proxy.clone();
            Box::pin(async move { proxy.handle(req).await })
        }))
        .await?;
        Ok(DynamoThrottle { endpoint, state })
    }

    /// Every single-item write, in the order they were answered.
    pub fn writes(&self) -> Vec<Write> {
        self.state
            .lock()
            .map(|s| s.writes.clone())
            .unwrap_or_default()
    }
}

struct Proxy {
    upstream: String,
    keys: (String, String),
    http: reqwest::Client,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    async fn handle(&self, req: Req) -> Answer {
        let op = req
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let parsed = serde_json::from_slice::<Map<String, Value>>(&req.body).ok();
        let (Some(mut body), true) = (
            parsed,
            matches!(op.as_str(), "PutItem" | "UpdateItem" | "DeleteItem"),
        ) else {
            return self.forward(&req, req.body.to_vec()).await.0;
        };
        let target = self.target(op, &body);
        let partition = format!("{}\u{1f}{}", target.table, target.pk);
        let admitted = self
            .state
            .lock()
            .map(|mut s| s.has_units(&partition, Instant::now()))
            .unwrap_or(true);
        if !admitted {
            self.record(&target, 0.0, 400, true, Vec::new());
            return throttled();
        }
        body.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
        let sent = serde_json::to_vec(&body).unwrap_or_default();
        let (resp, status, answer_body) = self.forward(&req, sent).await;
        let units = units_of(status, answer_body.as_ref());
        if let Ok(mut s) = self.state.lock() {
            s.charge(&partition, units);
        }
        let binaries = if status == 200 {
            let mut out = Vec::new();
            binaries(body.get("ExpressionAttributeValues"), &mut out);
            binaries(body.get("Item"), &mut out);
            out
        } else {
            Vec::new()
        };
        self.record(&target, units, status, false, binaries);
        match (target.asked, answer_body) {
            (false, Some(Value::Object(mut m))) => match m.remove("ConsumedCapacity") {
                Some(_) => rewrite(resp, &Value::Object(m)),
                None => resp,
            },
            _ => resp,
        }
    }

    fn target(&self, op: String, body: &Map<String, Value>) -> Target {
        let key = body.get("Key").or_else(|| body.get("Item"));
        let text = |name: &str| {
            key.and_then(|k| k.get(name))
                .map(scalar)
                .unwrap_or_default()
        };
        Target {
            op,
            table: body
                .get("TableName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            pk: text(&self.keys.0),
            sk: text(&self.keys.1),
            asked: body
                .get("ReturnConsumedCapacity")
                .and_then(Value::as_str)
                .is_some_and(|v| v != "NONE"),
        }
    }

    fn record(&self, t: &Target, units: f64, status: u16, throttled: bool, binaries: Vec<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.writes.push(Write {
                at: Instant::now(),
                op: t.op.clone(),
                table: t.table.clone(),
                pk: t.pk.clone(),
                sk: t.sk.clone(),
                units,
                status,
                throttled,
                binaries,
            });
        }
    }

    /// Sends the request on with `body`; the answer, its status and its
    /// JSON body (when it has one).
    async fn forward(&self, req: &Req, body: Vec<u8>) -> (Answer, u16, Option<Value>) {
        let url = match req.query.as_str() {
            "" => format!("{}{}", self.upstream, req.path),
            q => format!("{}{}?{q}", self.upstream, req.path),
        };
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or_default();
        let mut out = self.http.request(method, url).body(body);
        for (k, v) in &req.headers {
            if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                out = out.header(k.as_str(), v.as_bytes());
            }
        }
        let Ok(r) = out.send().await else {
            return (
                answer(502, &[], "DynamoDB Local unreachable".into()),
                502,
                None,
            );
        };
        let status = r.status().as_u16();
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                )
            })
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let bytes = r.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).ok();
        let h: Vec<(&str, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let resp = answer(status, &h, String::from_utf8_lossy(&bytes).into_owned());
        (resp, status, json)
    }
}

/// DynamoDB's answer to a write over the partition's throughput.
fn throttled() -> Answer {
    let body = serde_json::json!({
        "__type": THROTTLED,
        "message": "Throughput exceeds the current capacity of your table or index: \
                    this partition key is past 1,000 write units a second. Try again shortly."
    });
    answer(
        400,
        &[("content-type", "application/x-amz-json-1.0".into())],
        body.to_string(),
    )
}

/// The answer with another JSON body (its CRC no longer holds: dropped).
fn rewrite(resp: Answer, body: &Value) -> Answer {
    let (parts, _) = resp.into_parts();
    let headers: Vec<(&str, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "x-amz-crc32")
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    answer(parts.status.as_u16(), &headers, body.to_string())
}

/// Units a write cost: DynamoDB Local's count; for a refused one, the size
/// of the item it returned (at least one unit).
fn units_of(status: u16, body: Option<&Value>) -> f64 {
    let reported = body
        .and_then(|b| b.get("ConsumedCapacity"))
        .and_then(|c| c.get("CapacityUnits"))
        .and_then(Value::as_f64);
    match (status, reported, body.and_then(|b| b.get("Item"))) {
        (_, Some(u), _) => u,
        (400, None, Some(Value::Object(item))) => {
            (item_bytes(item) as f64 / 1024.0).ceil().max(1.0)
        }
        _ => 1.0,
    }
}

/// A key attribute's value as text (`{"S": "x"}` -> `x`).
fn scalar(v: &Value) -> String {
    v.as_object()
        .and_then(|o| o.values().next())
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
        .unwrap_or_default()
}

/// An item's size by DynamoDB's rules (names plus values), from its JSON.
pub fn item_bytes(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &Value) -> usize {
    let Some((ty, x)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let text = |x: &Value| x.as_str().map_or(0, str::len);
    let list = |x: &Value| x.as_array().cloned().unwrap_or_default();
    match ty.as_str() {
        "S" => text(x),
        "N" => text(x) / 2 + 1,
        "B" => text(x) * 3 / 4,
        "SS" => list(x).iter().map(text).sum(),
        "NS" => list(x).iter().map(|n| text(n) / 2 + 1).sum(),
        "BS" => list(x).iter().map(|b| text(b) * 3 / 4).sum(),
        "L" => 3 + list(x).iter().map(|e| 1 + value_bytes(e)).sum::<usize>(),
        "M" => x.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_bytes(e))
                .sum::<usize>()
        }),
        _ => 1,
    }
}

/// Every binary value (`B`, and `BS` elements) under `v`.
fn binaries(v: Option<&Value>, out: &mut Vec<String>) {
    let Some(Value::Object(m)) = v else {
        return;
    };
    for (k, x) in m {
        match (k.as_str(), x) {
            ("B", Value::String(b)) => out.push(b.clone()),
            ("BS", Value::Array(a)) => {
                out.extend(a.iter().filter_map(|b| b.as_str().map(str::to_owned)))
            }
            (_, Value::Object(_)) => binaries(Some(x), out),
            (_, Value::Array(a)) => a.iter().for_each(|e| binaries(Some(e), out)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_sizes_follow_dynamodbs_rules_closely_enough_to_bill() {
        let item = json!({"pk": {"S": "LEAD#a@b.c"}, "n": {"N": "12345"},
                          "ek": {"BS": ["AAAAAAAA"]}, "big": {"S": "x".repeat(3000)}});
        let m = item.as_object().unwrap();
        let bytes = item_bytes(m);
        assert!((3000..3100).contains(&bytes), "{bytes}");
        assert_eq!(units_of(400, Some(&json!({"Item": item}))), 3.0);
        assert_eq!(
            units_of(
                200,
                Some(&json!({"ConsumedCapacity": {"CapacityUnits": 2.0}}))
            ),
            2.0
        );
    }

    #[test]
    fn the_binaries_of_a_write_are_found_in_sets_and_values() {
        let v = json!({":k": {"BS": ["a1", "b2"]}, ":m": {"B": "c3"}, ":s": {"S": "no"},
                       ":l": {"L": [{"B": "d4"}]}});
        let mut out = Vec::new();
        binaries(Some(&v), &mut out);
        out.sort();
        assert_eq!(out, ["a1", "b2", "c3", "d4"]);
    }
}
