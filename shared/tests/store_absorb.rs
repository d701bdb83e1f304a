//! The store without a transaction, against DynamoDB Local: what a
//! duplicate costs, a crash between two items of one event, the bound of
//! the absorbed keys, and the size of a lead's item over its life.

mod common;

use common::fresh_store;
use serde_json::{json, Value};
use smartlead::plan::{plan, Plan, ScoreWeights};
use smartlead::store::{
    item_size, ApplyOutcome, DynamoStore, FaultInjector, StateStore, StoreError, SEEN_MAX,
};
use smartlead::time::EventTime;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn plan_of(v: Value) -> Plan {
    let ev = smartlead::SmartleadEvent::from_value(v).expect("event");
    plan(&ev, EventTime::now(), &ScoreWeights::default())
}

fn open(lead: &str, sec: u64) -> Plan {
    let t = EventTime::from_millis(1_736_900_000_000 + sec as i64 * 1000).expect("time");
    plan_of(
        json!({"event_type": "EMAIL_OPEN", "to_email": lead, "campaign_id": 7,
                   "sequence_number": 1, "time_opened": t.to_string()}),
    )
}

/// Counts calls; fails the `fail`th one before it is sent (0: none).
#[derive(Default)]
struct Calls {
    n: AtomicUsize,
    fail: AtomicUsize,
}

