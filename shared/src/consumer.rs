//! The consumer: one SQS batch in, `batchItemFailures` out.
//!
//! Each record is handled on its own (own task, own span); records run
//! concurrently up to a bound. A record ends in one of four ways:
//!
//! | outcome | when | SQS |
//! |---|---|---|
//! | processed | the plan committed with a fresh dedup marker | deleted |
//! | duplicate | the dedup marker was already there | deleted |
//! | rejected | permanent: not a SmartLead event, or its claim-check object is gone or corrupt; kept in a `REJECTED` record with the raw body | deleted |
//! | failed | transient: throttling, timeouts, conflicts after retries, S3 errors | reported in `batchItemFailures`, redelivered, then DLQ |

use crate::event::SmartleadEvent;
use crate::message::{attr, ClaimCheckMessage, LOCATION_S3};
use crate::metrics::{Metrics, Unit};
use crate::plan::{plan, ScoreWeights};
use crate::store::{ApplyOutcome, Rejected, StateStore};
use crate::time::EventTime;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::time::Instant;
use tracing::Instrument;

pub const DEFAULT_CONCURRENCY: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("claim-check object not found")]
    NotFound,
    #[error("claim-check read failed: {0}")]
    Transient(String),
}

/// Reads claim-checked bodies back.
#[async_trait]
pub trait BlobReader: Send + Sync {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError>;
}

#[async_trait]
impl BlobReader for aws_sdk_s3::Client {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        match self.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .map_err(|e| BlobError::Transient(e.to_string())),
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Err(BlobError::NotFound)
                } else {
                    Err(BlobError::Transient(
                        aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                    ))
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Processed { write_units: f64 },
    Duplicate,
    Rejected(&'static str),
    Failed(String),
}

/// Metric names, by [`Outcome::metric_index`].
const METRIC_NAMES: [&str; 4] = ["Processed", "Duplicates", "RejectedEvents", "Failures"];

struct Done {
    outcome: Outcome,
    event_type: String,
    ms: f64,
}

impl Outcome {
    fn metric_index(&self) -> usize {
        match self {
            Outcome::Processed { .. } => 0,
            Outcome::Duplicate => 1,
            Outcome::Rejected(_) => 2,
            Outcome::Failed(_) => 3,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Processed { .. } => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        }
    }
}

pub struct Consumer<S, B> {
    pub store: S,
    pub blobs: Option<B>,
    pub weights: ScoreWeights,
    pub concurrency: usize,
    pub metrics: Metrics,
}

fn attribute<'a>(m: &'a SqsMessage, name: &str) -> Option<&'a str> {
    m.message_attributes
        .get(name)
        .and_then(|a| a.string_value.as_deref())
}

