//! The fan-out's bookkeeping against DynamoDB Local: one write (removing
//! its pending mark) and no read for the delivery that applied the event;
//! any later delivery of the same message that finds the mark (after a
//! crash, a lost answer hidden by the SDK's retries, a redrive) publishes
//! it, once.

mod common;

use async_trait::async_trait;
use serde_json::{json, Value};
use smartlead::app::effects::{BusEvent, EffectError, Effects, Publisher};
use smartlead::app::store::Dedup;
use std::sync::{Arc, Mutex};
use test_support::faults::{with_faults, Faults};
use test_support::sqs::{SqsEvent, SqsMessage};

#[derive(Clone, Default)]
struct Bus(Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Publisher for Bus {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        let mut v = self.0.lock().expect("lock");
        for e in events {
            v.push(serde_json::from_str(&e.detail).expect("detail"));
        }
        events.iter().map(|_| Ok(())).collect()
    }
}

fn open(lead: &str) -> String {
    json!({"event_type": "EMAIL_OPEN", "to_email": lead, "campaign_id": 4,
           "sequence_number": 1, "time_opened": "2025-01-15T10:30:00Z"})
    .to_string()
}

fn delivery(id: &str, body: &str, receive_count: u32) -> SqsEvent {
    let m: SqsMessage = serde_json::from_value(json!({
        "messageId": id, "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(),
                       "SentTimestamp": "1737709200000"}
    }))
    .expect("record");
    let mut e = SqsEvent::default();
    e.records = vec![m];
    e
}

#[tokio::test]
async fn the_fan_out_of_a_processed_event_costs_one_write_and_no_read() {
    let calls = Faults::counting();
    let store = with_faults(&common::fresh_store().await, calls.clone());
    let bus = Bus::default();
    let c = common::consumer_with(
        store,
        Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Effects::default()
        },
    );
    let body = open("one-write@x.example");
    let r = c.handle_batch(delivery("m-1", &body, 1)).await;
    assert!(r.batch_item_failures.is_empty());
    let published = bus.0.lock().expect("lock").clone();
    assert_eq!(published.len(), 1);
    // The state on the bus is the write's own answer (ALL_NEW), bookkeeping left out.
    assert_eq!(published[0]["state"]["opens"], 1);
    assert!(published[0]["state"].get("ek").is_none());
    assert_eq!(
        calls.calls(),
        2,
        "one UpdateItem for the state, one for the fan-out's outcome; no claim, no read"
    );
    let lead = common::item(&c.store, "LEAD#one-write@x.example", "CAMPAIGN#4").await;
    assert!(lead.get("fo").is_none(), "published: the mark is gone");
    // A duplicate: one refused write, nothing published, no claim.
    let before = calls.calls();
    let r = c.handle_batch(delivery("dup-1", &body, 1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(calls.calls() - before, 1);
    assert_eq!(bus.0.lock().expect("lock").len(), 1);
}

/// The plan the consumer applies for `body` (with its fan-out), as the
/// delivery of [`delivery`] (its `SentTimestamp`: the mark names it).
fn plan_with_fanout(body: &str) -> smartlead::domain::plan::Plan {
    let ev = smartlead::SmartleadEvent::from_slice(body.as_bytes()).expect("event");
    let mut plan = smartlead::domain::plan::plan(
        &ev,
        smartlead::domain::time::EventTime::now(),
        &smartlead::domain::plan::ScoreWeights::default(),
    );
    plan.effects = vec![smartlead::app::effects::FANOUT];
    plan.received_ms = 1_737_709_200_000;
    plan
}

/// A consumer with a recording bus, and an open of `lead` applied by the
/// store as message `m-1` (its fan-out marked pending, not published).
async fn applied_unpublished(lead: &str) -> (common::TestConsumer, Bus, String) {
    let bus = Bus::default();
    let c = common::consumer_with(
        common::fresh_store().await,
        Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Effects::default()
        },
    );
    let body = open(lead);
    c.store
        .apply(&plan_with_fanout(&body), "m-1")
        .await
        .expect("applied");
    (c, bus, body)
}

#[tokio::test]
async fn a_write_applied_out_of_sight_by_the_sdk_retry_still_publishes_once() {
    let (c, bus, body) = applied_unpublished("sdk-retry@x.example").await;
    // The SDK's first attempt applied the write and its answer was lost; its
    // own retry is refused showing our key. The store never saw the first
    // attempt: to it, the refusal is all there is (a first receive).
    let r = c.handle_batch(delivery("m-1", &body, 1)).await;
    assert!(r.batch_item_failures.is_empty());
    let published = bus.0.lock().expect("lock").clone();
    assert_eq!(published.len(), 1, "the fan-out is not lost");
    assert_eq!(published[0]["state"]["opens"], 1);
    assert!(published[0]["state"].get("fo").is_none());
    // SQS redelivers, SmartLead retries: nothing more.
    for (id, n) in [("m-1", 2), ("m-2", 1)] {
        let r = c.handle_batch(delivery(id, &body, n)).await;
        assert!(r.batch_item_failures.is_empty());
    }
    assert_eq!(bus.0.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_first_receive_that_finds_the_pending_mark_publishes_once() {
    let (c, bus, body) = applied_unpublished("died@x.example").await;
    // A delivery applied the state (marking its fan-out pending) and died
    // before it published; or its message went to the DLQ and a redrive
    // sends it again, received for the first time.
    let r = c.handle_batch(delivery("redriven", &body, 1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(bus.0.lock().expect("lock").len(), 1);
    // Later deliveries find the mark gone.
    let r = c.handle_batch(delivery("m-1", &body, 3)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(bus.0.lock().expect("lock").len(), 1);
    let lead = common::item(&c.store, "LEAD#died@x.example", "CAMPAIGN#4").await;
    assert_eq!(lead["opens"], 1);
}
