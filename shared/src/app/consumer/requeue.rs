//! A webhook whose state is applied but whose effects the effects queue
//! did not all take goes back to the webhook queue, delayed, and its record
//! is acknowledged.
//!
//! The copy keeps the body and the webhook attributes, with `received_at`
//! set to the time that names the message (the fan-out's mark names it),
//! `requeued` counting the copies and `queued` naming the effects already
//! queued, which its delivery does not queue again (a webhook from a
//! client's URL has nine attributes, and SQS takes ten: its `requeued`
//! names them, as `2 fanout,slack`). Its state is a
//! duplicate, and it queues what is left: a failing effects queue costs the
//! webhook queue no receive and walks no applied webhook into its DLQ.
//! Copies back off ([`requeue_delay`]) for [`MAX_COPIES`] rounds, a day or
//! more; after that, or when the webhook queue refuses the copy too, the
//! record is left to SQS's redelivery.

use super::{BlobReader, Consumer, Job};
use crate::app::store::StateStore;
use crate::domain::message::{attr, OutgoingMessage};
use crate::domain::time::EventTime;
use crate::metrics::Unit;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How many times one webhook goes back: with SQS's 15-minute longest
/// delay and any first delay of a second or more, 25 hours or more.
pub const MAX_COPIES: u32 = 110;
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
    /// delayed by its round, each round's send bounded by `end`; returns
    /// the message ids sent back. `queued`: the effects this delivery
    /// queued, by message id.
    pub(super) async fn requeue(
        &self,
        jobs: &[Job],
        failed: &HashSet<String>,
        queued: &HashMap<&str, Vec<&'static str>>,
        end: Instant,
    ) -> Vec<String> {
        let Some(path) = &self.effect_path else {
            return Vec::new();
        };
        let Some(webhooks) = &path.requeue else {
            return Vec::new();
        };
        let mut by_round: BTreeMap<u32, Vec<&Job>> = BTreeMap::new();
        for j in jobs.iter().filter(|j| failed.contains(&j.message_id)) {
            if j.requeued >= MAX_COPIES {
                tracing::error!(message_id = %j.message_id, copies = j.requeued, "effects not queued after every copy; SQS will redeliver the record");
                continue;
            }
            by_round.entry(j.requeued).or_default().push(j);
        }
        // One SendMessageBatch per round and ten copies, all at once; a
        // round that answers in time counts whatever the others do.
        let rounds = by_round.iter().map(|(&round, group)| async move {
            let copies: Vec<OutgoingMessage> = group
                .iter()
                .map(|j| requeued_copy(j, queued.get(j.message_id.as_str())))
                .collect();
            let delay = requeue_delay(path.retry_base, round);
            let send = webhooks.send_delayed(&copies, delay);
            let sent = tokio::time::timeout_at(end.into(), send).await;
            (round, delay, group, sent)
        });
        let mut back = Vec::new();
        for (round, delay, group, sent) in futures::future::join_all(rounds).await {
            let Ok(sent) = sent else {
                tracing::error!(
                    copies = group.len(),
                    "no time left to send the webhooks back; SQS will redeliver them"
                );
                continue;
            };
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

/// A job's webhook message as it was queued, named by the time that names
/// it (its `received_at` when it parses, else its `SentTimestamp`, which
/// the copy's own would replace), with its copy count and the effects
/// queued so far (earlier copies' and `now`).
fn requeued_copy(j: &Job, now: Option<&Vec<&'static str>>) -> OutgoingMessage {
    let mut attributes: Vec<(&'static str, String)> = j
        .attributes
        .iter()
        .filter(|(k, _)| *k != attr::RECEIVED_AT)
        .cloned()
        .collect();
    if let Some(at) = EventTime::from_millis(j.received_ms) {
        attributes.push((attr::RECEIVED_AT, at.to_string()));
    }
    let mut queued = j.queued.clone();
    queued.extend(now.into_iter().flatten().copied());
    // With the URL's client (an agency's) the tenth attribute is taken:
    // the effects queued ride in `requeued`; otherwise in `queued`, as
    // every earlier version wrote and reads them.
    let packed = attributes.iter().any(|(k, _)| *k == attr::CLIENT_ID);
    if packed {
        attributes.push((attr::REQUEUED, attr::requeued(j.requeued + 1, &queued)));
    } else {
        attributes.push((attr::REQUEUED, (j.requeued + 1).to_string()));
        if !queued.is_empty() {
            attributes.push((attr::QUEUED, queued.join(",")));
        }
    }
    OutgoingMessage {
        body: j.body.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies back off from the first retry's delay, doubling, to
    /// SQS's longest delay, and go on for 25 hours or more whatever the
    /// first delay. A zero base still waits a second.
    #[test]
    fn copies_back_off_to_sqs_longest_delay_for_a_day() {
        let base = crate::app::worker::RETRY_BASE;
        let secs: Vec<u64> = (0..7).map(|r| requeue_delay(base, r).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(requeue_delay(base, u32::MAX).as_secs(), 900);
        assert_eq!(requeue_delay(Duration::ZERO, 0), MIN_DELAY);
        for first in [Duration::ZERO, MIN_DELAY, base, Duration::from_secs(900)] {
            let all: Duration = (0..MAX_COPIES).map(|r| requeue_delay(first, r)).sum();
            assert!(all >= Duration::from_secs(25 * 3600), "{first:?}: {all:?}");
            assert!(all <= Duration::from_secs(28 * 3600), "{first:?}: {all:?}");
        }
    }

    /// A copy keeps the webhook's attributes and adds the copy count and
    /// the effects queued: as `requeued` and `queued`, or, from a client's
    /// URL (nine attributes already), in `requeued` alone; both read back
    /// the same, and no copy passes SQS's ten.
    #[test]
    fn a_copy_names_the_effects_queued_within_ten_attributes() {
        let ev = crate::domain::event::SmartleadEvent::from_value(
            serde_json::json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.co"}),
        )
        .expect("event");
        let mut attributes: Vec<(&'static str, String)> = attr::WEBHOOK
            .iter()
            .map(|k| (*k, "v".to_owned()))
            .filter(|(k, _)| *k != attr::CLIENT_ID)
            .collect();
        let job = |attributes: Vec<(&'static str, String)>| Job {
            message_id: "m".into(),
            key: ev.dedup_key(),
            ev: ev.clone(),
            state_item: None,
            state: None,
            effects: vec![],
            unmark: false,
            received_ms: 1_700_000_000_000,
            body: "{}".into(),
            attributes,
            requeued: 1,
            queued: vec!["fanout"],
        };
        let read = |m: &OutgoingMessage| {
            let get = |k: &str| {
                m.attributes
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_str())
            };
            let (count, names) = attr::read_requeued(get(attr::REQUEUED), get(attr::QUEUED));
            (
                count,
                names.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            )
        };
        let plain = requeued_copy(&job(attributes.clone()), Some(&vec!["slack"]));
        assert_eq!(read(&plain), (2, vec!["fanout".into(), "slack".into()]));
        assert!(plain
            .attributes
            .iter()
            .any(|(k, v)| *k == attr::QUEUED && v == "fanout,slack"));
        assert!(plain.attributes.len() <= attr::MAX);
        attributes.push((attr::CLIENT_ID, "11".into()));
        let client = requeued_copy(&job(attributes), Some(&vec!["slack"]));
        assert_eq!(read(&client), (2, vec!["fanout".into(), "slack".into()]));
        assert!(!client.attributes.iter().any(|(k, _)| *k == attr::QUEUED));
        assert_eq!(client.attributes.len(), attr::MAX);
    }
}
