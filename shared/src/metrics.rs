//! CloudWatch metrics in Embedded Metric Format: JSON lines on stdout, which
//! CloudWatch Logs turns into metrics with no API call. The consumer writes
//! one per batch (values summed, latencies as an array); the ingest's queued
//! webhooks write no EMF at all but one short record line ([`Metrics::record`])
//! that the template's metric filters count: an EMF envelope (~250 bytes) per
//! request was most of a webhook's log bytes, which are most of its bill.
//!
//! A few lines of our own rather than a crate: the format is a fixed,
//! documented envelope, and the hot path wants one `write` with no
//! allocation beyond the line itself.

use serde_json::{json, Map, Value};
use std::io::Write;

/// The namespace without `METRICS_NAMESPACE` (local runs, tests).
pub const DEFAULT_NAMESPACE: &str = "SmartleadWebhooks";

/// A deployed stack's namespace, one per stack: two stacks in one account
/// (staging, production) share no metric and no alarm. template.yaml sets
/// it as each function's `METRICS_NAMESPACE` (`!Sub
/// SmartleadWebhooks/${AWS::StackName}`); `smartlead status` reads it.
pub fn stack_namespace(stack: &str) -> String {
    format!("{DEFAULT_NAMESPACE}/{stack}")
}

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
    if r.is_finite() && r.fract() == 0.0 && r.abs() < 1e15 {
        // `1`, not `1.0`: counts are whole.
        json!(r as i64)
    } else if r.is_finite() {
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

    /// As `config` says: its namespace, or no metric lines at all.
    pub fn from_config(config: &crate::config::MetricsConfig, function: &str) -> Metrics {
        if config.disabled {
            return Metrics::disabled();
        }
        Metrics::new(config.namespace.clone(), function)
    }

    /// As the process environment says (see [`crate::config::MetricsConfig`]).
    pub fn from_env(function: &str) -> Metrics {
        let env = crate::config::Env::process();
        Metrics::from_config(&crate::config::MetricsConfig::from_env(&env), function)
    }

    /// The EMF document: `Function` plus `dims` as dimensions (and a
    /// per-function roll-up when `dims` is not empty); a metric with several
    /// values is written as an array (EMF allows up to 100).
    pub fn document(
        &self,
        dims: &[(&str, &str)],
        values: &[(&str, &[f64], Unit)],
        now_ms: i64,
    ) -> Value {
        self.document_sets(dims, values, now_ms, !dims.is_empty())
    }

    /// [`Metrics::document`], with the per-function roll-up only when
    /// `roll_up`: a count already in another document's per-function total
    /// must not be added to it twice.
    fn document_sets(
        &self,
        dims: &[(&str, &str)],
        values: &[(&str, &[f64], Unit)],
        now_ms: i64,
        roll_up: bool,
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
                    "Dimensions": if roll_up { json!([dim_names, ["Function"]]) } else { json!([dim_names]) },
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

    /// One counter by `dims` only, without the per-function roll-up (for a
    /// breakdown of a count another document already totals).
    pub fn count_without_roll_up(&self, name: &str, value: f64, dims: &[(&str, &str)]) {
        if !self.enabled {
            return;
        }
        let v = [value];
        let doc = self.document_sets(
            dims,
            &[(name, &v, Unit::Count)],
            chrono::Utc::now().timestamp_millis(),
            false,
        );
        let mut line = doc.to_string();
        line.push('\n');
        self.write_line(&line);
    }

    /// A record line that is no EMF document: `Function` and `props`, for
    /// the template's metric filters to count (the ingest's queued webhooks:
    /// `Received`, `Queued` by `EventType`) and Logs Insights to read. False
    /// when metrics are off: then the caller logs the record itself.
    pub fn record(&self, props: &[(&str, Value)]) -> bool {
        if !self.enabled {
            return false;
        }
        let mut doc = Map::new();
        doc.insert("Function".into(), Value::String(self.function.clone()));
        for (k, v) in props {
            doc.insert((*k).into(), v.clone());
        }
        let mut line = Value::Object(doc).to_string();
        line.push('\n');
        self.write_line(&line);
        true
    }

    /// Shorthand for one counter.
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
        // Whole values are written as integers (`2`, not `2.0`: fewer bytes).
        assert_eq!(d["Latency"], json!([2, 3]));
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Ns");
        assert_eq!(
            cw["Dimensions"],
            json!([["Function", "EventType"], ["Function"]])
        );
        assert_eq!(cw["Metrics"][0], json!({"Name": "Queued", "Unit": "Count"}));
        assert_eq!(d["_aws"]["Timestamp"], 42);
    }

    #[test]
    fn a_document_without_dimensions_has_one_dimension_set_and_short_numbers() {
        let m = Metrics::new("Ns", "consumer");
        let d = m.document(
            &[],
            &[
                ("Processed", &[10.0], Unit::Count),
                ("ProcessingLatency", &[12.0, 2.5, 0.123], Unit::Milliseconds),
            ],
            42,
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        let line = d.to_string();
        assert!(line.contains(r#""Processed":10,"#), "{line}");
        assert!(
            line.contains(r#""ProcessingLatency":[12,2.5,0.12]"#),
            "{line}"
        );
    }

    #[test]
    fn a_breakdown_without_roll_up_is_not_added_to_the_total_again() {
        let (m, buf) = Metrics::capturing("consumer");
        m.count_without_roll_up("Processed", 2.0, &[("EventType", "UNKNOWN")]);
        let text = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf8");
        let d: Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "EventType"]])
        );
        assert_eq!(d["Processed"], 2);
    }

    #[test]
    fn a_record_is_a_plain_line_with_the_function() {
        let (m, buf) = Metrics::capturing("ingest");
        assert!(m.record(&[
            ("outcome", json!("queued")),
            ("EventType", json!("EMAIL_OPEN"))
        ]));
        let text = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(
            text,
            "{\"EventType\":\"EMAIL_OPEN\",\"Function\":\"ingest\",\"outcome\":\"queued\"}\n"
        );
        assert!(!Metrics::disabled().record(&[]));
    }
}
