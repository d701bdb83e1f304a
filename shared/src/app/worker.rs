//! The effects' own path: state never waits for an effect.
//!
//! The consumer acknowledges a record once its state is applied and its
//! effects are handed to the effects queue ([`EffectQueue`], an SQS queue
//! of their own with its own DLQ). The same function drains that queue
//! through a second event source mapping with a small `MaximumConcurrency`:
//! a batch of effect messages is [`crate::app::consumer::Consumer::handle_batch_until`]'s
//! other shape, told apart by the `effect` attribute, which only the
//! consumer sets.
//!
//! One message per event and effect:
//!
//! | effect | body | attributes |
//! |---|---|---|
//! | `fanout` | the bus event's detail (state included) | `effect`, `dedup_key`, `detail_type`, `event_time`; `claim` when the mark could not ride on the state item |
//! | `slack`, `sns`, `hygiene` | the webhook message's body (the event, or its claim check) | `effect`, `dedup_key`, `claim`, and of the webhook message's attributes those in `attr::EFFECT_KEEPS` (SQS takes 10 in all) |
//!
//! The worker claims each alert and hygiene call in the effect ledger
//! before it runs it (a second copy of the message finds it done), runs it
//! before its deadline, and settles it. A call that fails or is throttled
//! goes back to the effects queue, visible again after a backoff that
//! honours the destination's `Retry-After` ([`retry_delay`]): at least
//! 24 hours of retries before the effects DLQ (`maxReceiveCount` in
//! template.yaml). Effect work that cannot start before the deadline is
//! returned unstarted.

use crate::app::effects::{BusEvent, EffectError};
use crate::app::ingest::QueueError;
use crate::domain::message::OutgoingMessage;
use async_trait::async_trait;
use std::time::Duration;

/// Where applied events' effects wait to run (the effects queue).
#[async_trait]
pub trait EffectQueue: Send + Sync {
    /// Sends the messages, each invisible for `delay` first (at most
    /// [`MAX_SEND_DELAY`]): one result per message, in order.
    async fn send_delayed(
        &self,
        msgs: &[OutgoingMessage],
        delay: Duration,
    ) -> Vec<Result<(), QueueError>>;
    /// [`Self::send_delayed`] without a delay.
    async fn send_all(&self, msgs: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        self.send_delayed(msgs, Duration::ZERO).await
    }
    /// Received messages (receipt handles) become visible again only after
    /// their delay. Best effort: a message whose delay is not set comes
    /// back after the queue's visibility timeout.
    async fn delay(&self, receipts: &[(String, Duration)]);
}

/// The effects queue and how its retries back off.
pub struct EffectPath {
    pub queue: Box<dyn EffectQueue>,
    /// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`].
    pub retry_base: Duration,
    /// The webhook queue: a record whose state is applied but whose effects
    /// could not be queued goes back to it as a delayed copy, acknowledged
    /// (see [`crate::app::consumer`]). Without it the record is reported
    /// failed and SQS brings it back.
    pub requeue: Option<Box<dyn EffectQueue>>,
}

/// The first retry's delay in a deployment.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// The longest wait between two tries of one effect. With 40 receives
/// (`maxReceiveCount` of the effects queue) and a 30 s base this keeps an
/// effect retried for 27 to 34 hours (jittered) before the effects DLQ.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// SQS's longest visibility timeout is 12 hours from the message's
/// receive, not from the change
/// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html>):
/// a longer one is refused. Ten minutes are left for the invocation.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600 - 600);
/// SQS's longest `DelaySeconds`: 15 minutes
/// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatchRequestEntry.html>).
pub const MAX_SEND_DELAY: Duration = Duration::from_secs(900);
/// Effect work that would end later than this before the invocation's
/// deadline is not started (its message comes back).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// The delay before an effect's next try: `base` doubled for each earlier
/// receive (`receive_count` 1 is the first), at most [`MAX_BACKOFF`],
/// jittered down by up to a fifth, and never sooner than the destination
/// asked (`Retry-After`, jittered up by up to a fifth) nor later than SQS
/// allows.
pub fn retry_delay(after: Option<Duration>, receive_count: u32, base: Duration) -> Duration {
    let doubled = base.saturating_mul(1u32 << receive_count.saturating_sub(1).min(16));
    let backoff = doubled.min(MAX_BACKOFF);
    let fifth = f64::from(jitter_fifth()) / 1000.0;
    // A full budget tells every waiting effect the same wait: spread them.
    let asked = after.map(|a| a + a.mul_f64(fifth));
    (backoff - backoff.mul_f64(fifth))
        .max(asked.unwrap_or_default())
        .min(MAX_VISIBILITY)
}

