//! The store without a transaction, against DynamoDB Local: what a
//! duplicate costs, a crash between two items of one event, the bound of
//! the absorbed keys, and the size of a lead's item over its life.

mod common;

use common::{fresh_store, item, put_item};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_size, DynamoStore, SEEN_MAX};
use smartlead::app::store::{ApplyOutcome, Dedup, StateReader};
use smartlead::domain::plan::{plan, Plan, ScoreWeights};
use smartlead::domain::time::EventTime;
use std::sync::Arc;
use test_support::faults::{with_faults, Faults};

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

/// A store whose calls are counted (and one of them reset when a test says).
async fn counted() -> (DynamoStore, Arc<Faults>) {
    let calls = Faults::counting();
    (with_faults(&fresh_store().await, calls.clone()), calls)
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
    let before = calls.calls();
    assert_eq!(before, 1, "one UpdateItem");
    assert_eq!(
        store.apply(&p, "m-2").await.expect("apply"),
        ApplyOutcome::Duplicate
    );
    assert_eq!(
        calls.calls() - before,
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
    calls.reset_at(2);
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
async fn the_absorbed_keys_stay_bounded_and_an_event_dropped_from_them_is_still_absorbed_once() {
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
    // The first event's key left the item two generations ago, into the
    // archive: a delivery of it now is still a duplicate.
    assert_eq!(
        store.apply(&open(lead, 0), "m").await.expect("apply"),
        ApplyOutcome::Duplicate
    );
    let it = item(&store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert_eq!(it["opens"], n);
    assert_eq!(it["ek_gen"], 1, "one generation archived");
}

/// Applies opens `range` to `lead`, each expected to be new.
async fn opens(store: &DynamoStore, lead: &str, range: std::ops::Range<u64>) {
    for s in range {
        assert!(
            matches!(
                store.apply(&open(lead, s), "m").await.expect("apply"),
                ApplyOutcome::Applied { .. }
            ),
            "event {s}"
        );
    }
}

#[tokio::test]
async fn an_event_absorbed_200_events_earlier_is_a_duplicate_and_what_it_costs() {
    let (store, calls) = counted().await;
    let lead = "bot@x.example";
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#7");
    // A typical lead's item never gets an archive nor `ek_gen`.
    opens(&store, lead, 0..2 * SEEN_MAX as u64).await;
    let it = item(&store, &pk, sk).await;
    assert!(it.get("ek_gen").is_none(), "{it}");
    assert!(store
        .partition(&format!("SEEN#{pk}"))
        .await
        .unwrap()
        .is_empty());
    opens(&store, lead, 2 * SEEN_MAX as u64..250).await;
    // Every one of the 250, delivered again (the oldest 200+ events ago).
    for s in 0..250 {
        assert_eq!(
            store.apply(&open(lead, s), "m").await.expect("apply"),
            ApplyOutcome::Duplicate,
            "event {s}"
        );
    }
    let it = item(&store, &pk, sk).await;
    assert_eq!(it["opens"], 250);
    let gen = it["ek_gen"].as_u64().expect("ek_gen");
    assert_eq!(gen, 250 / SEEN_MAX as u64 - 1, "{it}");
    let archived: usize = store
        .partition(&format!("SEEN#{pk}"))
        .await
        .unwrap()
        .iter()
        .map(|a| a["ek"].as_bs().map_or(0, Vec::len))
        .sum();
    assert_eq!(archived, gen as usize * SEEN_MAX, "whole generations");
    // The lead's own Query shows no archive.
    assert_eq!(store.partition(&pk).await.unwrap().len(), 1);
    // What it costs on an item past 96 events: a recent duplicate is one
    // refused write; an old one adds a read; a new event is a refused
    // write, a read of the archive and the write.
    let costs = |p: Plan| {
        let (store, calls) = (&store, &calls);
        async move {
            let before = calls.calls();
            store.apply(&p, "m").await.expect("apply");
            calls.calls() - before
        }
    };
    assert_eq!(costs(open(lead, 249)).await, 1, "recent duplicate");
    assert_eq!(costs(open(lead, 3)).await, 2, "archived duplicate");
    assert_eq!(costs(open(lead, 250)).await, 3, "new event");
    assert_eq!(item(&store, &pk, sk).await["opens"], 251);
}

#[tokio::test]
async fn a_crash_between_the_archive_write_and_the_rotation_loses_and_doubles_nothing() {
    let (store, calls) = counted().await;
    let lead = "crash@x.example";
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#7");
    let full = 2 * SEEN_MAX as u64;
    opens(&store, lead, 0..full).await;
    // The next event: refused (ek full), archive write, rotation, write.
    // The process dies before the rotation is sent.
    let before = calls.calls();
    calls.reset_at(before + 3);
    assert!(store.apply(&open(lead, full), "m").await.is_err());
    let it = item(&store, &pk, sk).await;
    assert!(it.get("ek_gen").is_none(), "not rotated: {it}");
    assert_eq!(it["opens"], full);
    assert_eq!(
        store.partition(&format!("SEEN#{pk}")).await.unwrap().len(),
        1
    );
    // The archived keys are still in `ek_old` too: their events stay
    // duplicates, and the redelivery applies once.
    assert_eq!(
        store.apply(&open(lead, 0), "m").await.expect("apply"),
        ApplyOutcome::Duplicate
    );
    opens(&store, lead, full..full + 1).await;
    // The process dies after the rotation, before the event's own write.
    opens(&store, lead, full + 1..3 * SEEN_MAX as u64).await;
    let before = calls.calls();
    calls.reset_at(before + 4);
    let next = 3 * SEEN_MAX as u64;
    assert!(store.apply(&open(lead, next), "m").await.is_err());
    assert_eq!(item(&store, &pk, sk).await["ek_gen"], 2);
    opens(&store, lead, next..next + 1).await;
    for s in 0..=next {
        assert_eq!(
            store.apply(&open(lead, s), "m").await.expect("apply"),
            ApplyOutcome::Duplicate,
            "event {s}"
        );
    }
    assert_eq!(item(&store, &pk, sk).await["opens"], next + 1);
}

#[tokio::test]
async fn concurrent_deliveries_around_rotations_apply_each_event_once() {
    let store = Arc::new(fresh_store().await);
    let lead = "race@x.example";
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#7");
    opens(&store, lead, 0..90).await;
    // Events 90..200 each delivered three times, and 0..90 again, all at
    // once: the item rotates twice meanwhile.
    let mut tasks = Vec::new();
    for s in (0..200u64).chain(90..200).chain(90..200) {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.apply(&open(lead, s), "m").await.expect("apply")
        }));
    }
    let mut applied = 0;
    for t in tasks {
        applied += usize::from(matches!(
            t.await.expect("task"),
            ApplyOutcome::Applied { .. }
        ));
    }
    assert_eq!(applied, 110, "one delivery of each new event");
    let it = item(&store, &pk, sk).await;
    assert_eq!(it["opens"], 200);
    for s in 0..200 {
        assert_eq!(
            store.apply(&open(lead, s), "m").await.expect("apply"),
            ApplyOutcome::Duplicate,
            "event {s}"
        );
    }
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
    // Measured 1111 bytes at the end (1056 before each kept click carried
    // its time, 11 bytes; 1738 with the transaction's design:
    // the reply's text then lived here, every register had a 30-byte order
    // beside its time, the address and campaign id were repeated), past
    // 1 KB for the last two writes: the absorbed keys (~200 bytes) are what
    // the dedup marker cost before. The 1 KB target is missed
    // by 87 bytes at the very end of this lifetime; see BENCHMARKS.md.
    assert!(one_unit >= 30, "{one_unit} of 32 writes at one unit");
    assert!(largest < 2048, "{largest} bytes: more than two write units");
}

