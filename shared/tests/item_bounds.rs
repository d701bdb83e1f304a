//! Every item stays small whatever the stream of events, against DynamoDB
//! Local: the sets that grow with a lead's events (clicked links,
//! colleagues' replies, steps sent) keep their newest elements and count
//! the rest, exactly, under redeliveries and concurrent writers.
//!
//! DynamoDB Local meters nothing per partition, so what these tests guard
//! is only enforced in AWS: an item is billed one write unit per started
//! KB on every write, refused ones included, and a partition takes 1,000
//! write units a second
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
//! https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html):
//! a lead's item grown to 400 KB takes ~2.5 events a second.

mod common;

use common::{fresh_store, item, put_item, raw_item};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_size, DynamoStore};
use smartlead::app::store::{ApplyOutcome, Dedup};
use smartlead::domain::plan::{
    plan, Plan, ScoreWeights, MAX_KEPT_LINKS, MAX_KEPT_REPLIERS, MAX_KEPT_STEPS,
};
use smartlead::domain::time::EventTime;
use std::sync::Arc;

/// Largest item any stream may leave (DynamoDB's limit is 400 KB).
const ITEM_CEILING: usize = 64 * 1024;

fn plan_of(v: Value) -> Plan {
    let ev = smartlead::SmartleadEvent::from_value(v).expect("event");
    plan(&ev, EventTime::now(), &ScoreWeights::default())
}

/// The `i`th second of the streams.
fn at(i: usize) -> EventTime {
    EventTime::from_millis(1_736_900_000_000 + i as i64 * 1000).expect("time")
}

/// A long tracked link, distinct for each `i` in its first bytes.
fn link(i: usize) -> String {
    format!("https://track.example/{i:05}/{}", "x".repeat(960))
}

/// How a kept click reads: `<epoch seconds> <link>`.
fn kept_click(i: usize) -> String {
    format!("{} {}", at(i).seconds(), link(i))
}

fn click(lead: &str, i: usize) -> Plan {
    plan_of(
        json!({"event_type": "EMAIL_LINK_CLICK", "to_email": lead, "campaign_id": 7,
        "sequence_number": 1, "time_clicked": at(i).to_string(), "link_clicked": [link(i)]}),
    )
}

/// Applies `plans` on 4 concurrent writers, each plan delivered twice (the
/// second delivery after every first one), a retryable failure sent again
/// as SQS would. How many deliveries applied.
async fn apply_all(store: &DynamoStore, plans: Vec<Plan>) -> usize {
    let plans = Arc::new(plans);
    let store = Arc::new(store.clone());
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (plans, store) = (plans.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            let n = plans.len();
            for i in (w..2 * n).step_by(4) {
                // Out of time order: a fixed scramble of the stream.
                let p = &plans[(i % n) * 7919 % n];
                for attempt in 0.. {
                    match store.apply(p, "m").await {
                        Ok(o) => {
                            applied += usize::from(matches!(o, ApplyOutcome::Applied { .. }));
                            break;
                        }
                        Err(e) if e.is_retryable() && attempt < 20 => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            applied
        }));
    }
    let mut applied = 0;
    for t in tasks {
        applied += t.await.expect("task");
    }
    applied
}

async fn size_of(store: &DynamoStore, pk: &str, sk: &str) -> usize {
    item_size(&raw_item(store, pk, sk).await)
}

#[tokio::test]
async fn a_link_scanner_s_2000_clicks_leave_the_newest_links_and_count_the_rest() {
    let store = fresh_store().await;
    let lead = "scanned@x.example";
    let n = 2000;
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#7");
    for from in (0..n).step_by(500) {
        let plans: Vec<Plan> = (from..from + 500).map(|i| click(lead, i)).collect();
        assert_eq!(
            apply_all(&store, plans).await,
            500,
            "each click applied once"
        );
        let size = size_of(&store, &pk, sk).await;
        assert!(
            size < ITEM_CEILING,
            "{size} bytes after {} clicks",
            from + 500
        );
    }
    let it = item(&store, &pk, sk).await;
    assert_eq!(it["clicks"], n);
    let newest: Vec<String> = (n - MAX_KEPT_LINKS..n).map(kept_click).collect();
    assert_eq!(it["links_clicked"], json!(newest), "the newest links");
    assert_eq!(it["links_dropped"], n - MAX_KEPT_LINKS, "the rest, counted");
    assert_eq!(it["last_link"], link(n - 1));
    // Every later write of the lead is billed by that size, no more: an
    // item past 96 events is refused once (for the generations of absorbed
    // keys it archived, which the update did not check), then written. Its
    // first open also enters the `opened` index: one write of a small entry.
    let open = plan_of(
        json!({"event_type": "EMAIL_OPEN", "to_email": lead, "campaign_id": 7,
        "sequence_number": 1, "time_opened": at(n).to_string()}),
    );
    let ApplyOutcome::Applied { write_units, .. } =
        store.apply(&open, "m-open").await.expect("open")
    else {
        panic!("the open not applied");
    };
    let billed = size_of(&store, &pk, sk).await.div_ceil(1024) as f64;
    assert!(
        write_units <= 2.0 * billed + 1.0,
        "{write_units} units, {billed} a write, 1 for the index"
    );
    assert!(billed <= (ITEM_CEILING / 1024) as f64);
}

