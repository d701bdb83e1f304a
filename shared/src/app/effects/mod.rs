//! What happens after an event's state is stored: fan-out to EventBridge,
//! alerts (Slack, SNS) and list hygiene (SmartLead). These calls leave
//! DynamoDB, so each is an *effect*, run on its own path
//! ([`crate::app::worker`]): the consumer queues it once the state is
//! applied; the worker claims an alert or hygiene call on the event's
//! effect record (`EVENT#<key>`: `running` with a lease, then `done`,
//! `refused`, or back to `pending`), runs it and settles it; a failure
//! comes back on the effects queue after a backoff. The fan-out is not
//! claimed: its `fo` mark on the state item stands until it is queued.
//!
//! So an effect is retried until it succeeds (or its retries run out into
//! the effects DLQ), never holds back the state, and is not repeated once
//! it succeeded and was marked. The gaps no external API closes: a crash
//! after the call succeeded but before the `done` write repeats it once,
//! and a fan-out can be queued twice; every published event carries the
//! dedup key as a stable id so subscribers can drop that repeat.

mod alert;
mod bus;
mod error;
mod hygiene;

pub use alert::{Alert, AlertRules, DEFAULT_ALERT_EVENTS, DEFAULT_POSITIVE_CATEGORIES};
pub use bus::{bus_event, BusEvent, MAX_DETAIL_TYPE_BYTES, MAX_PUT_EVENTS_BYTES};
pub use error::{EffectError, RetryLater};
pub use hygiene::{bounce_kind, BounceKind, HygieneMode};

use crate::domain::event::SmartleadEvent;
use async_trait::async_trait;
use std::time::Instant;

pub const FANOUT: &str = "fanout";
pub const SLACK: &str = "slack";
pub const SNS: &str = "sns";
pub const HYGIENE: &str = "hygiene";

/// The effect of this name, if this version knows it.
pub fn known(name: &str) -> Option<&'static str> {
    [FANOUT, SLACK, SNS, HYGIENE]
        .into_iter()
        .find(|e| *e == name)
}

/// Publishes to the bus: one result per entry, in order (`Transient` = not
/// published, retry it; `Permanent` = refused for good, e.g. a malformed
/// entry: recorded, not retried).
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>>;
}

/// An external call made for some events (an alert, a list-hygiene call).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The effect name it is claimed under (`slack`, `sns`, `hygiene`).
    fn effect(&self) -> &'static str;
    /// Whether this event gets it (alerts: the hot events of `rules`).
    fn applies(&self, ev: &SmartleadEvent, rules: &AlertRules) -> bool {
        rules.is_hot(ev)
    }
    /// Does it, giving up (as transient) before `deadline`.
    async fn notify(
        &self,
        ev: &SmartleadEvent,
        key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError>;
    /// How many events one call may carry (Slack: a digest of alerts).
    fn batch_limit(&self) -> usize {
        1
    }
    /// Where an event's call goes when it is not where the others' go (a
    /// client's own Slack channel): only events of one route share a call.
    fn route(&self, _ev: &SmartleadEvent) -> Option<String> {
        None
    }
    /// Does it for up to [`Self::batch_limit`] events as one call: one
    /// result for them all.
    async fn notify_all(
        &self,
        evs: &[(&SmartleadEvent, &str)],
        deadline: Instant,
    ) -> Result<(), EffectError> {
        for (ev, key) in evs {
            self.notify(ev, key, deadline).await?;
        }
        Ok(())
    }
}

/// The consumer's effects: what runs for which event.
#[derive(Default)]
pub struct Effects {
    pub publisher: Option<Box<dyn Publisher>>,
    pub notifiers: Vec<Box<dyn Notifier>>,
    pub alerts: AlertRules,
    /// An agency's clients: each event's client, its own alert events and
    /// channel (none without clients).
    pub clients: crate::app::clients::Clients,
}

impl Effects {
    /// The effects an event gets, in a fixed order.
    pub fn for_event(&self, ev: &SmartleadEvent) -> Vec<&'static str> {
        let rules = self.clients.alert_rules(ev, &self.alerts);
        let mut out = Vec::new();
        if self.publisher.is_some() {
            out.push(FANOUT);
        }
        out.extend(
            self.notifiers
                .iter()
                .filter(|n| n.applies(ev, &rules))
                .map(|n| n.effect()),
        );
        out
    }

    pub fn notifier(&self, effect: &str) -> Option<&dyn Notifier> {
        self.notifiers
            .iter()
            .find(|n| n.effect() == effect)
            .map(|b| b.as_ref())
    }
}

/// An event from a JSON body, read as the consumer reads it (the effect
/// rules' unit tests share it).
#[cfg(test)]
pub(super) fn test_event(v: serde_json::Value) -> crate::domain::event::SmartleadEvent {
    crate::domain::event::SmartleadEvent::from_slice(v.to_string().as_bytes()).expect("event")
}
