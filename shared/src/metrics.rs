//! CloudWatch metrics in Embedded Metric Format: JSON lines on stdout, which
//! CloudWatch Logs turns into metrics with no API call. The ingest writes one
//! per request; the consumer one per event type and batch (values as arrays),
//! because log bytes are a large part of the bill per webhook.
//!
//! A few lines of our own rather than a crate: the format is a fixed,
//! documented envelope, and the hot path wants one `write` with no
//! allocation beyond the line itself.

use serde_json::{json, Map, Value};
use std::io::Write;

pub const DEFAULT_NAMESPACE: &str = "SmartleadWebhooks";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// Where metric lines go. Disabled in unit tests and benchmarks.
/// A value to 1/100, in fewer bytes than every digit of an `f64`
/// (latencies in ms: 10 µs is below what they measure).
fn compact(v: f64) -> Value {
    let r = (v * 100.0).round() / 100.0;
    if r.is_finite() {
        json!(r)
    } else {
        json!(v)
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function: String,
    enabled: bool,
    /// Where lines go instead of stdout (tests measuring them).
    sink: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function: impl Into<String>) -> Metrics {
        Metrics {
            namespace: namespace.into(),
            function: function.into(),
            enabled: true,
            sink: None,
        }
    }

    pub fn disabled() -> Metrics {
        Metrics {
            namespace: String::new(),
            function: String::new(),
            enabled: false,
            sink: None,
        }
    }

    /// `METRICS_NAMESPACE` (default `SmartleadWebhooks`); `METRICS_DISABLED=1` turns them off.
    /// Metrics whose lines are kept in the returned buffer, not printed.
    pub fn capturing(function: &str) -> (Metrics, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut m = Metrics::new(DEFAULT_NAMESPACE, function);
        m.sink = Some(buf.clone());
        (m, buf)
    }

    fn write_line(&self, line: &str) {
        match &self.sink {
            Some(buf) => {
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
        }
    }

    pub fn from_env(function: &str) -> Metrics {
        if std::env::var("METRICS_DISABLED").is_ok_and(|v| v == "1" || v == "true") {
            return Metrics::disabled();
        }
        let ns =
            std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| DEFAULT_NAMESPACE.to_owned());
        Metrics::new(ns, function)
    }

    /// The EMF document: `Function` plus `dims` as dimensions; a metric with
    /// several values is written as an array (EMF allows up to 100).
    pub fn document(
        &self,
        dims: &[(&str, &str)],
        values: &[(&str, &[f64], Unit)],
        now_ms: i64,
    ) -> Value {
        let mut doc = Map::new();
        let mut dim_names = vec![Value::String("Function".into())];
        doc.insert("Function".into(), Value::String(self.function.clone()));
        for (k, v) in dims {
            dim_names.push(Value::String((*k).into()));
            doc.insert((*k).into(), Value::String((*v).into()));
        }
        let defs: Vec<Value> = values
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        for (name, v, _) in values {
            let v = match v {
                [one] => compact(*one),
                many => Value::Array(many.iter().map(|x| compact(*x)).collect()),
            };
            doc.insert((*name).into(), v);
        }
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    // The full set, and a per-function roll-up that alarms can use.
                    "Dimensions": [dim_names, ["Function"]],
                    "Metrics": defs,
                }]
            }),
        );
        Value::Object(doc)
    }

    pub fn emit(&self, dims: &[(&str, &str)], values: &[(&str, f64, Unit)]) {
        if !self.enabled {
            return;
        }
        let values: Vec<(&str, &[f64], Unit)> = values
            .iter()
            .map(|(n, v, u)| (*n, std::slice::from_ref(v), *u))
            .collect();
        self.emit_many(dims, &values);
    }

    /// One document for many observations (at most 100 values a metric).
    pub fn emit_many(&self, dims: &[(&str, &str)], values: &[(&str, &[f64], Unit)]) {
        if !self.enabled {
            return;
        }
        let doc = self.document(dims, values, chrono::Utc::now().timestamp_millis());
        let mut line = doc.to_string();
        line.push('\n');
        self.write_line(&line);
    }

    /// Shorthand for one counter.
    /// [`Metrics::emit`], with `props` as the document's other fields, so
    /// that one line is both the metrics and the log record (Logs Insights
    /// reads its fields like any JSON line's). False when metrics are off:
    /// then the caller logs the record itself.
    pub fn emit_logged(
        &self,
        dims: &[(&str, &str)],
        values: &[(&str, f64, Unit)],
        props: &[(&str, Value)],
        extra: Option<(&str, &str)>,
    ) -> bool {
        if !self.enabled {
            return false;
        }
        let values: Vec<(&str, &[f64], Unit)> = values
            .iter()
            .map(|(n, v, u)| (*n, std::slice::from_ref(v), *u))
            .collect();
        let mut doc = self.document(dims, &values, chrono::Utc::now().timestamp_millis());
        if let Some(o) = doc.as_object_mut() {
            for (k, v) in props {
                o.entry(*k).or_insert_with(|| v.clone());
            }
            if let Some((k, v)) = extra {
                o.entry(k).or_insert_with(|| v.into());
            }
        }
        let mut line = doc.to_string();
        line.push('\n');
        self.write_line(&line);
        true
    }

    pub fn count(&self, name: &str, dims: &[(&str, &str)]) {
        self.emit(dims, &[(name, 1.0, Unit::Count)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_valid_emf() {
        let m = Metrics::new("Ns", "ingest");
        let d = m.document(
            &[("EventType", "EMAIL_OPEN")],
            &[
                ("Queued", &[1.0], Unit::Count),
                ("Latency", &[2.0, 3.0], Unit::Milliseconds),
            ],
            42,
        );
        assert_eq!(d["Function"], "ingest");
        assert_eq!(d["EventType"], "EMAIL_OPEN");
        assert_eq!(d["Queued"], 1.0);
        assert_eq!(d["Latency"], json!([2.0, 3.0]));
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Ns");
        assert_eq!(
            cw["Dimensions"],
            json!([["Function", "EventType"], ["Function"]])
        );
        assert_eq!(cw["Metrics"][0], json!({"Name": "Queued", "Unit": "Count"}));
        assert_eq!(d["_aws"]["Timestamp"], 42);
    }
}
