//! What the consumer needs of a store, as narrow traits (ports):
//! [`Dedup`] (apply a plan exactly once), [`EffectLedger`] (claims of side
//! effects), [`RejectSink`] (rejected events) and [`StateReader`]. The
//! DynamoDB adapter ([`crate::adapters::aws::dynamodb::DynamoStore`])
//! implements them all; tests and benches may implement only some.

use crate::domain::key::DedupKey;
use crate::domain::plan::Plan;
use crate::domain::time::EventTime;
use async_trait::async_trait;
use serde_json::Value;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store call that failed, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: throttling, timeouts, conflicts, service errors, a
    /// deploy's mistake (the events wait in the queue for the fix).
    #[error("transient store error: {message}")]
    Transient {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Retrying cannot help: the store refuses what the event holds.
    #[error("permanent store error: {message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    pub fn transient(message: impl Into<String>) -> StoreError {
        StoreError::Transient {
            message: message.into(),
            source: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> StoreError {
        StoreError::Permanent {
            message: message.into(),
            source: None,
        }
    }

    /// Transient, caused by `source` (its text is the message).
    pub fn transient_from(source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Transient {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// State changed (in at least one item); `transactions` counts the
    /// requests sent, `write_units` as DynamoDB reported (refused
    /// conditional writes counted by the size of the item they showed:
    /// DynamoDB bills them too); `state` is the plan's first item after the
    /// write (`ALL_NEW`); `fanout`: the plan's fan-out is pending on its
    /// first item (this call marked it, or found its mark): publish it with
    /// `state`, then [`Dedup::fanout_done`]. `trimmed`: an item was
    /// written without its growing fields; `refused`: the items (index and
    /// DynamoDB's reason) refused even trimmed; the others were written.
    Applied {
        transactions: u32,
        write_units: f64,
        state: Option<Value>,
        fanout: bool,
        trimmed: bool,
        refused: Vec<(usize, String)>,
    },
    /// Nothing changed, but the event is not quite done: its fan-out is
    /// still pending (marked, not yet published: a crash, a lost answer, a
    /// failed publish), or an item refuses it (again).
    Unchanged {
        state: Option<Value>,
        fanout: bool,
        refused: Vec<(usize, String)>,
    },
    /// Every item had absorbed the event already: nothing changed.
    Duplicate,
}

/// A rejected event: kept with its raw body, acknowledged, counted.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    /// The event's dedup key (else its body's hash): one record an event.
    pub key: &'a str,
    /// The delivery that recorded it last.
    pub message_id: &'a str,
    pub reason: &'a str,
    pub detail: &'a str,
    pub raw: &'a str,
    pub received_at: &'a str,
}

/// Exactly-once application: each event changes each item at most once.
#[async_trait]
pub trait Dedup: Send + Sync {
    async fn apply(&self, plan: &Plan, message_id: &str) -> Result<ApplyOutcome, StoreError>;
    /// When the store first saw `key`: `at` the first time it is asked,
    /// that same time on every later call (until the dedup TTL). Records
    /// whose sort key holds a time (`<time>#<key>`) take it from here, so
    /// that every delivery of one event, whatever its receive time, names
    /// one item.
    async fn first_seen(&self, _key: &str, at: EventTime) -> Result<EventTime, StoreError> {
        Ok(at)
    }
    /// The fan-out of `key` is published (or refused for good): its mark
    /// leaves `pk`/`sk` (see [`crate::adapters::aws::dynamodb::FANOUT_PENDING_ATTR`]).
    /// `received_ms`: when the delivery that publishes was first received
    /// (its mark names it).
    async fn fanout_done(
        &self,
        _pk: &str,
        _sk: &str,
        _key: &DedupKey,
        _received_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A claim on one side effect of an applied event: by the delivery
/// `message_id`, until `lease_until_ms` (epoch ms), at `now_ms`; `create`
/// records the effect if it is not recorded yet.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub key: &'a DedupKey,
    pub effect: &'a str,
    pub message_id: &'a str,
    pub lease_until_ms: i64,
    pub now_ms: i64,
    pub create: bool,
}

/// Who runs a side effect, and how it ended (one record per event and effect).
#[async_trait]
pub trait EffectLedger: Send + Sync {
    /// Claims a side effect of an already applied event until
    /// `lease_until_ms`: true if it was pending, claimed by someone whose
    /// lease has run out, or already held by this very delivery
    /// (`message_id` with this lease: its claim was written although the
    /// answer said otherwise), or (`create`) not recorded at all yet; false
    /// if it is done, refused, held by another, or (without `create`) not
    /// recorded.
    async fn claim(&self, c: Claim<'_>) -> Result<bool, StoreError>;
    /// Ends a claim: done, refused for good, or back to pending (to be
    /// retried). Also ends an effect run unclaimed by the delivery that
    /// applied the event (the fan-out: see the consumer), creating its record.
    async fn settle(
        &self,
        key: &DedupKey,
        effect: &str,
        lease_until_ms: i64,
        end: Settle,
    ) -> Result<(), StoreError>;
}

/// Where events that cannot be applied are kept, with their reason.
#[async_trait]
pub trait RejectSink: Send + Sync {
    async fn reject(&self, r: Rejected<'_>) -> Result<(), StoreError>;
}

/// Reads of the stored state.
#[async_trait]
pub trait StateReader: Send + Sync {
    /// One item as JSON (`None` if absent).
    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError>;
}

/// Everything the consumer needs of a store.
pub trait StateStore: Dedup + EffectLedger + RejectSink + StateReader {}
impl<T: Dedup + EffectLedger + RejectSink + StateReader> StateStore for T {}

/// Side-effect states on the effect record: `fx_<effect>` is `running`
/// (with `fx_<effect>_until`, the lease's end in epoch ms), `pending` or `done`.
pub const FX_RUNNING: &str = "running";
pub const FX_PENDING: &str = "pending";
pub const FX_DONE: &str = "done";
/// Refused for good by the remote side (a 4xx): recorded, not retried.
pub const FX_REFUSED: &str = "refused";

/// How a claimed effect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Done,
    Refused,
    /// Back to pending: the record is redelivered and the effect retried.
    Retry,
}

impl Settle {
    pub fn state(self) -> &'static str {
        match self {
            Settle::Done => FX_DONE,
            Settle::Refused => FX_REFUSED,
            Settle::Retry => FX_PENDING,
        }
    }
}
