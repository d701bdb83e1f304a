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
//! | failed | transient: throttling, timeouts, conflicts after retries, S3 errors, no time left before the invocation's deadline | reported in `batchItemFailures`, redelivered, then DLQ |
//!
//! After the state, the batch hands the event's side effects to the
//! effects queue ([`crate::app::worker`]): the record is acknowledged once
//! its state is applied and its effects are queued, never later. A batch
//! of effect messages (the same function's second event source) runs them.
//!
//! Every batch answers inside its deadline: a record not started
//! [`STATE_MARGIN`] before the invocation's end is reported failed, and
//! one still running then is cut off (its writes are conditional: the
//! redelivery finds what landed).

use crate::app::effects::{bus_event, Effects, FANOUT};
use crate::app::store::{ApplyOutcome, Rejected, StateStore, StoreError};
use crate::app::worker::EffectPath;
use crate::domain::event::SmartleadEvent;
use crate::domain::key::DedupKey;
use crate::domain::message::{
    attr, sqs_safe_json, sqs_safe_text, ClaimCheckMessage, OutgoingMessage, LOCATION_S3,
};
use crate::domain::plan::{plan_within, ScoreWeights};
use crate::domain::time::EventTime;
use crate::metrics::{Metrics, Unit};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
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
    message: &'a SqsMessage,
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
    /// The effects queue: without it no effect runs.
    pub effect_path: Option<EffectPath>,
}

/// A record's state work ends this long before the invocation's deadline,
/// leaving time to queue its effects and answer.
pub const STATE_MARGIN: Duration = Duration::from_secs(4);
/// The effects are queued by then.
const QUEUE_MARGIN: Duration = Duration::from_secs(1);

/// The longest an effect stays claimed (shorter if the invocation ends sooner).
pub const MAX_LEASE: Duration = Duration::from_secs(60);

/// Effects an applied record hands to the effects queue.
struct Job {
    message_id: String,
    ev: SmartleadEvent,
    key: DedupKey,
    /// The lead (or campaign, account) item the event changed: its state goes
    /// into the fan-out, and its fan-out mark (`fo`) is removed once queued.
    state_item: Option<(String, String)>,
    /// That item as the write returned it (`ALL_NEW`): no read for the fan-out.
    state: Option<serde_json::Value>,
    /// The effects, each with whether the worker claims it first.
    effects: Vec<(&'static str, bool)>,
    /// This delivery removes the fan-out's mark once the fan-out is queued.
    unmark: bool,
    /// When the delivery was first received (its fan-out mark names it).
    received_ms: i64,
    /// The webhook message's body and attributes: the alerts' messages carry them.
    body: String,
    attributes: Vec<(&'static str, String)>,
}

pub(crate) fn attribute<'a>(m: &'a SqsMessage, name: &str) -> Option<&'a str> {
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

pub(crate) enum Body {
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

