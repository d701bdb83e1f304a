//! An applied event's effects handed to the effects queue
//! ([`crate::app::worker`]), then the fan-out's mark removed.

use super::{BlobReader, Consumer, Job};
use crate::app::effects::{bus_event, FANOUT};
use crate::app::store::StateStore;
use crate::domain::message::{attr, sqs_safe_json, sqs_safe_text, OutgoingMessage, LOCATION_S3};
use futures::StreamExt;
use std::time::Duration;

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    /// Hands the jobs' effects to the effects queue, then removes the
    /// fan-out marks it queued. A record whose effects were not all queued
    /// goes back to the webhook queue as a delayed copy ([`Self::requeue`]).
    /// Returns the records neither queued nor sent back: SQS brings them
    /// back (their state is a duplicate then).
    /// The effects queue answers by `send_end` (else none counts as
    /// queued), leaving time to send the copies back.
    pub(super) async fn enqueue(
        &self,
        jobs: &[Job],
        send_end: std::time::Instant,
    ) -> std::collections::HashSet<String> {
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
        let sent = tokio::time::timeout_at(send_end.into(), path.queue.send_all(&msgs))
            .await
            .unwrap_or_else(|_| {
                let late = || {
                    Err(crate::app::ingest::QueueError::Send(
                        "no answer in time".into(),
                    ))
                };
                msgs.iter().map(|_| late()).collect()
            });
        for (r, i) in sent.into_iter().zip(owner) {
            if let Err(e) = r {
                tracing::warn!(message_id = %jobs[i].message_id, error = %e, "effects not queued");
                failed.insert(jobs[i].message_id.clone());
            }
        }
        // Only the fan-outs queued lose their mark: a copy sent back needs it.
        let unmark = jobs
            .iter()
            .filter(|j| j.unmark && !failed.contains(&j.message_id));
        futures::stream::iter(unmark)
            .for_each_concurrent(self.concurrency.max(1), |j| self.unmark(j))
            .await;
        self.requeue(jobs, &mut failed).await;
        failed
    }

    /// Sends each failed job's webhook back to the webhook queue, delayed,
    /// and takes it out of `failed` (the record is acknowledged). The copy
    /// keeps the body and the attributes, `received_at` included: its
    /// state is a duplicate, and it queues the effects again (the
    /// fan-out's mark, still on the item, names it; the alerts are claimed
    /// in the ledger). So a failing effects queue costs the webhook queue
    /// no receive and never walks an applied record into the DLQ. Copies
    /// back off ([`requeue_delay`]) for [`MAX_REQUEUES`] rounds, over 24
    /// hours; after that, or when the copy cannot be sent either, the
    /// record stays failed and SQS brings it back.
    async fn requeue(&self, jobs: &[Job], failed: &mut std::collections::HashSet<String>) {
        let Some(path) = &self.effect_path else {
            return;
        };
        let Some(webhooks) = &path.requeue else {
            return;
        };
        let due: Vec<&Job> = jobs
            .iter()
            .filter(|j| failed.contains(&j.message_id) && j.requeued < MAX_REQUEUES)
            .collect();
        for j in jobs.iter().filter(|j| j.requeued >= MAX_REQUEUES) {
            if failed.contains(&j.message_id) {
                tracing::error!(message_id = %j.message_id, copies = j.requeued, "effects not queued after every copy; SQS will redeliver the record");
            }
        }
        // One delay a round: the copies of one batch back off together.
        let mut by_round: std::collections::BTreeMap<u32, Vec<&Job>> = Default::default();
        for j in due {
            by_round.entry(j.requeued).or_default().push(j);
        }
        for (round, group) in by_round {
            let copies: Vec<OutgoingMessage> = group.iter().map(|j| requeued_copy(j)).collect();
            let delay = requeue_delay(path.retry_base, round);
            let sent = webhooks.send_delayed(&copies, delay).await;
            for (j, r) in group.iter().zip(sent) {
                match r {
                    Ok(()) => {
                        failed.remove(&j.message_id);
                        tracing::warn!(message_id = %j.message_id, copy = round + 1, delay_s = delay.as_secs(), "effects not queued; the webhook goes back to its queue, delayed");
                        self.metrics.count("EffectsRequeued", &[]);
                    }
                    Err(e) => {
                        tracing::error!(message_id = %j.message_id, error = %e, "effects not queued nor the webhook sent back; SQS will redeliver the record")
                    }
                }
            }
        }
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
}

/// How many times one webhook goes back to its queue before its record is
/// left to SQS's redelivery: with a 30 s first delay doubling to 15
/// minutes, about 25 hours.
pub const MAX_REQUEUES: u32 = 104;

/// The delay of a webhook's copy `round` (0 for the first): `base`
/// doubled each round, at most SQS's longest delay.
pub fn requeue_delay(base: Duration, round: u32) -> Duration {
    base.saturating_mul(1u32 << round.min(16))
        .min(crate::app::worker::MAX_SEND_DELAY)
}

/// A job's webhook message as it was queued, with its copy count. A
/// message without `received_at` (not from the ingest) gets it from the
/// time that named it, its `SentTimestamp`: the copy's own differs, and
/// the fan-out's mark names the first.
fn requeued_copy(j: &Job) -> OutgoingMessage {
    let mut attributes = j.attributes.clone();
    if attribute_of(&attributes, attr::RECEIVED_AT).is_none() {
        if let Some(at) = crate::domain::time::EventTime::from_millis(j.received_ms) {
            attributes.push((attr::RECEIVED_AT, at.to_string()));
        }
    }
    attributes.push((attr::REQUEUED, (j.requeued + 1).to_string()));
    OutgoingMessage {
        body: j.body.clone(),
        attributes,
    }
}

/// The value of attribute `name` among a job's copied attributes.
fn attribute_of<'a>(attributes: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies back off from the first retry's delay, doubling, to
    /// SQS's longest delay, and all of them span more than a day: an
    /// effects queue down for 24 hours walks no applied record into the DLQ.
    #[test]
    fn copies_back_off_to_sqs_longest_delay_for_more_than_a_day() {
        let base = crate::app::worker::RETRY_BASE;
        let secs: Vec<u64> = (0..7).map(|r| requeue_delay(base, r).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(requeue_delay(base, u32::MAX).as_secs(), 900);
        let total: Duration = (0..MAX_REQUEUES).map(|r| requeue_delay(base, r)).sum();
        assert!(total > Duration::from_secs(24 * 3600), "{total:?}");
        assert!(total < Duration::from_secs(26 * 3600), "{total:?}");
    }
}