impl FaultInjector for Calls {
    fn before_call(&self) -> Result<(), StoreError> {
        let i = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        if i == self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Transient("injected: crash".into()));
        }
        Ok(())
    }
    fn after_call(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

async fn counted() -> (DynamoStore, Arc<Calls>) {
    let mut store = fresh_store().await;
    let calls = Arc::new(Calls::default());
    store.faults = Some(calls.clone());
    (store, calls)
}

async fn item(store: &DynamoStore, pk: &str, sk: &str) -> Value {
    store.item(pk, sk).await.expect("read").expect("item")
}

#[tokio::test]
async fn a_typical_event_is_one_request_and_a_duplicate_one_refused_write_without_a_read() {
    let (store, calls) = counted().await;
    let p = open("dup@x.example", 1);
    let first = store.apply(&p, "m-1").await.expect("apply");
    assert!(matches!(
        first,
        ApplyOutcome::Applied {
            transactions: 1,
            state: Some(_),
            ..
        }
    ));
    let before = calls.n.load(Ordering::SeqCst);
    assert_eq!(before, 1, "one UpdateItem");
    assert_eq!(
        store.apply(&p, "m-2").await.expect("apply"),
        ApplyOutcome::Duplicate
    );
    assert_eq!(
        calls.n.load(Ordering::SeqCst) - before,
        1,
        "a duplicate is one refused conditional write and no read"
    );
    let lead = item(&store, "LEAD#dup@x.example", "CAMPAIGN#7").await;
    assert_eq!(lead["opens"], 1);
}

#[tokio::test]
async fn a_crash_between_the_two_items_of_a_bounce_is_healed_by_the_redelivery() {
    let (store, calls) = counted().await;
    let p = plan_of(
        json!({"event_type": "EMAIL_BOUNCE", "to_email": "b@x.example",
                           "campaign_id": 7, "event_timestamp": "2025-01-15T09:00:00Z"}),
    );
    assert_eq!(p.items.len(), 2, "lead item and suppression");
    // The first item is written, the process dies before the second.
    calls.fail.store(2, Ordering::SeqCst);
    assert!(store.apply(&p, "m-1").await.is_err());
    assert!(store
        .item("LEAD#b@x.example", "SUPPRESSION")
        .await
        .unwrap()
        .is_none());
    // The redelivery: the first item refuses the repeat, the second applies.
    assert!(matches!(
        store.apply(&p, "m-1").await.expect("apply"),
        ApplyOutcome::Applied { .. }
    ));
    assert_eq!(
        store.apply(&p, "m-1").await.expect("apply"),
        ApplyOutcome::Duplicate
    );
    assert_eq!(
        item(&store, "LEAD#b@x.example", "CAMPAIGN#7").await["bounces"],
        1
    );
    assert_eq!(
        item(&store, "LEAD#b@x.example", "SUPPRESSION").await["reason"],
        "bounce"
    );
}

#[tokio::test]
async fn the_absorbed_keys_stay_bounded_and_remember_at_least_the_last_generation() {
    let store = fresh_store().await;
    let lead = "busy@x.example";
    let n = 2 * SEEN_MAX as u64 + 5;
    for s in 0..n {
        assert!(matches!(
            store.apply(&open(lead, s), "m").await.expect("apply"),
            ApplyOutcome::Applied { .. }
        ));
    }
    let it = item(&store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert_eq!(it["opens"], n);
    let (ek, old) = (
        it["ek"].as_array().map_or(0, Vec::len),
        it["ek_old"].as_array().map_or(0, Vec::len),
    );
    assert!(ek <= SEEN_MAX && old == SEEN_MAX, "ek {ek}, ek_old {old}");
    // The last SEEN_MAX events are known: their redeliveries change nothing.
    for s in n - SEEN_MAX as u64..n {
        assert_eq!(
            store.apply(&open(lead, s), "m").await.expect("apply"),
            ApplyOutcome::Duplicate,
            "event {s}"
        );
    }
    // The bound: the first event's key was dropped two generations ago; a
    // delivery of it now counts again (what the README says).
    assert!(matches!(
        store.apply(&open(lead, 0), "m").await.expect("apply"),
        ApplyOutcome::Applied { .. }
    ));
    let it = item(&store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert_eq!(it["opens"], n + 1);
}

#[tokio::test]
async fn a_lead_s_campaign_item_costs_one_unit_for_30_of_its_32_lifetime_writes() {
    let store = fresh_store().await;
    let lead = "jane.doe@acme-corp.com";
    let at = |s: u64| {
        EventTime::from_millis(1_736_900_000_000 + s as i64 * 60_000)
            .expect("time")
            .to_string()
    };
    let mut events = Vec::new();
    for i in 0..5u64 {
        events.push(
            json!({"event_type": "EMAIL_SENT", "to_email": lead, "campaign_id": 123,
            "campaign_name": "Q1 Outreach - SaaS CTOs", "sequence_number": i + 1,
            "time_sent": at(i * 1000), "from_email": "alex@outreach-co.io",
            "message_id": format!("<CAF{i}x7abcdefabcdef@mail.gmail.com>"),
            "subject": format!("Quick question about Acme Corp (step {})", i + 1)}),
        );
    }
    for i in 0..20u64 {
        events.push(
            json!({"event_type": "EMAIL_OPEN", "to_email": lead, "campaign_id": 123,
            "sequence_number": 1 + i % 5, "time_opened": at(i * 200 + 30)}),
        );
    }
    for i in 0..5u64 {
        events.push(
            json!({"event_type": "EMAIL_LINK_CLICK", "to_email": lead, "campaign_id": 123,
            "sequence_number": 1 + i, "time_clicked": at(i * 1000 + 40),
            "link_clicked": [format!("https://outreach-co.io/page-{i}")]}),
        );
    }
    for i in 0..2u64 {
        events.push(
            json!({"event_type": "EMAIL_REPLY", "to_email": lead, "campaign_id": 123,
            "time_replied": at(i * 2000 + 50), "subject": "Re: Quick question about Acme Corp",
            "preview_text": "Thanks for reaching out. I'm interested - can we talk Thursday? \
                Our team has been looking at tools like this for a while and I would like \
                to see a demo with our head of engineering before the end of the month."}),
        );
    }
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#123".to_owned());
    let mut largest = 0;
    let mut one_unit = 0;
    for (i, e) in events.into_iter().enumerate() {
        store
            .apply(&plan_of(e), &format!("m-{i}"))
            .await
            .expect("apply");
        let raw = store
            .client
            .get_item()
            .table_name(&store.table)
            .key(
                "pk",
                smartlead::aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()),
            )
            .key(
                "sk",
                smartlead::aws_sdk_dynamodb::types::AttributeValue::S(sk.clone()),
            )
            .send()
            .await
            .expect("get")
            .item
            .expect("item");
        largest = largest.max(item_size(&raw));
        one_unit += usize::from(item_size(&raw) <= 1024);
        if std::env::var_os("SHOW_ITEM").is_some() && i == 31 {
            let mut v: Vec<(usize, &String)> = raw
                .iter()
                .map(|(k, a)| (item_size(&[(k.clone(), a.clone())].into()), k))
                .collect();
            v.sort();
            println!("{v:?}");
        }
    }
    println!(
        "largest size of the lead's campaign item: {largest} bytes; {one_unit} of 32 writes at one unit"
    );
    // Measured 1056 bytes at the end (1738 with the transaction's design:
    // the reply's text then lived here, every register had a 30-byte order
    // beside its time, the address and campaign id were repeated), past
    // 1 KB for the last two writes: the absorbed keys (~200 bytes) are what
    // the dedup marker cost before. The 1 KB target of issue #14 is missed
    // by 32 bytes at the very end of this lifetime; see BENCHMARKS.md.
    assert!(one_unit >= 30, "{one_unit} of 32 writes at one unit");
    assert!(largest < 2048, "{largest} bytes: more than two write units");
}

#[tokio::test]
async fn an_event_the_transactional_design_applied_is_not_applied_again_after_the_upgrade() {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    let mut store = fresh_store().await;
    store.legacy_markers = true;
    let body = |lead: &str| {
        json!({"event_type": "EMAIL_OPEN", "to_email": lead, "campaign_id": 7,
               "sequence_number": 1, "time_opened": "2025-01-15T10:30:00Z"})
        .to_string()
    };
    // What the old consumer left for an open it applied: a marker, and the
    // state (here only the marker matters).
    let old = body("before@x.example");
    let key = smartlead::SmartleadEvent::from_slice(old.as_bytes())
        .expect("event")
        .dedup_key();
    store
        .client
        .put_item()
        .table_name(&store.table)
        .item("pk", AttributeValue::S(format!("EVENT#{key}")))
        .item("sk", AttributeValue::S("EVENT".into()))
        .item("event_type", AttributeValue::S("EMAIL_OPEN".into()))
        .send()
        .await
        .expect("marker");
    let c = common::consumer_with(store, Default::default());
    // Redriven after the upgrade: received long before this process.
    let record = |id: &str, body: &str| -> SqsMessage {
        serde_json::from_value(json!({"messageId": id, "body": body,
            "attributes": {"SentTimestamp": "1737709200000"}}))
        .expect("record")
    };
    let mut batch = SqsEvent::default();
    batch.records = vec![record("r-1", &old), record("r-2", &body("after@x.example"))];
    assert!(c.handle_batch(batch).await.batch_item_failures.is_empty());
    assert!(
        c.store
            .item("LEAD#before@x.example", "CAMPAIGN#7")
            .await
            .unwrap()
            .is_none(),
        "the old marker says it was applied: not again"
    );
    assert_eq!(
        item(&c.store, "LEAD#after@x.example", "CAMPAIGN#7").await["opens"],
        1
    );
}
