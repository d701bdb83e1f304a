//! One parsed event: its plan, applied by the store exactly once, and
//! what the store's answer leaves: the record's outcome and the effects
//! to queue.

use super::{BlobReader, Consumer, Delivery, Job, Outcome};
use crate::app::effects::FANOUT;
use crate::app::store::{ApplyOutcome, StateStore, StoreError};
use crate::domain::event::SmartleadEvent;
use crate::domain::message::attr;
use crate::domain::plan::plan_within;
use crate::domain::time::EventTime;
use crate::metrics::Unit;

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

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
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
    pub(super) async fn event(
        &self,
        ev: SmartleadEvent,
        d: &Delivery<'_>,
    ) -> (Outcome, String, Option<Job>) {
        let p = match self.plan_for(&ev, d).await {
            Ok(p) => p,
            Err(e) => {
                let event_type = ev.event_type.metric_name().to_owned();
                return (Outcome::Failed(e.to_string()), event_type, None);
            }
        };
        let applied = self.apply_or_trim(&p, d.message_id).await;
        let (outcome, mut effects, applied) = self.after_apply(applied, &ev, &p, d).await;
        let event_type = ev.event_type.metric_name().to_owned();
        // A webhook sent back names the effects queued before it.
        let (requeued, named) = attr::read_requeued(
            d.message.attribute(attr::REQUEUED),
            d.message.attribute(attr::QUEUED),
        );
        let queued: Vec<&'static str> = named
            .into_iter()
            .filter_map(crate::app::effects::known)
            .collect();
        effects.retain(|(e, _)| !queued.contains(e));
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
            body: d.message.body.clone(),
            attributes: attr::WEBHOOK
                .iter()
                .filter_map(|name| d.message.attribute(name).map(|v| (*name, v.to_owned())))
                .collect(),
            requeued,
            queued,
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