/// When SQS first received the message (falls back to now).
fn sent_time(m: &SqsMessage) -> EventTime {
    m.attributes
        .get("SentTimestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(EventTime::from_millis)
        .unwrap_or_else(EventTime::now)
}

enum Body {
    Ready(Vec<u8>),
    Reject(&'static str, String, String),
    Retry(String),
}

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let records = event.records;
        let results: Vec<(Option<String>, Done)> = futures::stream::iter(records.iter())
            .map(|m| async move { (m.message_id.clone(), self.record(m).await) })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        // One metric document per event type and batch.
        let mut by_type: std::collections::BTreeMap<&str, ([f64; 4], Vec<f64>)> =
            Default::default();
        for (_, done) in &results {
            let (counts, latencies) = by_type.entry(done.event_type.as_str()).or_default();
            counts[done.outcome.metric_index()] += 1.0;
            latencies.push(done.ms);
        }
        for (event_type, (counts, latencies)) in &by_type {
            let mut values: Vec<(&str, &[f64], Unit)> = Vec::new();
            for (i, name) in METRIC_NAMES.iter().enumerate() {
                if counts[i] > 0.0 {
                    values.push((name, std::slice::from_ref(&counts[i]), Unit::Count));
                }
            }
            for chunk in latencies.chunks(100) {
                let mut v = values.clone();
                v.push(("ProcessingLatency", chunk, Unit::Milliseconds));
                self.metrics.emit_many(&[("EventType", event_type)], &v);
                values.clear();
            }
        }
        for (id, done) in results {
            if let Outcome::Failed(_) = done.outcome {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id.unwrap_or_default();
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    async fn body(&self, m: &SqsMessage) -> Body {
        let text = m.body.clone().unwrap_or_default();
        if attribute(m, attr::BODY_LOCATION) != Some(LOCATION_S3) {
            return Body::Ready(text.into_bytes());
        }
        let pointer: ClaimCheckMessage = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => return Body::Reject("bad_claim_check", e.to_string(), text),
        };
        let Some(blobs) = &self.blobs else {
            return Body::Retry("claim-checked message but no S3 client configured".into());
        };
        let cc = &pointer.claim_check;
        match blobs.get(&cc.bucket, &cc.key).await {
            Ok(bytes) if crate::message::sha256_hex(&bytes) == cc.sha256 => Body::Ready(bytes),
            Ok(_) => Body::Reject(
                "claim_check_corrupt",
                "stored body does not match its SHA-256".into(),
                text,
            ),
            Err(BlobError::NotFound) => Body::Reject(
                "claim_check_missing",
                format!("s3://{}/{} is gone", cc.bucket, cc.key),
                text,
            ),
            Err(BlobError::Transient(e)) => Body::Retry(e),
        }
    }

    /// One record on its own (its metrics are left to the batch).
    pub async fn handle_record(&self, m: &SqsMessage) -> Outcome {
        self.record(m).await.outcome
    }

    async fn record(&self, m: &SqsMessage) -> Done {
        let message_id = m.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("record", message_id = %message_id, event_type = tracing::field::Empty, dedup_key = tracing::field::Empty);
        async {
            let started = Instant::now();
            let received = sent_time(m);
            let (outcome, event_type) = match self.body(m).await {
                Body::Retry(e) => (Outcome::Failed(e), "NONE".to_owned()),
                Body::Reject(reason, detail, raw) => (self.reject(&message_id, reason, &detail, &raw, received).await, "NONE".to_owned()),
                Body::Ready(bytes) => match SmartleadEvent::from_slice(&bytes) {
                    Err(e) => {
                        let raw = String::from_utf8_lossy(&bytes);
                        (self.reject(&message_id, e.code(), &e.to_string(), &raw, received).await, "NONE".to_owned())
                    }
                    Ok(ev) => {
                        let p = plan(&ev, received, &self.weights);
                        let span = tracing::Span::current();
                        span.record("event_type", ev.event_type.as_str());
                        span.record("dedup_key", p.key.as_str());
                        let outcome = match self.store.apply(&p, &message_id).await {
                            Ok(ApplyOutcome::Applied { write_units, .. }) => Outcome::Processed { write_units },
                            Ok(ApplyOutcome::Duplicate) => Outcome::Duplicate,
                            Err(e) => Outcome::Failed(e.to_string()),
                        };
                        (outcome, ev.event_type.metric_name().to_owned())
                    }
                },
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match &outcome {
                Outcome::Failed(e) => tracing::error!(outcome = "failed", error = %e, "record failed; SQS will redeliver it"),
                Outcome::Rejected(reason) => tracing::warn!(outcome = "rejected", reason, "record rejected and kept"),
                o => tracing::info!(outcome = o.label(), ms, "record done"),
            }
            Done { outcome, event_type, ms }
        }
        .instrument(span)
        .await
    }

    async fn reject(
        &self,
        message_id: &str,
        reason: &'static str,
        detail: &str,
        raw: &str,
        received: EventTime,
    ) -> Outcome {
        let received_at = received.to_string();
        match self
            .store
            .reject(Rejected {
                message_id,
                reason,
                detail,
                raw,
                received_at: &received_at,
            })
            .await
        {
            Ok(()) => Outcome::Rejected(reason),
            // Not recorded yet: let SQS bring it back rather than lose it.
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}