#[tokio::test]
async fn colleagues_replies_and_a_long_sequence_keep_the_newest_and_count_the_rest() {
    let store = fresh_store().await;
    let lead = "busy@x.example";
    let n = 300;
    let mut plans = Vec::new();
    for i in 0..n {
        plans.push(plan_of(
            json!({"event_type": "EMAIL_REPLY", "sl_lead_email": lead,
            "to_email": format!("colleague{i:03}@x.example"), "campaign_id": 7,
            "event_timestamp": at(i).to_string(),
            "reply_message": {"message_id": format!("<r{i}@x.example>"), "text": "Thanks"}}),
        ));
        plans.push(plan_of(
            json!({"event_type": "EMAIL_SENT", "to_email": lead,
            "campaign_id": 7, "sequence_number": i + 1, "time_sent": at(i).to_string(),
            "message_id": format!("<s{i}@x.example>")}),
        ));
    }
    assert_eq!(apply_all(&store, plans).await, 2 * n);
    let pk = format!("LEAD#{lead}");
    for sk in ["CAMPAIGN#7", "REPLY#7"] {
        let size = size_of(&store, &pk, sk).await;
        assert!(size < ITEM_CEILING, "{sk}: {size} bytes");
    }
    let campaign = item(&store, &pk, "CAMPAIGN#7").await;
    assert_eq!(campaign["replies"], n);
    assert_eq!(campaign["sent"], n);
    let steps: Vec<usize> = (n - MAX_KEPT_STEPS + 1..=n).collect();
    assert_eq!(campaign["steps_sent"], json!(steps), "the latest steps");
    assert_eq!(campaign["steps_dropped"], n - MAX_KEPT_STEPS);
    let reply = item(&store, &pk, "REPLY#7").await;
    let newest: Vec<String> = (n - MAX_KEPT_REPLIERS..n)
        .map(|i| format!("{} colleague{i:03}@x.example", at(i).seconds()))
        .collect();
    assert_eq!(reply["repliers"], json!(newest), "the newest writers");
    assert_eq!(reply["repliers_dropped"], n - MAX_KEPT_REPLIERS);
}

#[tokio::test]
async fn an_item_grown_before_the_bound_shrinks_at_its_next_click() {
    let store = fresh_store().await;
    let lead = "grown@x.example";
    let (pk, sk) = (format!("LEAD#{lead}"), "CAMPAIGN#7");
    let old = grown(&store, lead).await;
    let p = click(lead, 1);
    assert!(matches!(
        store.apply(&p, "m-1").await.expect("apply"),
        ApplyOutcome::Applied { .. }
    ));
    let size = size_of(&store, &pk, sk).await;
    assert!(size < ITEM_CEILING, "{size} bytes");
    let it = item(&store, &pk, sk).await;
    assert_eq!(it["clicks"], 301);
    // The click is the newest; the links before the bound, older than any
    // the bound keeps, fill the rest (the greatest of them: no time to go by).
    let mut kept: Vec<String> = old[300 - (MAX_KEPT_LINKS - 1)..].to_vec();
    kept.push(kept_click(1));
    kept.sort();
    assert_eq!(it["links_clicked"], json!(kept));
    assert_eq!(it["links_dropped"], 300 + 1 - MAX_KEPT_LINKS);
    assert_eq!(
        store.apply(&p, "m-2").await.expect("again"),
        ApplyOutcome::Duplicate
    );
}

/// `lead`'s campaign item as the unbounded set left it: 300 distinct
/// links of 1 KB (~300 KB), 300 clicks. The links.
async fn grown(store: &DynamoStore, lead: &str) -> Vec<String> {
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    let old: Vec<String> = (0..300)
        .map(|i| format!("{i:04}{}", "o".repeat(1020)))
        .collect();
    let item = [
        ("pk", AttributeValue::S(format!("LEAD#{lead}"))),
        ("sk", AttributeValue::S("CAMPAIGN#7".into())),
        ("clicks", AttributeValue::N("300".into())),
        ("links_clicked", AttributeValue::Ss(old.clone())),
    ];
    put_item(store, item.map(|(k, v)| (k.to_owned(), v)).into()).await;
    old
}