/// An SQS record received now (after this process started).
fn fresh_record(id: &str, body: &str) -> test_support::sqs::SqsMessage {
    serde_json::from_value(json!({"messageId": id, "body": body,
        "attributes": {"SentTimestamp": EventTime::now().millis().to_string()}}))
    .expect("record")
}

/// Delivers `body` as a new message `id` and sees it acknowledged.
async fn accepted(c: &common::TestConsumer, id: &str, body: &str) {
    let failed = c
        .handle_batch(one(fresh_record(id, body)))
        .await
        .batch_item_failures;
    assert!(failed.is_empty(), "{id}: {failed:?}");
}

fn one(m: test_support::sqs::SqsMessage) -> test_support::sqs::SqsEvent {
    let mut batch = test_support::sqs::SqsEvent::default();
    batch.records = vec![m];
    batch
}

#[tokio::test]
async fn an_item_refused_even_trimmed_is_recorded_and_the_other_items_and_effects_land() {
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    let store = fresh_store().await;
    let lead = "huge@x.example";
    // The lead's campaign item, grown by distinct clicked links to a few
    // bytes under DynamoDB's 400 KB.
    let links: Vec<String> = (0..399)
        .map(|i| format!("{i:04}{}", "x".repeat(1020)))
        .collect();
    let big = near_limit(lead, "CAMPAIGN#7", "links_clicked", |room| {
        let mut all = links.clone();
        if room > 0 {
            all.push("y".repeat(room - 2));
        }
        AttributeValue::Ss(all)
    });
    let (c, bus, bounce) = bounce_twice_beside(store, big, lead).await;
    let supp = item(&c.store, &format!("LEAD#{lead}"), "SUPPRESSION").await;
    assert_eq!(supp["reason"], "bounce", "{supp}");
    let rejected = rejected(&c.store).await;
    assert_eq!(rejected.len(), 1, "recorded once");
    let r = smartlead::adapters::aws::dynamodb::item_to_json(&rejected[0]);
    assert_eq!(r["reason"], "store_refused");
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("CAMPAIGN#7"),
        "names the item: {r}"
    );
    let campaign = item(&c.store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert!(campaign.get("bounces").is_none(), "left as it was");
    assert_eq!(bus.0.lock().expect("lock").len(), 1, "the fan-out, once");
    // SmartLead's retry (a new message): nothing more is applied.
    accepted(&c, "b-2", &bounce).await;
    assert_eq!(bus.0.lock().expect("lock").len(), 1);
    let supp2 = item(&c.store, &format!("LEAD#{lead}"), "SUPPRESSION").await;
    assert_eq!(supp, supp2);
}