/// 0 to 200 (per mille), from the clock: enough to spread retries.
fn jitter_fifth() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % 201
}

/// How long the destination asked to wait, if it did.
pub fn asked_wait(e: &EffectError) -> Option<Duration> {
    e.retry_after()
}

/// The bus event an effect message carries.
pub fn bus_event_of(detail: String, detail_type: Option<&str>, time: Option<&str>) -> BusEvent {
    BusEvent {
        detail_type: detail_type.unwrap_or("UNKNOWN").to_owned(),
        detail,
        time: time.and_then(crate::domain::time::EventTime::parse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_an_hour_and_honour_retry_after() {
        let base = Duration::from_secs(30);
        let first = retry_delay(None, 1, base);
        assert!(first <= base && first >= base.mul_f64(0.8), "{first:?}");
        let fourth = retry_delay(None, 4, base);
        assert!(fourth <= base * 8 && fourth >= (base * 8).mul_f64(0.8));
        assert!(retry_delay(None, 30, base) <= MAX_BACKOFF);
        let asked = Duration::from_secs(7200);
        let d = retry_delay(Some(asked), 1, base);
        assert!(d >= asked && d <= asked.mul_f64(1.2), "{d:?}");
        assert_eq!(
            retry_delay(Some(Duration::from_secs(90_000)), 1, base),
            MAX_VISIBILITY
        );
    }

    /// The effects queue keeps retrying for at least 24 hours: the sum of
    /// the shortest delays over `maxReceiveCount` receives (template.yaml).
    #[test]
    fn forty_receives_retry_for_more_than_a_day() {
        let base = Duration::from_secs(30);
        let total: Duration = (1..40)
            .map(|n| {
                let d = base
                    .saturating_mul(1u32 << (n - 1).min(16))
                    .min(MAX_BACKOFF);
                d.mul_f64(0.8)
            })
            .sum();
        assert!(total >= Duration::from_secs(24 * 3600), "{total:?}");
    }
}

// ------------------------------------------------------------------ the worker

use crate::app::consumer::{BlobReader, Body, Consumer, QueueMessage};
use crate::app::effects::FANOUT;
use crate::app::store::{Claim, Settle, StateStore};
use crate::domain::event::SmartleadEvent;
use crate::domain::key::DedupKey;
use crate::domain::message::attr;
use crate::domain::time::EventTime;
use crate::metrics::Unit;
use futures::StreamExt;
use std::time::Instant;

/// Whether a record is an effect message (only the consumer sets `effect`).
pub fn is_effect(m: &QueueMessage) -> bool {
    m.attribute(attr::EFFECT).is_some()
}

/// How one effect message ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ran {
    Done,
    /// Refused for good (a 4xx, an effect no longer configured): recorded, not retried.
    Refused,
    /// Done, refused or held by another copy already: nothing to do.
    Skipped,
    /// Failed or throttled: again after the delay the destination asked, if any.
    Retry(Option<Duration>),
    /// Not started: too close to the deadline.
    NotStarted,
}

/// One effect message, read.
struct Work<'a> {
    m: &'a QueueMessage,
    effect: &'static str,
    key: DedupKey,
    claim: bool,
}

/// Calls of one notifier that go as one (a Slack digest).
type Group<'a, 'n> = (
    &'n dyn crate::app::effects::Notifier,
    Vec<(&'a Work<'a>, SmartleadEvent)>,
);