/// Writers racing on a set grown past its cap: each rewrite is conditioned
/// on the set's size then (not its ~300 KB sent back), which the first
/// rewrite changes; the others read it again. Each click counts once.
#[tokio::test]
async fn clicks_racing_on_an_item_grown_before_the_bound_each_count_once() {
    let store = fresh_store().await;
    let lead = "raced@x.example";
    grown(&store, lead).await;
    let n = 40;
    let plans: Vec<Plan> = (0..n).map(|i| click(lead, i)).collect();
    assert_eq!(apply_all(&store, plans).await, n);
    let it = item(&store, &format!("LEAD#{lead}"), "CAMPAIGN#7").await;
    assert_eq!(it["clicks"], 300 + n);
    let newest: Vec<String> = (n - MAX_KEPT_LINKS..n).map(kept_click).collect();
    assert_eq!(it["links_clicked"], json!(newest));
    assert_eq!(it["links_dropped"], 300 + n - MAX_KEPT_LINKS);
}

/// Every text an event can set on a lead's items at its longest, every
/// set full: the items still stay under the ceiling (their fixed fields
/// are bounded per field, the sets by their caps).
#[tokio::test]
async fn every_field_at_its_longest_still_leaves_each_item_under_the_ceiling() {
    let store = fresh_store().await;
    let long = |c: char| c.to_string().repeat(9000);
    let lead = format!("{}@x.example", long('l'));
    let campaign = long('c');
    // A 4-byte character: texts cut by characters are longest in bytes.
    let wide = "\u{1D11E}".repeat(9000);
    let common = |event_type: &str, i: usize| {
        json!({"event_type": event_type, "to_email": lead, "lead_email": lead,
            "sl_lead_email": lead, "campaign_id": campaign, "campaign_name": long('n'),
            "app_url": long('u'), "sl_email_lead_id": long('i'), "sl_email_lead_map_id": long('m'),
            "stats_thread_id": long('t'), "event_timestamp": at(i).to_string()})
    };
    let with = |mut v: Value, more: Value| {
        for (k, x) in more.as_object().expect("object") {
            v[k] = x.clone();
        }
        v
    };
    let mut plans = Vec::new();
    for i in 0..30 {
        let colleague = format!("{i:02}{}@x.example", long('r'));
        plans.extend([
            with(common("EMAIL_SENT", i), json!({"sequence_number": i + 1,
                "subject": long('s'), "message_id": format!("{i}{}", long('d')),
                "from_email": format!("{}@x.example", long('f')), "time_sent": at(i).to_string()})),
            with(common("EMAIL_LINK_CLICK", i), json!({"sequence_number": 1,
                "time_clicked": at(i).to_string(), "link_clicked": [format!("{i:02}{}", long('k'))]})),
            with(common("EMAIL_BOUNCE", i), json!({"stats_id": format!("b{i}"),
                "bounce_message": {"text": wide}})),
            with(common("LEAD_CATEGORY_UPDATED", i), json!({
                "lead_category": {"new_name": long('a'), "new_id": long('b'),
                    "old_name": long('o'), "old_id": long('p')},
                "lead_data": {"email": lead, "first_name": long('g'), "last_name": long('h'),
                    "phone_number": long('j'), "company_name": long('q'), "website": long('w'),
                    "company_url": long('v'), "location": long('y'), "linkedin_profile": long('z'),
                    "custom_fields": {"notes": long('e')},
                    "category": {"name": long('a'), "sentiment_type": long('x')}}})),
            with(common("EMAIL_REPLY", i), json!({"to_email": colleague, "subject": long('s'),
                "reply_message": {"message_id": format!("{i}{}", long('d')), "text": wide},
                "cc_emails": (0..40).map(|j| format!("{j}{}@x.example", long('c'))).collect::<Vec<_>>(),
                "leadCorrespondence": {"targetLeadEmail": lead, "replyReceivedFrom": colleague,
                    "repliedCompanyDomain": long('D')}})),
        ]);
    }
    let plans: Vec<Plan> = plans.into_iter().map(plan_of).collect();
    apply_all(&store, plans).await;
    let pk = format!("LEAD#{}", smartlead::domain::plan::key_part(&lead));
    let items = store.partition(&pk).await.expect("items");
    assert!(items.len() >= 4, "campaign, reply, profile, suppression");
    let sizes: Vec<(String, usize)> = items
        .iter()
        .map(|i| {
            (
                i["sk"].as_s().expect("sk").chars().take(12).collect(),
                item_size(i),
            )
        })
        .collect();
    assert!(sizes.iter().all(|(_, n)| *n < ITEM_CEILING), "{sizes:?}");
}
