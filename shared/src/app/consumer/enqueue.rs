//! An applied event's effects handed to the effects queue
//! ([`crate::app::worker`]), then the fan-out's mark removed; what the
//! effects queue did not take goes back to the webhook queue (`requeue.rs`).

use super::{BlobReader, Consumer, Job};
use crate::app::effects::{bus_event, FANOUT};
use crate::app::store::StateStore;
use crate::domain::message::{attr, sqs_safe_json, sqs_safe_text, OutgoingMessage, LOCATION_S3};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    /// Hands the jobs' effects to the effects queue (answered by
    /// `send_end`, else none counts as queued), then, by `queue_end`,
    /// removes the fan-out marks of the fan-outs queued and sends the
    /// records whose effects were not all queued back to the webhook queue
    /// ([`Self::requeue`]). Returns the records neither queued nor sent
    /// back: SQS brings them back (their state is a duplicate then).
    pub(super) async fn enqueue(
        &self,
        jobs: &[Job],
        send_end: Instant,
        queue_end: Instant,
    ) -> HashSet<String> {
        let mut failed = HashSet::new();
        if self.effect_path.is_none() || jobs.iter().all(|j| j.effects.is_empty()) {
            return failed;
        }
        let sent = match tokio::time::timeout_at(send_end.into(), self.send_effects(jobs)).await {
            Ok(sent) => sent,
            Err(_) => jobs
                .iter()
                .flat_map(|j| {
                    j.effects
                        .iter()
                        .map(move |e| (j, e.0, Err("no answer in time".to_owned())))
                })
                .collect(),
        };
        let mut queued: HashMap<&str, Vec<&'static str>> = HashMap::new();
        for (j, effect, r) in sent {
            match r {
                Ok(()) => {
                    queued
                        .entry(j.message_id.as_str())
                        .or_default()
                        .push(effect);
                }
                Err(e) => {
                    tracing::warn!(message_id = %j.message_id, effect, error = %e, "effect not queued");
                    failed.insert(j.message_id.clone());
                }
            }
        }
        // A fan-out queued loses its mark, whatever became of the record's
        // other effects: its copy, if any, must not queue it again.
        let unmark = jobs.iter().filter(|j| {
            j.unmark
                && queued
                    .get(j.message_id.as_str())
                    .is_some_and(|q| q.contains(&FANOUT))
        });
        let unmarking = futures::stream::iter(unmark)
            .for_each_concurrent(self.concurrency.max(1), |j| self.unmark(j));
        let (_, sent_back) = futures::join!(
            tokio::time::timeout_at(queue_end.into(), unmarking),
            self.requeue(jobs, &failed, &queued, queue_end),
        );
        for id in sent_back {
            failed.remove(&id);
        }
        failed
    }

    /// Each job's effects as effect messages, sent: per message, its job,
    /// its effect and whether the effects queue took it.
    async fn send_effects<'j>(
        &self,
        jobs: &'j [Job],
    ) -> Vec<(&'j Job, &'static str, Result<(), String>)> {
        let Some(path) = &self.effect_path else {
            return Vec::new();
        };
        let mut msgs = Vec::new();
        let mut owner = Vec::new();
        let mut out = Vec::new();
        for j in jobs {
            for &(effect, claim) in &j.effects {
                match self.effect_message(j, effect, claim).await {
                    Ok(m) => {
                        msgs.push(m);
                        owner.push((j, effect));
                    }
                    Err(e) => out.push((j, effect, Err(e))),
                }
            }
        }
        let sent = path.queue.send_all(&msgs).await;
        out.extend(
            owner
                .into_iter()
                .zip(sent)
                .map(|((j, effect), r)| (j, effect, r.map_err(|e| e.to_string()))),
        );
        out
    }

    /// One effect of a job as an effect message (see [`crate::app::worker`]);
    /// an error when the state a pending fan-out carries cannot be read
    /// (the effect is then not queued: the record goes back, and its copy
    /// reads it again), never a fan-out without its state.
    async fn effect_message(
        &self,
        j: &Job,
        effect: &'static str,
        claim: bool,
    ) -> Result<OutgoingMessage, String> {
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
            let kept = j
                .attributes
                .iter()
                .filter(|(k, _)| attr::EFFECT_KEEPS.contains(k));
            attributes.extend(kept.cloned());
            // The client resolved, so the alert goes to its channel.
            if let Some(c) = &j.ev.client {
                attributes.push((attr::CLIENT_ID, sqs_safe_text(c)));
            }
            // An inline body is kept without the webhook secret; a claim
            // check is only a pointer.
            let body = match attribute_of(&j.attributes, attr::BODY_LOCATION) {
                Some(LOCATION_S3) => j.body.clone(),
                _ => crate::domain::event::scrub_body(&j.body).into_owned(),
            };
            return Ok(OutgoingMessage { body, attributes });
        }
        let state = match (&j.state, &j.state_item) {
            (Some(s), _) => Some(s.clone()),
            // A duplicate whose unmarked fan-out is left to do: read it.
            (None, Some((pk, sk))) => self
                .store
                .item(pk, sk)
                .await
                .map(|s| s.map(crate::adapters::aws::dynamodb::without_bookkeeping))
                .map_err(|e| format!("could not read the state for the fan-out: {e}"))?,
            (None, None) => None,
        };
        let bus = bus_event(&j.ev, j.key.as_str(), state);
        attributes.push((attr::DETAIL_TYPE, sqs_safe_text(&bus.detail_type)));
        if let Some(t) = bus.time {
            attributes.push((attr::EVENT_TIME, t.to_string()));
        }
        Ok(OutgoingMessage {
            body: sqs_safe_json(bus.detail),
            attributes,
        })
    }

    /// Removes the fan-out's mark once it is queued; a few tries. If all
    /// fail the mark stays on the item although its fan-out is queued: a
    /// redelivery of this very message (a lost answer) would queue it
    /// again; a copy sent back does not (its `queued` names the fan-out).
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

/// The value of attribute `name` among a job's copied attributes.
pub(super) fn attribute_of<'a>(
    attributes: &'a [(&'static str, String)],
    name: &str,
) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}
