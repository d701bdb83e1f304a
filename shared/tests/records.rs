//! The records kept whole (REJECTED, UNTRACKED, UNKNOWN, UNATTRIBUTED),
//! against DynamoDB Local: spread over partitions by day and shard, read
//! back in time order, one record an event whichever delivery brings it.
//!
//! DynamoDB Local does not throttle a partition; AWS does, at 1,000 write
//! units a second
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html):
//! with raw bodies of up to 300 KB, one partition per kind took ~3 records
//! a second before the throttling sent the events to the DLQ.

mod common;

use common::{consumer, fresh_store, items};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_to_json, DynamoStore};
use smartlead::app::consumer::Outcome;
use smartlead::domain::records::RecordKind;
use smartlead::domain::time::EventTime;
use std::collections::BTreeSet;
use test_support::sqs::SqsMessage;

const HOUR: i64 = 3_600_000;

fn record(id: &str, body: &str, sent_ms: i64) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_owned());
    m.attributes
        .insert("SentTimestamp".into(), sent_ms.to_string());
    m
}

fn at(ms: i64) -> EventTime {
    EventTime::from_millis(ms).expect("time")
}

/// The partitions holding `kind`'s records, and how many records.
async fn spread(store: &DynamoStore, kind: RecordKind) -> (BTreeSet<String>, usize) {
    let prefix = format!("{}#", kind.prefix());
    let pks: Vec<String> = items(store)
        .await
        .into_values()
        .filter_map(|v| v["pk"].as_str().map(str::to_owned))
        .filter(|pk| pk.starts_with(&prefix))
        .collect();
    let n = pks.len();
    (pks.into_iter().collect(), n)
}

/// `kind`'s records from `since` on, as the store's reader returns them.
async fn read(store: &DynamoStore, kind: RecordKind, since: i64, until: i64) -> Vec<Value> {
    store
        .records(kind, at(since), at(until))
        .await
        .expect("records")
        .iter()
        .map(item_to_json)
        .collect()
}

fn times(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["sk"].as_str().unwrap_or_default()[..24].to_owned())
        .collect()
}

#[tokio::test]
async fn each_kind_spreads_over_days_and_shards_and_reads_back_in_time_order() {
    let c = consumer(fresh_store().await);
    let now = EventTime::now().millis();
    // Four days of each kind, eight an hour apart a day (by their own
    // time, or for a rejected body when it was received), each delivered
    // twice: SmartLead's retry, a new message seconds later.
    let mut sent = Vec::new();
    for d in 0..4i64 {
        for h in 0..8i64 {
            let t = now - (3 - d) * 24 * HOUR - (h + 1) * HOUR;
            let own = at(t).to_string();
            let bodies = [
                json!({"event_type": "LEAD_MEETING_BOOKED", "campaign_id": 9, "n": h, "event_timestamp": own}),
                json!({"event_type": "EMAIL_OPEN", "campaign_id": 9, "stats_id": format!("{d}-{h}"), "time_opened": own}),
                json!({"event_type": "UNTRACKED_REPLIES", "from_email": format!("x{d}{h}@y.example"), "to_email": "catchall@z.example", "time_replied": own}),
            ];
            let bodies = bodies.map(|b| b.to_string());
            for (i, body) in bodies
                .iter()
                .chain([&format!("<html>{d}-{h}</html>")])
                .enumerate()
            {
                for (k, delay) in [0, 9_000].into_iter().enumerate() {
                    let m = record(&format!("m-{d}-{h}-{i}-{k}"), body, t + delay);
                    let outcome = c.handle_record(&m).await;
                    assert!(
                        !matches!(outcome, Outcome::Failed(_)),
                        "{body}: {outcome:?}"
                    );
                }
            }
            sent.push(t);
        }
    }
    sent.sort();
    let expected: Vec<String> = sent.iter().map(|t| at(*t).to_string()).collect();
    let store = &c.store;
    for kind in RecordKind::ALL {
        let (partitions, n) = spread(store, kind).await;
        assert_eq!(n, 32, "{kind:?}: one record an event");
        assert!(partitions.len() > 4, "{kind:?}: {partitions:?}");
        let all = read(store, kind, now - 5 * 24 * HOUR, now).await;
        assert_eq!(times(&all), expected, "{kind:?}: in time order");
        // From a time on: the records at or after it.
        let since = now - 36 * HOUR;
        let recent = read(store, kind, since, now).await;
        let want: Vec<String> = expected
            .iter()
            .filter(|t| **t >= at(since).to_string())
            .cloned()
            .collect();
        assert_eq!(times(&recent), want, "{kind:?} since 36 h");
        assert_eq!(
            store
                .count_records(kind, at(since), at(now))
                .await
                .expect("count"),
            want.len() as u64
        );
        let newest = store
            .newest_record(kind, at(now), 31)
            .await
            .expect("newest")
            .map(|r| item_to_json(&r));
        assert_eq!(
            newest.map(|r| times(&[r])),
            Some(vec![expected[31].clone()])
        );
    }
}

/// A record's day is that of its sort key's time, which every delivery
/// shares: the event's own time, or when the store first saw its key (the
/// plan is made again with that time, `Dedup::first_seen`). An event with
/// no time of its own, received a second before midnight and again seconds
/// after it, is one record, filed under the first day.
#[tokio::test]
async fn an_event_redelivered_across_midnight_is_one_record_of_the_first_day() {
    let c = consumer(fresh_store().await);
    let day = 24 * HOUR;
    let midnight = EventTime::now().millis() / day * day;
    let timeless = json!({"event_type": "LEAD_CALL_BOOKED", "campaign_id": 9}).to_string();
    for (i, sent) in [midnight - 1_000, midnight + 7_000].into_iter().enumerate() {
        for (name, body) in [("unknown", timeless.as_str()), ("html", "<p>not json</p>")] {
            let outcome = c
                .handle_record(&record(&format!("{name}-{i}"), body, sent))
                .await;
            assert!(!matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
        }
    }
    let first_day = at(midnight - 1_000).to_string()[..10].to_owned();
    for kind in [RecordKind::Unknown, RecordKind::Rejected] {
        let (partitions, n) = spread(&c.store, kind).await;
        assert_eq!(n, 1, "{kind:?}: {partitions:?}");
        let pk = partitions.first().expect("one");
        assert!(
            pk.starts_with(&format!("{}#{first_day}#", kind.prefix())),
            "{pk}"
        );
    }
}