/// The REJECTED records of the day around now, oldest first (each day's
/// are spread over shards: read through the store's reader).
async fn rejected(
    store: &DynamoStore,
) -> Vec<std::collections::HashMap<String, smartlead::aws_sdk_dynamodb::types::AttributeValue>> {
    let now = EventTime::now().millis();
    let at = |ms: i64| EventTime::from_millis(ms).expect("time");
    store
        .records(
            smartlead::domain::records::RecordKind::Rejected,
            at(now - 86_400_000),
            at(now + 86_400_000),
        )
        .await
        .expect("records")
}

/// `lead`'s item `sk` holding `attr` = `fill(room)`, where `room` is what
/// DynamoDB's 400 KB leave beside the item with `attr` = `fill(0)`: a few
/// bytes under the limit.
fn near_limit(
    lead: &str,
    sk: &str,
    attr: &str,
    fill: impl Fn(usize) -> smartlead::aws_sdk_dynamodb::types::AttributeValue,
) -> std::collections::HashMap<String, smartlead::aws_sdk_dynamodb::types::AttributeValue> {
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    let mut big: std::collections::HashMap<String, AttributeValue> = [
        ("pk".to_owned(), AttributeValue::S(format!("LEAD#{lead}"))),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ]
    .into();
    big.insert(attr.into(), fill(0));
    let room = 409_600 - item_size(&big);
    big.insert(attr.into(), fill(room));
    assert!(item_size(&big) <= 409_600);
    big
}

