//! A webhook whose state is applied but whose effects the effects queue
//! did not take goes back to the webhook queue, delayed, and its record is
//! acknowledged.
//!
//! The copy keeps the body and the webhook attributes, `received_at`
//! included (added from the time that named the message when it had none):
//! its state is a duplicate, and it queues the effects again. The fan-out's
//! mark, still on the item unless the fan-out was queued, names it; the
//! alerts and hygiene calls are claimed in the ledger. So a failing effects
//! queue costs the webhook queue no receive and walks no applied webhook
//! into its DLQ. Copies back off ([`requeue_delay`]) for [`REQUEUE_FOR`]
//! after the webhook was first received; after that, or when the webhook
//! queue refuses the copy too, the record is left to SQS's redelivery.

use super::enqueue::attribute_of;
use super::{BlobReader, Consumer, Job};
use crate::app::store::StateStore;
use crate::domain::message::{attr, OutgoingMessage};
use crate::domain::time::EventTime;
use crate::metrics::Unit;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// How long after a webhook was first received its copies go on.
pub const REQUEUE_FOR: Duration = Duration::from_secs(25 * 3600);
/// The shortest delay of a copy, whatever the configured retry base: a
/// zero base must not make a loop without a pause.
const MIN_DELAY: Duration = Duration::from_secs(1);

/// The delay of a webhook's copy `round` (0 for the first): `base` (at
/// least [`MIN_DELAY`]) doubled each round, at most SQS's longest delay.
pub fn requeue_delay(base: Duration, round: u32) -> Duration {
    base.max(MIN_DELAY)
        .saturating_mul(1u32 << round.min(16))
        .min(crate::app::worker::MAX_SEND_DELAY)
}

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    /// Sends the webhook of each job in `failed` back to the webhook queue,
    /// delayed by its round; returns the message ids sent back.
    pub(super) async fn requeue(&self, jobs: &[Job], failed: &HashSet<String>) -> Vec<String> {
        let Some(path) = &self.effect_path else {
            return Vec::new();
        };
        let Some(webhooks) = &path.requeue else {
            return Vec::new();
        };
        let now = EventTime::now().millis();
        let mut by_round: BTreeMap<u32, Vec<&Job>> = BTreeMap::new();
        for j in jobs.iter().filter(|j| failed.contains(&j.message_id)) {
            let age = Duration::from_millis(now.saturating_sub(j.received_ms).max(0) as u64);
            if age >= REQUEUE_FOR {
                tracing::error!(message_id = %j.message_id, copies = j.requeued, "effects not queued for a day; SQS will redeliver the record");
                continue;
            }
            by_round.entry(j.requeued).or_default().push(j);
        }
        // One SendMessageBatch per round and ten copies, all at once.
        let rounds = by_round.iter().map(|(&round, group)| async move {
            let copies: Vec<OutgoingMessage> = group.iter().map(|j| requeued_copy(j)).collect();
            let delay = requeue_delay(path.retry_base, round);
            let sent = webhooks.send_delayed(&copies, delay).await;
            (round, delay, group, sent)
        });
        let mut back = Vec::new();
        for (round, delay, group, sent) in futures::future::join_all(rounds).await {
            for (j, r) in group.iter().zip(sent) {
                match r {
                    Ok(()) => {
                        tracing::warn!(message_id = %j.message_id, copy = round + 1, delay_s = delay.as_secs(), "effects not queued; the webhook goes back to its queue, delayed");
                        back.push(j.message_id.clone());
                    }
                    Err(e) => {
                        tracing::error!(message_id = %j.message_id, error = %e, "effects not queued nor the webhook sent back; SQS will redeliver the record")
                    }
                }
            }
        }
        if !back.is_empty() {
            let n = back.len() as f64;
            self.metrics
                .emit(&[], &[("WebhooksRequeued", n, Unit::Count)]);
        }
        back
    }
}

/// A job's webhook message as it was queued, with its copy count. A
/// message without `received_at` (not from the ingest) gets it from the
/// time that named it, its `SentTimestamp`: the copy's own differs, and
/// the fan-out's mark names the first.
fn requeued_copy(j: &Job) -> OutgoingMessage {
    let mut attributes = j.attributes.clone();
    if attribute_of(&attributes, attr::RECEIVED_AT).is_none() {
        if let Some(at) = EventTime::from_millis(j.received_ms) {
            attributes.push((attr::RECEIVED_AT, at.to_string()));
        }
    }
    attributes.push((attr::REQUEUED, (j.requeued + 1).to_string()));
    OutgoingMessage {
        body: j.body.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies back off from the first retry's delay, doubling, to
    /// SQS's longest delay: about a hundred copies in the day they go on.
    /// A zero base still waits a second.
    #[test]
    fn copies_back_off_to_sqs_longest_delay() {
        let base = crate::app::worker::RETRY_BASE;
        let secs: Vec<u64> = (0..7).map(|r| requeue_delay(base, r).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(requeue_delay(base, u32::MAX).as_secs(), 900);
        assert_eq!(requeue_delay(Duration::ZERO, 0), MIN_DELAY);
        let mut spent = Duration::ZERO;
        let mut copies = 0;
        while spent < REQUEUE_FOR {
            spent += requeue_delay(base, copies);
            copies += 1;
        }
        assert!((95..=105).contains(&copies), "{copies}");
    }
}