    /// Handles a batch before `deadline_ms` (epoch ms, the invocation's
    /// deadline): webhook messages (state, then their effects queued), or
    /// effect messages ([`crate::app::worker`]).
    pub async fn handle_batch_until(
        &self,
        event: SqsEvent,
        deadline_ms: Option<i64>,
    ) -> SqsBatchResponse {
        let now_ms = EventTime::now().millis();
        let remaining = deadline_ms
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms).max(0) as u64))
            .unwrap_or(MAX_LEASE);
        let deadline = Instant::now() + remaining;
        // Effect messages come from the effects queue's own event source:
        // never in one batch with webhooks, but told apart record by record.
        let (effects, records): (Vec<SqsMessage>, Vec<SqsMessage>) = event
            .records
            .into_iter()
            .partition(crate::app::worker::is_effect);
        let mut response = SqsBatchResponse::default();
        let again = if effects.is_empty() {
            Vec::new()
        } else {
            self.handle_effects(&effects, deadline).await
        };
        for id in again {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
        if records.is_empty() {
            return response;
        }
        let lease_until_ms = now_ms + remaining.min(MAX_LEASE).as_millis() as i64;
        let state_end = deadline
            .checked_sub(STATE_MARGIN)
            .unwrap_or_else(Instant::now);
        let mut results: Vec<(Option<String>, Done)> = futures::stream::iter(records.iter())
            .map(|m| async move {
                let id = m.message_id.clone();
                if Instant::now() >= state_end {
                    return (id, out_of_time("not started"));
                }
                let work = self.record(m, lease_until_ms);
                match tokio::time::timeout_at(state_end.into(), work).await {
                    Ok(done) => (id, done),
                    Err(_) => (id, out_of_time("cut off")),
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let jobs: Vec<Job> = results
            .iter_mut()
            .filter_map(|(_, d)| d.job.take())
            .collect();
        let queue_end = deadline.checked_sub(QUEUE_MARGIN).unwrap_or(state_end);
        let not_queued = match tokio::time::timeout_at(queue_end.into(), self.enqueue(&jobs)).await
        {
            Ok(failed) => failed,
            Err(_) => jobs.iter().map(|j| j.message_id.clone()).collect(),
        };
        self.batch_metrics(&results);
        for (id, done) in results {
            let unqueued = id.as_ref().is_some_and(|i| not_queued.contains(i));
            if matches!(done.outcome, Outcome::Failed(_)) || unqueued {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id.unwrap_or_default();
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    /// Hands the jobs' effects to the effects queue, then removes the
    /// fan-out marks it queued. Returns the records whose effects were not
    /// all queued: SQS brings them back (their state is a duplicate then).
    async fn enqueue(&self, jobs: &[Job]) -> std::collections::HashSet<String> {
        let mut failed = std::collections::HashSet::new();
        let Some(path) = &self.effect_path else {
            return failed;
        };
        let mut msgs = Vec::new();
        let mut owner = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            for &(effect, claim) in &j.effects {
                msgs.push(self.effect_message(j, effect, claim).await);
                owner.push(i);
            }
        }
        if msgs.is_empty() {
            return failed;
        }
        for (r, i) in path.queue.send_all(&msgs).await.into_iter().zip(owner) {
            if let Err(e) = r {
                tracing::error!(message_id = %jobs[i].message_id, error = %e, "effects not queued; SQS will redeliver the record");
                failed.insert(jobs[i].message_id.clone());
            }
        }
        let unmark = jobs
            .iter()
            .filter(|j| j.unmark && !failed.contains(&j.message_id));
        futures::stream::iter(unmark)
            .for_each_concurrent(self.concurrency.max(1), |j| self.unmark(j))
            .await;
        failed
    }

    /// One effect of a job as an effect message (see [`crate::app::worker`]).
    async fn effect_message(&self, j: &Job, effect: &'static str, claim: bool) -> OutgoingMessage {
        // What the consumer writes itself is made SQS-safe (the webhook's
        // own body and attributes were taken by SQS already): a character
        // SQS refuses would fail the record on every delivery.
        let mut attributes = vec![
            (attr::EFFECT, effect.to_owned()),
            (attr::DEDUP_KEY, sqs_safe_text(j.key.as_str())),
        ];
        if claim {
            attributes.push((attr::CLAIM, "true".into()));
        }
        if effect != FANOUT {
            attributes.extend(j.attributes.iter().cloned());
            // An inline body is kept without the webhook secret; a claim
            // check is only a pointer.
            let body = match attribute_of(&j.attributes, attr::BODY_LOCATION) {
                Some(LOCATION_S3) => j.body.clone(),
                _ => crate::domain::event::scrub_body(&j.body).into_owned(),
            };
            return OutgoingMessage { body, attributes };
        }
        let state = match (&j.state, &j.state_item) {
            (Some(s), _) => Some(s.clone()),
            // A duplicate whose unmarked fan-out is left to do: read it.
            (None, Some((pk, sk))) => self
                .store
                .item(pk, sk)
                .await
                .map(|s| s.map(crate::adapters::aws::dynamodb::without_bookkeeping))
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not read the state for the fan-out");
                    None
                }),
            (None, None) => None,
        };
        let bus = bus_event(&j.ev, j.key.as_str(), state);
        attributes.push((attr::DETAIL_TYPE, sqs_safe_text(&bus.detail_type)));
        if let Some(t) = bus.time {
            attributes.push((attr::EVENT_TIME, t.to_string()));
        }
        OutgoingMessage {
            body: sqs_safe_json(bus.detail),
            attributes,
        }
    }

    /// Removes the fan-out's mark once it is queued; a few tries. If all
    /// fail the mark stays on the item although its fan-out is queued: no
    /// other delivery publishes it (the mark names this one), so it is only
    /// a stale flag, logged.
    async fn unmark(&self, j: &Job) {
        let Some((pk, sk)) = &j.state_item else {
            return;
        };
        for attempt in 0..3u32 {
            match self.store.fanout_done(pk, sk, &j.key, j.received_ms).await {
                Ok(()) => return,
                Err(e) if attempt == 2 => {
                    tracing::error!(dedup_key = %j.key, error = %e, "fan-out queued but its mark could not be removed")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
    }

    /// One metric document a batch, by `Function` only: a document per
    /// event type cost ~300 log bytes each. The by-type view is the
    /// ingest's `Queued`; `UNKNOWN` types keep their own (rare) count.
    fn batch_metrics(&self, results: &[(Option<String>, Done)]) {
        let mut counts = [0.0_f64; 4];
        let mut unknown = 0.0;
        let mut latencies = Vec::with_capacity(results.len());
        for (_, done) in results {
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
    }

    pub(crate) async fn body(&self, m: &SqsMessage) -> Body {
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
        // Effects run only through their queue.
        p.effects = match &self.effect_path {
            Some(_) => self.effects.for_event(ev),
            None => Vec::new(),
        };
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
        let applied = self.apply_or_trim(&p, d.message_id).await;
        let (outcome, effects, applied) = self.after_apply(applied, &ev, &p, d).await;
        let event_type = ev.event_type.metric_name().to_owned();
        if effects.is_empty() || matches!(outcome, Outcome::Failed(_)) {
            return (outcome, event_type, None);
        }
        let unmark = effects.contains(&(FANOUT, false));
        let job = Job {
            message_id: d.message_id.to_owned(),
            state_item: p.items.first().map(|u| (u.pk.clone(), u.sk.clone())),
            state: applied.state,
            key: p.key.clone(),
            effects,
            unmark,
            received_ms: d.origin_ms,
            body: d.message.body.clone().unwrap_or_default(),
            attributes: attr::WEBHOOK
                .iter()
                .filter_map(|name| attribute(d.message, name).map(|v| (*name, v.to_owned())))
                .collect(),
            ev,
        };
        (outcome, event_type, Some(job))
    }

    /// The record's outcome from the store's answer, and the effects left
    /// to run (claimed).
    async fn after_apply(
        &self,
        applied: Result<ApplyOutcome, StoreError>,
        ev: &SmartleadEvent,
        p: &crate::domain::plan::Plan,
        d: &Delivery<'_>,
    ) -> (Outcome, Vec<(&'static str, bool)>, Applied) {
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
                (outcome, effects_left(p, fanout, a.marked))
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
                (outcome, effects_left(p, fanout, a.marked))
            }
            // Stored before: only effects left pending (or abandoned) run.
            Ok(ApplyOutcome::Duplicate) => (Outcome::Duplicate, effects_left(p, false, true)),
            // DynamoDB refuses what the event holds: on every delivery
            // alike, so it is kept, not looped to the DLQ.
            Err(e) if !e.is_retryable() => {
                let raw = String::from_utf8_lossy(d.bytes);
                let detail = e.to_string();
                let key = Some(p.key.as_str());
                let o = self.reject(key, id, "store_refused", &detail, &raw, d.received);
                (o.await, Vec::new())
            }
            Err(e) => (Outcome::Failed(e.to_string()), Vec::new()),
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

/// The effects a delivery hands to the effects queue, each with whether
/// the worker claims it first.
///
/// The fan-out needs no claim: the write that absorbs the event into the
/// plan's first item also marks it pending there (`fo`), and the delivery
/// that marked it (`fanout`: its own write, or a refusal showing the item
/// as it is) queues it and then removes the mark. After a crash or a lost
/// answer the mark stays and the redelivery queues it again: published
/// twice at most, with the same id (the dedup key). Only when DynamoDB
/// refused the first item (`marked` false) is it claimed like the alerts.
///
/// Alerts and list hygiene are queued by every delivery; the worker claims
/// each in the effect ledger before it runs it, so a second copy finds it
/// done.
fn effects_left(
    p: &crate::domain::plan::Plan,
    fanout: bool,
    marked: bool,
) -> Vec<(&'static str, bool)> {
    p.effects
        .iter()
        .filter_map(|effect| match *effect {
            FANOUT if marked => fanout.then_some((FANOUT, false)),
            e => Some((e, true)),
        })
        .collect()
}

/// The value of attribute `name` among a job's copied attributes.
fn attribute_of<'a>(attributes: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// A record given back unfinished: the invocation's deadline is near.
fn out_of_time(what: &'static str) -> Done {
    tracing::warn!(
        outcome = "failed",
        what,
        "no time left before the invocation's deadline; SQS will redeliver the record"
    );
    Done {
        outcome: Outcome::Failed(format!(
            "{what}: no time left before the invocation's deadline"
        )),
        event_type: "NONE".into(),
        ms: 0.0,
        job: None,
    }
}