/// The invocation's bounds for its effects.
#[derive(Clone, Copy)]
struct Bounds {
    /// No call starts or runs past this.
    end: Instant,
    /// The invocation's end: no settle is tried after it.
    deadline: Instant,
    lease_until_ms: i64,
}

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    /// Runs a batch of effect messages before `deadline`; returns the ids
    /// of those to try again (each made visible again after its delay).
    pub(crate) async fn handle_effects(
        &self,
        records: &[QueueMessage],
        deadline: Instant,
    ) -> Vec<String> {
        let end = deadline
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or_else(Instant::now);
        // The claim's lease runs to the invocation's end, past the last
        // call, so that its settle is inside it.
        let lease = deadline.saturating_duration_since(Instant::now());
        let b = Bounds {
            end,
            deadline,
            lease_until_ms: EventTime::now().millis() + lease.as_millis() as i64,
        };
        let works: Vec<Work> = records.iter().filter_map(|m| self.work(m)).collect();
        // A message this version cannot read (a newer effect, during a
        // deploy) goes back, to a newer instance or at last the effects DLQ.
        let unread: Vec<String> = records
            .iter()
            .filter(|m| !works.iter().any(|w| std::ptr::eq(w.m, *m)))
            .filter_map(|m| m.message_id.clone())
            .collect();
        let (fanout, calls): (Vec<&Work>, Vec<&Work>) =
            works.iter().partition(|w| w.effect == FANOUT);
        let mut ran = self.publish(&fanout, b).await;
        ran.extend(self.calls(calls, b).await);
        self.effect_metrics(&ran);
        let mut again = unread;
        let mut delays = Vec::new();
        for (w, r) in ran {
            let after = match r {
                Ran::Retry(after) => retry_delay(after, receive_count(w.m), self.retry_base()),
                Ran::NotStarted => Duration::from_secs(1),
                _ => continue,
            };
            again.push(w.m.message_id.clone().unwrap_or_default());
            if let Some(h) = &w.m.receipt_handle {
                delays.push((h.clone(), after));
            }
        }
        if let Some(p) = &self.effect_path {
            if !delays.is_empty() {
                p.queue.delay(&delays).await;
            }
        }
        again
    }

    fn retry_base(&self) -> Duration {
        self.effect_path
            .as_ref()
            .map_or(RETRY_BASE, |p| p.retry_base)
    }

    /// The message's effect, or `None` (logged, left to the queue and at
    /// last its DLQ) if it names none this version knows.
    fn work<'a>(&self, m: &'a QueueMessage) -> Option<Work<'a>> {
        let effect = m.attribute(attr::EFFECT)?;
        let Some(effect) = crate::app::effects::known(effect) else {
            tracing::error!(
                effect,
                "effect message of an unknown effect; left to the queue"
            );
            return None;
        };
        let Some(key) = m.attribute(attr::DEDUP_KEY) else {
            tracing::error!(
                effect,
                "effect message without its dedup key; left to the queue"
            );
            return None;
        };
        Some(Work {
            m,
            effect,
            key: DedupKey::from_stored(key),
            claim: m.attribute(attr::CLAIM) == Some("true"),
        })
    }

    /// Claims an effect for this message until the invocation's end.
    async fn claim_for(&self, w: &Work<'_>, b: Bounds) -> Result<bool, Ran> {
        let c = Claim {
            key: &w.key,
            effect: w.effect,
            message_id: w.m.message_id.as_deref().unwrap_or_default(),
            lease_until_ms: b.lease_until_ms,
            now_ms: EventTime::now().millis(),
            create: true,
        };
        self.store.claim(c).await.map_err(|e| {
            tracing::warn!(dedup_key = %w.key, effect = w.effect, error = %e, "could not claim the effect");
            Ran::Retry(None)
        })
    }

    /// The alerts and hygiene calls of a batch: each read and claimed, then
    /// run in groups as large as their notifier takes (Slack: digests of
    /// ten alerts, one rate-budget slot each), and settled.
    async fn calls<'a>(&self, works: Vec<&'a Work<'a>>, b: Bounds) -> Vec<(&'a Work<'a>, Ran)> {
        let ready: Vec<(&Work, Result<SmartleadEvent, Ran>)> = futures::stream::iter(works)
            .map(|w| async move { (w, self.prepare(w, b).await) })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        for (w, r) in ready {
            let ev = match r {
                Ok(ev) => ev,
                Err(ran) => {
                    out.push((w, ran));
                    continue;
                }
            };
            let Some(n) = self.effects.notifier(w.effect) else {
                continue;
            };
            let route = n.route(&ev);
            match groups.iter_mut().find(|(g, items)| {
                g.effect() == w.effect
                    && items.len() < n.batch_limit()
                    && items.first().map(|(_, e)| g.route(e)) == Some(route.clone())
            }) {
                Some((_, items)) => items.push((w, ev)),
                None => groups.push((n, vec![(w, ev)])),
            }
        }
        let ran: Vec<Vec<(&Work, Ran)>> = futures::stream::iter(groups)
            .map(|(n, items)| async move {
                let evs: Vec<(&SmartleadEvent, &str)> =
                    items.iter().map(|(w, ev)| (ev, w.key.as_str())).collect();
                let r = match evs.as_slice() {
                    [(ev, key)] => n.notify(ev, key, b.end).await,
                    _ => n.notify_all(&evs, b.end).await,
                };
                let mut out = Vec::new();
                if evs.len() > 1 && matches!(r, Err(EffectError::Permanent(_))) {
                    // One alert may be what the destination refuses: each
                    // is sent alone, so the others are not lost with it.
                    for (w, ev) in &items {
                        let r = n.notify(ev, w.key.as_str(), b.end).await;
                        out.push((*w, self.ended(w, b, r).await));
                    }
                    return out;
                }
                for (w, _) in &items {
                    let mine = r.as_ref().map(|_| ()).map_err(EffectError::copied);
                    out.push((*w, self.ended(w, b, mine).await));
                }
                out
            })
            .buffer_unordered(4)
            .collect()
            .await;
        out.extend(ran.into_iter().flatten());
        out
    }

    /// An alert or hygiene call's event, read and claimed before the
    /// deadline; else how the message ends.
    async fn prepare(&self, w: &Work<'_>, b: Bounds) -> Result<SmartleadEvent, Ran> {
        if self.effects.notifier(w.effect).is_none() {
            tracing::error!(dedup_key = %w.key, effect = w.effect, outcome = "refused", "effect no longer configured; not run");
            return Err(Ran::Refused);
        }
        let ev = match self.body(w.m).await {
            Body::Ready(bytes) => match SmartleadEvent::from_slice(&bytes) {
                Ok(ev) => ev
                    .with_delivery(
                        w.m.attribute(attr::SMARTLEAD_REQUEST_ID),
                        w.m.attribute(attr::WEBHOOK_LEVEL),
                    )
                    .with_client(w.m.attribute(attr::CLIENT_ID)),
                Err(e) => {
                    tracing::error!(dedup_key = %w.key, effect = w.effect, error = %e, outcome = "refused", "effect message's event does not read");
                    return Err(Ran::Refused);
                }
            },
            Body::Reject(reason, ..) => {
                tracing::error!(dedup_key = %w.key, effect = w.effect, reason, outcome = "refused", "effect message's body is gone");
                return Err(Ran::Refused);
            }
            Body::Retry(_) => return Err(Ran::Retry(None)),
        };
        if Instant::now() >= b.end {
            return Err(Ran::NotStarted);
        }
        match self.claim_for(w, b).await {
            Ok(true) => Ok(ev),
            Ok(false) => Err(Ran::Skipped),
            Err(r) => Err(r),
        }
    }

    /// Logs an effect's end and records it on its ledger record.
    async fn ended(&self, w: &Work<'_>, b: Bounds, r: Result<(), EffectError>) -> Ran {
        let (ran, end) = match &r {
            Ok(()) => {
                // At DEBUG: the record and `EffectsDone` have it.
                tracing::debug!(dedup_key = %w.key, effect = w.effect, "effect done");
                (Ran::Done, Settle::Done)
            }
            Err(EffectError::Permanent(e)) => {
                tracing::error!(dedup_key = %w.key, effect = w.effect, error = %e, outcome = "refused", "effect refused; not retried");
                (Ran::Refused, Settle::Refused)
            }
            Err(e) => {
                tracing::warn!(dedup_key = %w.key, effect = w.effect, error = %e, "effect failed; retried later");
                (Ran::Retry(asked_wait(e)), Settle::Retry)
            }
        };
        self.settle_effect(w, b, end).await;
        ran
    }

    /// Records how a claimed effect ended; a few tries. A lost "done" may
    /// run the effect again (the one double the design allows); a lost
    /// release leaves a lease that runs out.
    async fn settle_effect(&self, w: &Work<'_>, b: Bounds, end: Settle) {
        for attempt in 0..3u32 {
            let settle = self.store.settle(&w.key, w.effect, b.lease_until_ms, end);
            let Ok(r) = tokio::time::timeout_at(b.deadline.into(), settle).await else {
                tracing::error!(dedup_key = %w.key, effect = w.effect, "no time left to record the effect's outcome");
                return;
            };
            match r {
                Ok(()) => return,
                Err(e) if attempt == 2 => {
                    tracing::error!(dedup_key = %w.key, effect = w.effect, error = %e, "could not record the effect's outcome")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
    }

    /// The batch's fan-outs: one `PutEvents` for them all.
    async fn publish<'a>(&self, works: &[&'a Work<'a>], b: Bounds) -> Vec<(&'a Work<'a>, Ran)> {
        let mut out = Vec::new();
        let mut ready = Vec::new();
        for w in works {
            if Instant::now() >= b.end {
                out.push((*w, Ran::NotStarted));
                continue;
            }
            if w.claim {
                match self.claim_for(w, b).await {
                    Ok(true) => {}
                    Ok(false) => {
                        out.push((*w, Ran::Skipped));
                        continue;
                    }
                    Err(r) => {
                        out.push((*w, r));
                        continue;
                    }
                }
            }
            ready.push(*w);
        }
        let Some(publisher) = &self.effects.publisher else {
            for w in ready {
                tracing::error!(dedup_key = %w.key, outcome = "refused", "fan-out no longer configured; not published");
                out.push((w, Ran::Refused));
            }
            return out;
        };
        let events: Vec<BusEvent> = ready
            .iter()
            .map(|w| {
                bus_event_of(
                    w.m.body.clone(),
                    w.m.attribute(attr::DETAIL_TYPE),
                    w.m.attribute(attr::EVENT_TIME),
                )
            })
            .collect();
        // Bounded like the calls: a publish cut off is tried again.
        let results = match tokio::time::timeout_at(b.end.into(), publisher.publish(&events)).await
        {
            Ok(r) => r,
            Err(_) => events
                .iter()
                .map(|_| Err(EffectError::Transient("PutEvents: no time left".into())))
                .collect(),
        };
        for (w, r) in ready.into_iter().zip(results) {
            // A refusal is kept on the ledger even unclaimed (one write,
            // rare); a publish is not (the mark was its record).
            let refused = matches!(r, Err(EffectError::Permanent(_)));
            let ran = if w.claim || refused {
                self.ended(w, b, r).await
            } else {
                match r {
                    Ok(()) => Ran::Done,
                    Err(EffectError::Permanent(e)) => {
                        tracing::error!(dedup_key = %w.key, effect = FANOUT, error = %e, outcome = "refused", "fan-out refused; not retried");
                        Ran::Refused
                    }
                    Err(e) => {
                        tracing::warn!(dedup_key = %w.key, effect = FANOUT, error = %e, "fan-out failed; retried later");
                        Ran::Retry(asked_wait(&e))
                    }
                }
            };
            out.push((w, ran));
        }
        out
    }

    /// Done, refused and failed effects, by `Effect`, for an effect that
    /// was refused or failed in this batch.
    fn effect_metrics(&self, ran: &[(&Work<'_>, Ran)]) {
        let mut counts: std::collections::BTreeMap<&str, [f64; 3]> = Default::default();
        for (w, r) in ran {
            let i = match r {
                Ran::Done => 0,
                Ran::Refused => 1,
                Ran::Retry(_) => 2,
                Ran::Skipped | Ran::NotStarted => continue,
            };
            counts.entry(w.effect).or_default()[i] += 1.0;
        }
        for (effect, [done, refused, failed]) in counts {
            // Effects done without trouble write no document (~200 log
            // bytes a batch): the effects queue's `NumberOfMessagesDeleted`
            // (AWS/SQS) counts them.
            if refused + failed == 0.0 {
                continue;
            }
            let values: Vec<(&str, f64, Unit)> = [
                ("EffectsDone", done),
                ("EffectsRefused", refused),
                ("EffectsFailed", failed),
            ]
            .into_iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(n, v)| (n, v, Unit::Count))
            .collect();
            self.metrics.emit(&[("Effect", effect)], &values);
        }
    }
}

/// The queue's count of receives of this message (1 the first time).
fn receive_count(m: &QueueMessage) -> u32 {
    m.receive_count.unwrap_or(1)
}