/// Stores `big` (one of `lead`'s items, near DynamoDB's 400 KB), then
/// delivers a bounce of `lead` twice (the first delivery, then SQS's
/// redelivery of the same message), with a bus that records what it gets.
async fn bounce_twice_beside(
    store: smartlead::adapters::aws::dynamodb::DynamoStore,
    big: std::collections::HashMap<String, smartlead::aws_sdk_dynamodb::types::AttributeValue>,
    lead: &str,
) -> (common::TestConsumer, Bus, String) {
    put_item(&store, big).await;
    let bus = Bus::default();
    let c = common::consumer_with(
        store,
        smartlead::app::effects::Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Default::default()
        },
    );
    let bounce = json!({"event_type": "EMAIL_BOUNCE", "to_email": lead, "campaign_id": 7,
                        "event_timestamp": "2025-01-15T09:00:00Z"})
    .to_string();
    let delivery = fresh_record("b-1", &bounce);
    for _ in 0..2 {
        assert!(c
            .handle_batch(one(delivery.clone()))
            .await
            .batch_item_failures
            .is_empty());
    }
    (c, bus, bounce)
}

#[derive(Clone, Default)]
struct Bus(Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl smartlead::app::effects::Publisher for Bus {
    async fn publish(
        &self,
        events: &[smartlead::app::effects::BusEvent],
    ) -> Vec<Result<(), smartlead::app::effects::EffectError>> {
        let mut v = self.0.lock().expect("lock");
        v.extend(events.iter().map(|e| e.detail.clone()));
        events.iter().map(|_| Ok(())).collect()
    }
}

#[tokio::test]
async fn a_second_item_refused_after_the_first_was_written_still_publishes_the_fan_out_once() {
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    let store = fresh_store().await;
    let lead = "full-supp@x.example";
    // The lead's suppression item, a few bytes under 400 KB (hand-made).
    let big = near_limit(lead, "SUPPRESSION", "junk", |room| {
        AttributeValue::S("z".repeat(room.saturating_sub(2)))
    });
    let (c, bus, _) = bounce_twice_beside(store, big, lead).await;
    let campaign = item(&c.store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert_eq!(campaign["bounces"], 1);
    assert!(campaign.get("fo").is_none(), "published: mark removed");
    assert_eq!(bus.0.lock().expect("lock").len(), 1, "the fan-out, once");
    let rejected = rejected(&c.store).await;
    assert_eq!(rejected.len(), 1);
    let r = smartlead::adapters::aws::dynamodb::item_to_json(&rejected[0]);
    assert_eq!(r["reason"], "store_refused");
    assert!(r["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("SUPPRESSION"));
}

/// The `suppressed` index costs a write only when its entry changes: a
/// lead's first suppression, a second reason; a repeat bounce writes the
/// items and nothing to the index. DynamoDB Local reports index writes in
/// the consumed capacity, as DynamoDB does
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes>);
/// every request here writes an item under 1 KB (1 unit, a refused one
/// too), so what is left over is the index's.
#[tokio::test]
async fn the_suppressed_index_is_written_only_when_its_entry_changes() {
    let store = fresh_store().await;
    let index_writes = |p: Plan, id: &'static str| {
        let store = &store;
        async move {
            match store.apply(&p, id).await.expect("apply") {
                ApplyOutcome::Applied {
                    write_units,
                    transactions,
                    ..
                } => write_units - f64::from(transactions),
                other => panic!("{other:?}"),
            }
        }
    };
    let bounce = |t: &str| {
        plan_of(
            json!({"event_type": "EMAIL_BOUNCE", "to_email": "gsi@x.example",
                       "campaign_id": 7, "event_timestamp": t}),
        )
    };
    assert_eq!(
        index_writes(bounce("2025-01-15T10:00:00Z"), "b-1").await,
        1.0
    );
    // A later bounce: the entry (first reason, time, campaign) as it was.
    assert_eq!(
        index_writes(bounce("2025-01-16T10:00:00Z"), "b-2").await,
        0.0
    );
    // A second reason changes the projected `flags`: the entry is rewritten.
    let unsub = plan_of(
        json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "gsi@x.example",
                               "campaign_id": 7, "event_timestamp": "2025-01-17T10:00:00Z"}),
    );
    assert_eq!(index_writes(unsub, "u-1").await, 1.0);
    // An earlier bounce arriving late moves the entry's key: two writes.
    assert_eq!(
        index_writes(bounce("2025-01-14T10:00:00Z"), "b-0").await,
        2.0
    );
}

