//! One record: its body (inline or claim-checked), the times its message
//! carries, the event it holds handed on, or the record rejected and kept.

use super::{BlobError, BlobReader, Consumer, Delivery, Done, Outcome, QueueMessage, MAX_LEASE};
use crate::app::store::{Rejected, StateStore};
use crate::domain::event::SmartleadEvent;
use crate::domain::message::{attr, ClaimCheckMessage, LOCATION_S3};
use crate::domain::time::EventTime;
use std::time::Instant;
use tracing::Instrument;

/// The ingest's `received_at` attribute, which every copy keeps.
fn received_at(m: &QueueMessage) -> Option<EventTime> {
    m.attribute(attr::RECEIVED_AT).and_then(EventTime::parse)
}

/// SQS's `SentTimestamp`: new for a redriven or replayed copy.
fn sent_timestamp(m: &QueueMessage) -> Option<EventTime> {
    m.sent_ms.and_then(EventTime::from_millis)
}

/// When the pipeline first received the event: the older of
/// [`received_at`] and [`sent_timestamp`]; else now.
fn sent_time(m: &QueueMessage) -> EventTime {
    match (received_at(m), sent_timestamp(m)) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or_else(EventTime::now),
    }
}

/// What names this message through every redelivery and redrive (a
/// pending fan-out mark names it): [`received_at`], which copies keep;
/// else [`sent_timestamp`]; else now (epoch ms).
fn origin_ms(m: &QueueMessage) -> i64 {
    received_at(m)
        .or_else(|| sent_timestamp(m))
        .unwrap_or_else(EventTime::now)
        .millis()
}

pub(crate) enum Body {
    Ready(Vec<u8>),
    /// Reason, detail, raw text, and the record's key when the raw text is
    /// not what names the event (a claim check names its body's hash).
    Reject(&'static str, String, String, Option<String>),
    Retry(String),
}

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    pub(crate) async fn body(&self, m: &QueueMessage) -> Body {
        let text = m.body.clone();
        if m.attribute(attr::BODY_LOCATION) != Some(LOCATION_S3) {
            return Body::Ready(text.into_bytes());
        }
        let pointer: ClaimCheckMessage = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => return Body::Reject("bad_claim_check", e.to_string(), text, None),
        };
        let Some(blobs) = &self.blobs else {
            return Body::Retry("claim-checked message but no S3 client configured".into());
        };
        let cc = &pointer.claim_check;
        // One record per body, whichever request (and S3 key) carried it.
        let key = Some(format!(
            "REJECTED:body:{}",
            cc.sha256.get(..32).unwrap_or(&cc.sha256)
        ));
        match blobs.get(&cc.bucket, &cc.key).await {
            Ok(bytes) if crate::domain::message::sha256_hex(&bytes) == cc.sha256 => {
                Body::Ready(bytes)
            }
            Ok(_) => Body::Reject(
                "claim_check_corrupt",
                "stored body does not match its SHA-256".into(),
                text,
                key,
            ),
            Err(BlobError::NotFound) => Body::Reject(
                "claim_check_missing",
                format!("s3://{}/{} is gone", cc.bucket, cc.key),
                text,
                key,
            ),
            Err(e @ BlobError::Transient(_)) => Body::Retry(e.to_string()),
        }
    }

    /// One record on its own (its metrics are left to the batch).
    pub async fn handle_record(&self, m: &QueueMessage) -> Outcome {
        self.record(m, EventTime::now().millis() + MAX_LEASE.as_millis() as i64)
            .await
            .outcome
    }

    pub(super) async fn record(&self, m: &QueueMessage, lease_until_ms: i64) -> Done {
        let message_id = m.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "record",
            message_id = %message_id,
            event_type = tracing::field::Empty,
            dedup_key = tracing::field::Empty
        );
        async {
            let started = Instant::now();
            let received = sent_time(m);
            let none = || "NONE".to_owned();
            let (outcome, event_type, job) = match self.body(m).await {
                Body::Retry(e) => (Outcome::Failed(e), none(), None),
                Body::Reject(reason, detail, raw, key) => {
                    let key = key.as_deref();
                    let o = self.reject(key, &message_id, reason, &detail, &raw, received);
                    (o.await, none(), None)
                }
                Body::Ready(bytes) => match SmartleadEvent::from_slice(&bytes) {
                    Err(e) => {
                        let raw = String::from_utf8_lossy(&bytes);
                        let detail = e.to_string();
                        let o = self.reject(None, &message_id, e.code(), &detail, &raw, received);
                        (o.await, none(), None)
                    }
                    Ok(ev) => {
                        // SmartLead's event id and webhook level, as the ingest passed them on.
                        let ev = ev.with_delivery(
                            m.attribute(attr::SMARTLEAD_REQUEST_ID),
                            m.attribute(attr::WEBHOOK_LEVEL),
                        );
                        // An agency's: the event's client (the URL's as a last resort).
                        let url_client = m.attribute(attr::CLIENT_ID);
                        let clients = &self.effects.clients;
                        let ev = clients.resolve(ev, url_client, &self.metrics).await;
                        let d = Delivery {
                            message: m,
                            message_id: &message_id,
                            bytes: &bytes,
                            received,
                            origin_ms: origin_ms(m),
                            lease_until_ms,
                        };
                        self.event(ev, &d).await
                    }
                },
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match &outcome {
                Outcome::Failed(e) => {
                    tracing::error!(outcome = "failed", error = %e, "record failed; SQS will redeliver it")
                }
                Outcome::Rejected(reason) => {
                    tracing::warn!(outcome = "rejected", reason, "record rejected and kept")
                }
                // ProcessingLatency has the time; this line is the outcome.
                o => tracing::info!(outcome = o.label(), "record done"),
            }
            Done {
                outcome,
                event_type,
                ms,
                job,
            }
        }
        .instrument(span)
        .await
    }

    pub(super) async fn reject(
        &self,
        key: Option<&str>,
        message_id: &str,
        reason: &'static str,
        detail: &str,
        raw: &str,
        received: EventTime,
    ) -> Outcome {
        // One record per event, whichever delivery brings it: keyed by the
        // event's dedup key (else its body's hash) and the time the store
        // first saw that key.
        let key = key.map(str::to_owned).unwrap_or_else(|| {
            let hash = crate::domain::message::sha256_hex(raw.as_bytes());
            format!("REJECTED:body:{}", &hash[..32])
        });
        let received_at = match self.store.first_seen(&key, received).await {
            Ok(t) => t.to_string(),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        // Kept for people to read, so without the webhook secret.
        let raw = crate::domain::event::scrub_body(raw);
        let mut record = Rejected {
            key: &key,
            message_id,
            reason,
            detail,
            raw: &raw,
            received_at: &received_at,
        };
        let mut result = self.store.reject(record.clone()).await;
        if matches!(&result, Err(e) if !e.is_retryable()) {
            // The record itself was refused: keep it with less of the body;
            // if even that fails, SQS brings the message back (and at last
            // the DLQ keeps it) rather than lose it.
            record.raw = crate::domain::plan::cut_bytes(&raw, 64 * 1024);
            record.detail = "the raw body was refused whole; its first 64 KB are kept";
            result = self.store.reject(record).await;
        }
        match result {
            Ok(()) => Outcome::Rejected(reason),
            // Not recorded yet: let SQS bring it back rather than lose it.
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}
