//! The consumer: one SQS batch in, `batchItemFailures` out.
//!
//! Each record is handled on its own (own task, own span); records run
//! concurrently up to a bound. A record ends in one of four ways:
//!
//! | outcome | when | SQS |
//! |---|---|---|
//! | processed | at least one of the plan's items absorbed the event (an item DynamoDB refuses even trimmed is recorded as `store_refused`, the others written) | deleted |
//! | duplicate | every item had absorbed it already | deleted |
//! | rejected | permanent: not a SmartLead event, its claim-check object is gone or corrupt, or DynamoDB refuses every item even trimmed; kept in a `REJECTED` record with the raw body | deleted |
//! | failed | transient: throttling, timeouts, conflicts after retries, S3 errors | reported in `batchItemFailures`, redelivered, then DLQ |
//!
//! After the state, the batch runs the claimed side effects ([`crate::app::effects`]):
//! one batched `PutEvents` for the fan-out, then the alerts. A failed effect
//! puts its record in `batchItemFailures` too; the redelivery is a duplicate
//! for the state and retries only the effect.

use crate::app::effects::{bus_event, EffectError, Effects, Notifier, FANOUT};
use crate::app::store::{ApplyOutcome, Claim, Rejected, Settle, StateStore, StoreError};
use crate::domain::event::SmartleadEvent;
use crate::domain::key::DedupKey;
use crate::domain::message::{attr, ClaimCheckMessage, LOCATION_S3};
use crate::domain::plan::{plan_within, ScoreWeights};
use crate::domain::time::EventTime;
use crate::metrics::{Metrics, Unit};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub const DEFAULT_CONCURRENCY: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("claim-check object not found")]
    NotFound,
    #[error("claim-check read failed: {0}")]
    Transient(#[source] crate::app::store::BoxError),
}

/// Reads claim-checked bodies back.
#[async_trait]
pub trait BlobReader: Send + Sync {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError>;
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

/// One SQS record being handled.
struct Delivery<'a> {
    message_id: &'a str,
    bytes: &'a [u8],
    received: EventTime,
    /// [`origin_ms`] of the message.
    origin_ms: i64,
    lease_until_ms: i64,
}

/// What the store's write left for the effects.
struct Applied {
    /// The first item after the write (`ALL_NEW`).
    state: Option<serde_json::Value>,
    /// The fan-out's pending mark is on the first item.
    marked: bool,
}

impl Applied {
    /// The write's answer: the first item's state; its mark is gone if
    /// DynamoDB refused that item.
    fn written(&mut self, state: Option<serde_json::Value>, refused: &[(usize, String)]) {
        self.state = state;
        self.marked &= !refused.iter().any(|(i, _)| *i == 0);
    }
}

struct Done {
    outcome: Outcome,
    event_type: String,
    ms: f64,
    job: Option<Job>,
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
    pub effects: Effects,
    /// How far from its receive time an event's own time is believed.
    pub time_window: crate::domain::time::TimeWindow,
}

/// The longest an effect stays claimed (shorter if the invocation ends sooner).
pub const MAX_LEASE: Duration = Duration::from_secs(60);

/// Effects a record claimed, to run after the batch's state is stored.
struct Job {
    message_id: String,
    ev: SmartleadEvent,
    key: DedupKey,
    /// The lead (or campaign, account) item the event changed: its state goes
    /// into the fan-out.
    state_item: Option<(String, String)>,
    /// That item as the write returned it (`ALL_NEW`): no read for the fan-out.
    state: Option<serde_json::Value>,
    /// The fan-out is pending on that item's mark (`fo`), not on a claim.
    marked: bool,
    effects: Vec<&'static str>,
    lease_until_ms: i64,
    /// When the delivery was first received (its fan-out mark names it).
    received_ms: i64,
}

/// When this process handled its first record (epoch ms): after the
/// deploy that runs it.
fn process_start_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(|| EventTime::now().millis())
}

fn attribute<'a>(m: &'a SqsMessage, name: &str) -> Option<&'a str> {
    m.message_attributes
        .get(name)
        .and_then(|a| a.string_value.as_deref())
}