/// The lead status indexes (`opened`, `clicked`, `replied`, `categorized`)
/// and `health` are written on a transition only: a repeat open, click or
/// reply leaves `first_*_at` as it was and costs 1 WRU, as before the
/// indexes. DynamoDB Local bills index writes by DynamoDB's rule
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes>).
#[tokio::test]
async fn the_status_indexes_are_written_only_on_a_transition() {
    let store = fresh_store().await;
    let units = |body: serde_json::Value, id: &'static str| {
        let store = &store;
        async move {
            match store.apply(&plan_of(body), id).await.expect("apply") {
                ApplyOutcome::Applied {
                    write_units,
                    transactions,
                    ..
                } => (write_units, write_units - f64::from(transactions)),
                other => panic!("{other:?}"),
            }
        }
    };
    let ev = |ty: &str, t: &str| {
        json!({"event_type": ty, "to_email": "status@x.example", "lead_email": "status@x.example",
               "campaign_id": 8, "event_timestamp": t, "preview_text": "ok"})
    };
    let category = |c: &str, t: &str| {
        json!({"event_type": "LEAD_CATEGORY_UPDATED", "lead_email": "status@x.example",
               "campaign_id": 8, "category": c, "event_timestamp": t})
    };
    let disconnect = |t: &str| {
        json!({"eventType": "EMAIL_ACCOUNT_DISCONNECTED", "accountId": 88,
               "email": "s@x.example", "error": "IMAP", "timestamp": t})
    };
    // (event, id, total write units, of which index writes)
    let steps = [
        (ev("EMAIL_SENT", "2025-02-01T09:00:00Z"), "s-1", 1.0, 0.0),
        (ev("EMAIL_OPEN", "2025-02-01T10:00:00Z"), "o-1", 2.0, 1.0),
        // The typical event: a repeat open, 1 WRU, no index write.
        (ev("EMAIL_OPEN", "2025-02-01T11:00:00Z"), "o-2", 1.0, 0.0),
        (ev("EMAIL_OPEN", "2025-02-02T11:00:00Z"), "o-3", 1.0, 0.0),
        (
            ev("EMAIL_LINK_CLICK", "2025-02-02T11:01:00Z"),
            "c-1",
            2.0,
            1.0,
        ),
        (
            ev("EMAIL_LINK_CLICK", "2025-02-02T11:02:00Z"),
            "c-2",
            1.0,
            0.0,
        ),
        // A reply writes its own item too (2 items).
        (ev("EMAIL_REPLY", "2025-02-03T09:00:00Z"), "r-1", 3.0, 1.0),
        (ev("EMAIL_REPLY", "2025-02-03T10:00:00Z"), "r-2", 2.0, 0.0),
        // An earlier open arriving late moves the `opened` entry: 2 index
        // writes; the item's first try (the latest register) is refused
        // (1 WRU), then the earliest stage writes it.
        (ev("EMAIL_OPEN", "2025-02-01T09:30:00Z"), "o-0", 4.0, 2.0),
        // A first category adds an entry; a new one moves it (the time).
        (
            category("Interested", "2025-02-03T12:00:00Z"),
            "k-1",
            2.0,
            1.0,
        ),
        (
            category("Meeting Request", "2025-02-04T12:00:00Z"),
            "k-2",
            3.0,
            2.0,
        ),
        (disconnect("2025-02-05T08:00:00Z"), "d-1", 2.0, 1.0),
        (disconnect("2025-02-06T08:00:00Z"), "d-2", 3.0, 2.0),
    ];
    for (body, id, total, index) in steps {
        let (t, i) = units(body, id).await;
        assert_eq!((t, i), (total, index), "{id}");
    }
}
