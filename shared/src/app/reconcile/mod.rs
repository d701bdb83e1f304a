//! Reconcile: find the events SmartLead never delivered, from its own
//! statistics, and backfill them exactly once.
//!
//! SmartLead retries a failed webhook only a few times. Its API keeps, per
//! campaign, statistics of every sent e-mail (one row per lead and sequence
//! step: sent, open, click and reply times, open and click counts, bounced,
//! unsubscribed) and per lead a message history (every sent e-mail and reply
//! with its message id). From these this module builds each *fact* the
//! webhooks should have delivered, synthesizes the webhook for it in every
//! form SmartLead documents, and computes each form's idempotency key with
//! [`crate::domain::key`] exactly as for a real webhook.
//!
//! - A fact whose key (in any form) the store absorbed was processed: the
//!   item its plan writes first (the lead's campaign item, read once per
//!   lead and campaign) holds the key's compact form in `ek` or `ek_old` (or
//!   its archive; see [`crate::adapters::aws::dynamodb::absorbed`]). It is
//!   also evidence of which form this account's webhooks come in.
//! - A fact absorbed in no form is a gap (keys an item rotated out are
//!   looked up in its archive). An item whose rotation count cannot be read
//!   gives an unknown answer: only reported. Otherwise a gap is
//!   backfilled (the
//!   synthesized webhook goes onto the queue, `source: reconcile`, and the
//!   consumer applies it like any webhook) only in a form well established
//!   for its event type in its campaign (see [`Tally::established`]) and
//!   when the statistics carry everything that form's key needs: the
//!   backfill then has the same key as the real webhook, so a late webhook,
//!   a second backfill or a second run is a duplicate. Otherwise (and for
//!   every unsubscribe, and for sends and replies whose message history
//!   could not be read) it is only reported, with the reason.
//! - A lead the statistics give an id for is also looked up in its
//!   `LEAD#id:<id>` item, with the keys of the same webhooks naming it by id.
//! - Counts SmartLead gives without times (opens past the one timed open of
//!   a step, every click: the statistics carry no clicked links) are compared
//!   with the stored counts and only reported, apart from the gaps
//!   ([`Report::count_mismatches`]).
//! - Facts older than `DedupTtlDays` less [`MARGIN_DAYS`] (the window a
//!   redrive keeps to, [`crate::adapters::aws::redrive::max_age`]) are not
//!   checked, only counted ([`Report::too_old`]).

mod facts;
mod gaps;
mod run;
mod scheduled;
mod statistics;

pub use facts::{facts, Candidate, Fact, Form, Kind};
pub use gaps::{
    count_gaps, gaps, learn, Action, Evidence, Gap, Tally, MIN_MATCHES, MIN_SHARE_PERCENT,
};
pub use run::{backfill_message, reconcile, Options, Progress, Report};
pub use scheduled::{emit, metric_values, Scheduled, RECONCILE_IAM_ACTIONS};
pub use statistics::{
    campaign_clients, campaigns, parse_history, parse_page, statistics, HistoryMessage, Page,
    StepStat,
};

use crate::adapters::http::smartlead::ApiError;
use crate::app::ingest::QueueError;
use crate::app::store::StoreError;

/// The message attribute and body field marking a backfilled event.
pub const SOURCE: &str = "source";
pub const SOURCE_RECONCILE: &str = "reconcile";
/// Statistics rows asked for per page (SmartLead's maximum).
pub const PAGE_SIZE: usize = 100;
/// Checking stops this long before the deadline.
pub const STOP_BEFORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Facts younger than the dedup TTL less these days are checked.
pub const MARGIN_DAYS: u64 = crate::adapters::aws::redrive::MARGIN_DAYS;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading the state table: {0}")]
    Store(#[from] StoreError),
    #[error("queueing a backfill: {0}")]
    Queue(#[from] QueueError),
}

impl ReconcileError {
    /// Whether running again later can succeed (SmartLead or AWS unavailable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Api(e) => e.is_retryable(),
            ReconcileError::Store(e) => e.is_retryable(),
            ReconcileError::Queue(_) => true,
        }
    }
}

#[cfg(test)]
mod tests;