/// The ingest's `received_at` attribute, which every copy keeps.
fn received_at(m: &SqsMessage) -> Option<EventTime> {
    attribute(m, attr::RECEIVED_AT).and_then(EventTime::parse)
}

/// SQS's `SentTimestamp`: new for a redriven or replayed copy.
fn sent_timestamp(m: &SqsMessage) -> Option<EventTime> {
    m.attributes
        .get("SentTimestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(EventTime::from_millis)
}

/// When the pipeline first received the event: the older of
/// [`received_at`] and [`sent_timestamp`]; else now.
fn sent_time(m: &SqsMessage) -> EventTime {
    match (received_at(m), sent_timestamp(m)) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or_else(EventTime::now),
    }
}

/// What names this message through every redelivery and redrive (a
/// pending fan-out mark names it): [`received_at`], which copies keep;
/// else [`sent_timestamp`]; else now (epoch ms).
fn origin_ms(m: &SqsMessage) -> i64 {
    received_at(m)
        .or_else(|| sent_timestamp(m))
        .unwrap_or_else(EventTime::now)
        .millis()
}

enum Body {
    Ready(Vec<u8>),
    /// Reason, detail, raw text, and the record's key when the raw text is
    /// not what names the event (a claim check names its body's hash).
    Reject(&'static str, String, String, Option<String>),
    Retry(String),
}

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_batch_until(event, None).await
    }

    /// Handles a batch; `deadline_ms` (epoch ms, the invocation's deadline)
    /// bounds the effects' leases and waits.
    pub async fn handle_batch_until(
        &self,
        event: SqsEvent,
        deadline_ms: Option<i64>,
    ) -> SqsBatchResponse {
        let now_ms = EventTime::now().millis();
        let remaining = deadline_ms
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms).max(0) as u64))
            .unwrap_or(MAX_LEASE)
            .min(MAX_LEASE);
        let deadline = Instant::now() + remaining;
        let lease_until_ms = now_ms + remaining.as_millis() as i64;
        let records = event.records;
        let mut results: Vec<(Option<String>, Done)> = futures::stream::iter(records.iter())
            .map(|m| async move { (m.message_id.clone(), self.record(m, lease_until_ms).await) })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let jobs: Vec<Job> = results
            .iter_mut()
            .filter_map(|(_, d)| d.job.take())
            .collect();
        let (effect_failures, effects_done) = self.run_effects(jobs, deadline).await;
        let mut response = SqsBatchResponse::default();
        // One metric document a batch, by `Function` only: a document per
        // event type cost ~300 log bytes each. The by-type view is the
        // ingest's `Queued`; `UNKNOWN` types keep their own (rare) count.
        let mut counts = [0.0_f64; 4];
        let mut unknown = 0.0;
        let mut latencies = Vec::with_capacity(results.len());
        for (_, done) in &results {
            counts[done.outcome.metric_index()] += 1.0;
            if done.event_type == "UNKNOWN" && done.outcome.metric_index() == 0 {
                unknown += 1.0;
            }
            // Whole milliseconds: what a latency percentile needs.
            latencies.push(done.ms.round());
        }
        let mut values: Vec<(&str, &[f64], Unit)> = Vec::new();
        for (i, name) in METRIC_NAMES.iter().enumerate() {
            if counts[i] > 0.0 {
                values.push((name, std::slice::from_ref(&counts[i]), Unit::Count));
            }
        }
        if effects_done > 0.0 {
            values.push((
                "EffectsDone",
                std::slice::from_ref(&effects_done),
                Unit::Count,
            ));
        }
        for chunk in latencies.chunks(100) {
            let mut v = values.clone();
            v.push(("ProcessingLatency", chunk, Unit::Milliseconds));
            self.metrics.emit_many(&[], &v);
            values.clear();
        }
        if unknown > 0.0 {
            // Already in the batch document's per-function `Processed`.
            self.metrics
                .count_without_roll_up("Processed", unknown, &[("EventType", "UNKNOWN")]);
        }
        for (id, done) in results {
            let effect_failed = id.as_ref().is_some_and(|i| effect_failures.contains(i));
            if matches!(done.outcome, Outcome::Failed(_)) || effect_failed {
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
    pub async fn handle_record(&self, m: &SqsMessage) -> Outcome {
        self.record(m, EventTime::now().millis() + MAX_LEASE.as_millis() as i64)
            .await
            .outcome
    }

    async fn record(&self, m: &SqsMessage, lease_until_ms: i64) -> Done {
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
                            attribute(m, attr::SMARTLEAD_REQUEST_ID),
                            attribute(m, attr::WEBHOOK_LEVEL),
                        );
                        let d = Delivery {
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

    /// The plan of a parsed event, with the effects it gets. An event whose
    /// records are keyed by its time is planned as received when the store
    /// first saw it, so that every delivery names the same items (whether
    /// the event's own time is believed is judged against that time too).
    async fn plan_for(
        &self,
        ev: &SmartleadEvent,
        d: &Delivery<'_>,
    ) -> Result<crate::domain::plan::Plan, StoreError> {
        let mut p = plan_within(ev, d.received, &self.weights, &self.time_window);
        if p.keyed_by_time {
            let first = self.store.first_seen(p.key.as_str(), d.received).await?;
            if first != d.received {
                p = plan_within(ev, first, &self.weights, &self.time_window);
            }
        }
        if p.time_clamped {
            tracing::warn!(event_time = ?ev.normalized().event_time.map(|t| t.to_string()), "event time outside the believed window; using the receive time");
            self.metrics.count(
                "EventTimeClamped",
                &[("EventType", ev.event_type.metric_name())],
            );
        }
        p.effects = self.effects.for_event(ev);
        p.lease_until_ms = d.lease_until_ms;
        // This message (the plan's time may be the first delivery's): the
        // fan-out's mark names it.
        p.received_ms = d.origin_ms;
        let span = tracing::Span::current();
        span.record("event_type", ev.event_type.as_str());
        span.record("dedup_key", p.key.as_str());
        Ok(p)
    }

    /// One parsed event: applied exactly once, its effects claimed (the job
    /// that runs them, if any).
    async fn event(&self, ev: SmartleadEvent, d: &Delivery<'_>) -> (Outcome, String, Option<Job>) {
        let p = match self.plan_for(&ev, d).await {
            Ok(p) => p,
            Err(e) => {
                let event_type = ev.event_type.metric_name().to_owned();
                return (Outcome::Failed(e.to_string()), event_type, None);
            }
        };
        let applied = if d.received.millis() < process_start_ms() {
            // Received before this process: maybe applied by the
            // transactional design (a redrive after an upgrade).
            match self.store.applied_before_upgrade(&p.key).await {
                Ok(true) => Ok(ApplyOutcome::AppliedBeforeUpgrade),
                Ok(false) => self.apply_or_trim(&p, d.message_id).await,
                Err(e) => Err(e),
            }
        } else {
            self.apply_or_trim(&p, d.message_id).await
        };
        let (outcome, claimed, applied) = self.after_apply(applied, &ev, &p, d).await;
        let event_type = ev.event_type.metric_name().to_owned();
        match claimed {
            Err(e) => (Outcome::Failed(e.to_string()), event_type, None),
            Ok(effects) if effects.is_empty() => (outcome, event_type, None),
            Ok(effects) => {
                let job = Job {
                    message_id: d.message_id.to_owned(),
                    state_item: p.items.first().map(|u| (u.pk.clone(), u.sk.clone())),
                    state: applied.state,
                    marked: applied.marked,
                    key: p.key.clone(),
                    effects,
                    lease_until_ms: d.lease_until_ms,
                    received_ms: d.origin_ms,
                    ev,
                };
                (outcome, event_type, Some(job))
            }
        }
    }

    /// The record's outcome from the store's answer, and the effects left
    /// to run (claimed).
    async fn after_apply(
        &self,
        applied: Result<ApplyOutcome, StoreError>,
        ev: &SmartleadEvent,
        p: &crate::domain::plan::Plan,
        d: &Delivery<'_>,
    ) -> (Outcome, Result<Vec<&'static str>, StoreError>, Applied) {
        // The fan-out's mark rides on the first item, unless DynamoDB
        // refused that item (then it is claimed).
        let mut a = Applied {
            state: None,
            marked: !p.items.is_empty(),
        };
        let id = d.message_id;
        let (outcome, claimed) = match applied {
            // Then its effects are claimed (see `claim_left`).
            Ok(ApplyOutcome::Applied {
                write_units,
                state,
                fanout,
                trimmed,
                refused,
                ..
            }) => {
                self.count_applied(ev, p, trimmed);
                a.written(state, &refused);
                let kept = self.keep_refused(id, p, &refused, d.bytes, d.received);
                let outcome = kept.await.unwrap_or(Outcome::Processed { write_units });
                (outcome, self.claim_left(p, id, fanout, a.marked).await)
            }
            // Nothing changed, but its fan-out is still to publish, or an
            // item refuses it (again).
            Ok(ApplyOutcome::Unchanged {
                state,
                fanout,
                refused,
            }) => {
                a.written(state, &refused);
                let kept = self.keep_refused(id, p, &refused, d.bytes, d.received);
                let outcome = match kept.await {
                    Some(failed) => failed,
                    None if refused.len() == p.items.len() => Outcome::Rejected("store_refused"),
                    None => Outcome::Duplicate,
                };
                (outcome, self.claim_left(p, id, fanout, a.marked).await)
            }
            // Stored before: only effects left pending (or abandoned) run.
            Ok(ApplyOutcome::Duplicate) => (
                Outcome::Duplicate,
                self.claim_left(p, id, false, true).await,
            ),
            // Applied by the transactional design: its effects, the fan-out
            // included, were tracked on its marker; what it left pending (a
            // failed publish, a crash) is claimed and run there.
            Ok(ApplyOutcome::AppliedBeforeUpgrade) => (
                Outcome::Duplicate,
                self.claim_left(p, id, false, false).await,
            ),
            // DynamoDB refuses what the event holds: on every delivery
            // alike, so it is kept, not looped to the DLQ.
            Err(e) if !e.is_retryable() => {
                let raw = String::from_utf8_lossy(d.bytes);
                let detail = e.to_string();
                let key = Some(p.key.as_str());
                let o = self.reject(key, id, "store_refused", &detail, &raw, d.received);
                (o.await, Ok(Vec::new()))
            }
            Err(e) => (Outcome::Failed(e.to_string()), Ok(Vec::new())),
        };
        (outcome, claimed, a)
    }

    /// Counts what an applied event's plan says someone should know.
    fn count_applied(&self, ev: &SmartleadEvent, p: &crate::domain::plan::Plan, trimmed: bool) {
        if trimmed {
            self.metrics.count(
                "EventsTrimmed",
                &[("EventType", p.event_type.metric_name())],
            );
        }
        if p.unattributed {
            // Kept, never dropped: counted so someone looks (UnattributedEventsAlarm).
            tracing::warn!(shape = ?ev.shape, "lead event without a lead e-mail address; kept unattributed");
            self.metrics.count(
                "Unattributed",
                &[("EventType", ev.event_type.metric_name())],
            );
        }
    }

    /// Applies the plan. The store applies every item on its own: one
    /// DynamoDB refuses (an item grown past 400 KB of distinct clicked
    /// links, say) is sent again without what can grow (sets other than the
    /// status flags) and with short texts, so that counts, flags,
    /// suppression and effects still land; an item refused even so is
    /// reported (see [`Self::keep_refused`]) and the others are written.
    async fn apply_or_trim(
        &self,
        p: &crate::domain::plan::Plan,
        message_id: &str,
    ) -> Result<ApplyOutcome, StoreError> {
        self.store.apply(p, message_id).await
    }

    /// Keeps a record of the items DynamoDB refused even trimmed (reason
    /// `store_refused`, naming them) and counts them (`StoreRefusedItems`);
    /// `Some(failed)` if the record could not be written (SQS brings the
    /// message back).
    async fn keep_refused(
        &self,
        message_id: &str,
        p: &crate::domain::plan::Plan,
        refused: &[(usize, String)],
        bytes: &[u8],
        received: EventTime,
    ) -> Option<Outcome> {
        if refused.is_empty() {
            return None;
        }
        let detail: Vec<&str> = refused.iter().map(|(_, e)| e.as_str()).collect();
        tracing::warn!(
            items = refused.len(),
            "DynamoDB refused items even trimmed; the others were written"
        );
        self.metrics.emit(
            &[("EventType", p.event_type.metric_name())],
            &[("StoreRefusedItems", refused.len() as f64, Unit::Count)],
        );
        let raw = String::from_utf8_lossy(bytes);
        match self
            .reject(
                Some(p.key.as_str()),
                message_id,
                "store_refused",
                &detail.join("; "),
                &raw,
                received,
            )
            .await
        {
            Outcome::Failed(e) => Some(Outcome::Failed(e)),
            _ => None,
        }
    }

    /// The effects this delivery runs.
    ///
    /// The fan-out needs no claim: the write that absorbs the event into
    /// the plan's first item also marks it pending there (`fo`), and its
    /// publish removes the mark (one write). Any delivery that finds the
    /// mark (`fanout`: its own write, or a refusal showing the item as it
    /// is) publishes it: after a crash, a lost answer, a failed publish, a
    /// redrive. Two deliveries at once may both see it and publish twice,
    /// with the same id (the dedup key). Only when DynamoDB refused the
    /// first item (`marked` false) is it claimed like the alerts.
    ///
    /// Alerts and list hygiene are claimed before they run (a claim creates
    /// their record): exactly one delivery holds a claim at a time.
    async fn claim_left(
        &self,
        p: &crate::domain::plan::Plan,
        message_id: &str,
        fanout: bool,
        marked: bool,
    ) -> Result<Vec<&'static str>, StoreError> {
        let now = EventTime::now().millis();
        let mut out = Vec::new();
        for effect in &p.effects {
            let run = if *effect == FANOUT && marked {
                fanout
            } else {
                self.store
                    .claim(Claim {
                        key: &p.key,
                        effect,
                        message_id,
                        lease_until_ms: p.lease_until_ms,
                        now_ms: now,
                        create: true,
                    })
                    .await?
            };
            if run {
                out.push(*effect);
            }
        }
        Ok(out)
    }

    /// Runs the claimed effects; returns the message ids whose effects failed.
    /// The records to retry, and how many effects were done (counted in the
    /// batch's metric document).
    async fn run_effects(&self, jobs: Vec<Job>, deadline: Instant) -> (HashSet<String>, f64) {
        let mut failed = HashSet::new();
        if jobs.is_empty() {
            return (failed, 0.0);
        }
        let mut counts: Counts = Default::default();
        // Fan-out: one batched PutEvents for the whole batch.
        if let Some(publisher) = &self.effects.publisher {
            let fanout: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.effects.contains(&FANOUT))
                .collect();
            // The states, read concurrently (order kept).
            let events: Vec<_> = futures::stream::iter(fanout.iter())
                .map(|j| async move {
                    let state = match (&j.state, &j.state_item) {
                        (Some(s), _) => Some(s.clone()),
                        // A duplicate whose effect was left to do: read it.
                        (None, Some((pk, sk))) => self.store.item(pk, sk).await.map(|s| s.map(crate::adapters::aws::dynamodb::without_bookkeeping)).unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "could not read the state for the fan-out");
                            None
                        }),
                        (None, None) => None,
                    };
                    bus_event(&j.ev, j.key.as_str(), state)
                })
                .buffered(self.concurrency.max(1))
                .collect()
                .await;
            let results = publisher.publish(&events).await;
            let done: Vec<(&Job, &'static str, Settle)> =
                futures::stream::iter(fanout.into_iter().zip(results))
                    .map(|(j, r)| async move { (j, FANOUT, self.finish(j, FANOUT, r).await) })
                    .buffer_unordered(self.concurrency.max(1))
                    .collect()
                    .await;
            tally(&done, &mut failed, &mut counts);
        }
        // Alerts, a few at a time; each outcome recorded as it comes.
        let alerts: Vec<(&Job, &dyn Notifier)> = jobs
            .iter()
            .flat_map(|j| {
                j.effects
                    .iter()
                    .filter_map(|e| self.effects.notifier(e))
                    .map(move |n| (j, n))
            })
            .collect();
        let done: Vec<(&Job, &'static str, Settle)> = futures::stream::iter(alerts)
            .map(|(j, n)| async move {
                let r = n.notify(&j.ev, j.key.as_str(), deadline).await;
                (j, n.effect(), self.finish(j, n.effect(), r).await)
            })
            .buffer_unordered(4)
            .collect()
            .await;
        tally(&done, &mut failed, &mut counts);
        // Done effects go into the batch's document (by `Function`); an
        // effect refused or failed gets its own, by `Effect` (rare).
        let mut done_total = 0.0;
        for (effect, [ok, refused, bad]) in counts {
            let mut values = Vec::new();
            if refused + bad == 0.0 {
                done_total += ok;
                continue;
            }
            if ok > 0.0 {
                values.push(("EffectsDone", ok, Unit::Count));
            }
            if refused > 0.0 {
                values.push(("EffectsRefused", refused, Unit::Count));
            }
            if bad > 0.0 {
                values.push(("EffectsFailed", bad, Unit::Count));
            }
            self.metrics.emit(&[("Effect", effect)], &values);
        }
        (failed, done_total)
    }

    /// Logs an effect's outcome and records it on the marker at once.
    async fn finish(
        &self,
        j: &Job,
        effect: &'static str,
        result: Result<(), EffectError>,
    ) -> Settle {
        let end = match &result {
            Ok(()) => {
                // A success is on the effect's record and in `EffectsDone`,
                // and at DEBUG here (~170 log bytes at INFO: with the default
                // alerts on replies, the 400-byte budget would not hold).
                // Refusals and failures stay at ERROR and WARN below.
                tracing::debug!(message_id = %j.message_id, dedup_key = %j.key, effect, "effect done");
                Settle::Done
            }
            // Refused for good (a 4xx): recorded and counted, not retried,
            // and it does not hold the record back.
            Err(EffectError::Permanent(e)) => {
                tracing::error!(message_id = %j.message_id, dedup_key = %j.key, effect, error = %e, outcome = "refused", "effect refused; not retried");
                Settle::Refused
            }
            Err(EffectError::Transient(e)) => {
                tracing::error!(message_id = %j.message_id, dedup_key = %j.key, effect, error = %e, "effect failed; SQS will redeliver the record");
                Settle::Retry
            }
        };
        self.settle(j, effect, end).await;
        end
    }

    /// Marks an effect done, or releases it for a retry. Marking it done must
    /// not be lost: a few tries. A release that fails leaves a lease that
    /// runs out, and the redelivery takes it over.
    async fn settle(&self, j: &Job, effect: &'static str, end: Settle) {
        let mark = match &j.state_item {
            Some((pk, sk)) if effect == FANOUT && j.marked => Some((pk, sk)),
            _ => None,
        };
        if mark.is_some() && end == Settle::Retry {
            // The mark stays: the redelivery publishes.
            return;
        }
        for attempt in 0..3u32 {
            let r = match mark {
                // Refused for good (rare): also kept on the effect record.
                Some((pk, sk)) if end == Settle::Refused => {
                    match self
                        .store
                        .settle(&j.key, effect, j.lease_until_ms, end)
                        .await
                    {
                        Ok(()) => self.store.fanout_done(pk, sk, &j.key, j.received_ms).await,
                        Err(e) => Err(e),
                    }
                }
                Some((pk, sk)) => self.store.fanout_done(pk, sk, &j.key, j.received_ms).await,
                None => {
                    self.store
                        .settle(&j.key, effect, j.lease_until_ms, end)
                        .await
                }
            };
            match r {
                Ok(()) => return,
                // Done but not marked: the record is still acknowledged, so
                // only a later duplicate from SmartLead could repeat it.
                Err(e) if attempt == 2 => {
                    tracing::error!(dedup_key = %j.key, effect, error = %e, "could not record the effect's outcome")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
    }

    async fn reject(
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

/// Effect outcomes per effect: done, refused, failed.
type Counts = std::collections::BTreeMap<&'static str, [f64; 3]>;

fn tally(done: &[(&Job, &'static str, Settle)], failed: &mut HashSet<String>, counts: &mut Counts) {
    for (j, effect, end) in done {
        let i = match end {
            Settle::Done => 0,
            Settle::Refused => 1,
            Settle::Retry => 2,
        };
        counts.entry(effect).or_default()[i] += 1.0;
        if *end == Settle::Retry {
            failed.insert(j.message_id.clone());
        }
    }
}
