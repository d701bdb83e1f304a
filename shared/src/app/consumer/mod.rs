//! The consumer: one batch of queue messages ([`QueueMessage`]) in, the
//! ids to deliver again ([`BatchAnswer`]) out. The function crate
//! (`functions/consumer`) turns SQS's Lambda event into these and the
//! answer into `batchItemFailures`.
//!
//! Each record is handled on its own (own task, own span); records run
//! concurrently up to a bound. A record ends in one of four ways:
//!
//! | outcome | when | SQS |
//! |---|---|---|
//! | processed | at least one of the plan's items absorbed the event (an item DynamoDB refuses even trimmed is recorded as `store_refused`, the others written) | deleted |
//! | duplicate | every item had absorbed it already | deleted |
//! | rejected | permanent: not a SmartLead event, its claim-check object is gone or corrupt, or DynamoDB refuses every item even trimmed; kept in a `REJECTED` record with the raw body | deleted |
//! | failed | transient: throttling, timeouts, conflicts after retries, S3 errors, no time left before the invocation's deadline | named in the [`BatchAnswer`], redelivered, then DLQ |
//!
//! After the state, the batch hands the event's side effects to the
//! effects queue ([`crate::app::worker`]): the record is acknowledged once
//! its state is applied and its effects are queued (or, when the effects
//! queue does not take them, once its webhook is sent back to the webhook
//! queue, delayed: `requeue.rs`). A batch of effect messages (the same
//! function's second event source) runs them.
//!
//! Every batch answers inside its deadline: a record not started
//! [`STATE_MARGIN`] before the invocation's end is reported failed, and
//! one still running then is cut off (its writes are conditional: the
//! redelivery finds what landed).
//!
//! One file a concept: `batch.rs` the batch and its deadline, `record.rs`
//! one record (its body, its message's times, rejection), `apply.rs` one
//! event applied (its plan, the store's answer), `enqueue.rs` its effects
//! handed to the effects queue, `requeue.rs` its webhook sent back when
//! they could not be.

mod apply;
mod batch;
mod enqueue;
mod record;
mod requeue;

pub(crate) use record::Body;
pub use requeue::{requeue_delay, MAX_COPIES};

use crate::app::effects::Effects;
use crate::app::worker::EffectPath;
use crate::domain::event::SmartleadEvent;
use crate::domain::key::DedupKey;
use crate::domain::plan::ScoreWeights;
use crate::domain::time::EventTime;
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;

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

/// One message of a batch as the queue delivered it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueMessage {
    /// The queue's id of the message: a [`BatchAnswer`] names it.
    pub message_id: Option<String>,
    pub body: String,
    /// The string message attributes, by name ([`crate::domain::message::attr`]).
    pub attributes: HashMap<String, String>,
    /// When the queue took this copy, epoch ms (SQS's `SentTimestamp`).
    pub sent_ms: Option<i64>,
    /// How many times the queue has handed the message out, 1 the first
    /// time (SQS's `ApproximateReceiveCount`).
    pub receive_count: Option<u32>,
    /// This receive of the message: its visibility is changed through it.
    pub receipt_handle: Option<String>,
}

impl QueueMessage {
    /// The string attribute `name`, if the message has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// A batch's answer: the messages the queue is to deliver again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchAnswer {
    /// Their ids (empty for a message that came without one).
    pub retry: Vec<String>,
}

/// One record being handled.
struct Delivery<'a> {
    message: &'a QueueMessage,
    message_id: &'a str,
    bytes: &'a [u8],
    received: EventTime,
    /// [`origin_ms`] of the message.
    origin_ms: i64,
    lease_until_ms: i64,
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
    /// How many times the consumer has sent this webhook back to its queue
    /// (its `requeued` attribute).
    requeued: u32,
    /// The effects earlier deliveries queued (its `queued` attribute): not
    /// queued again.
    queued: Vec<&'static str>,
}
