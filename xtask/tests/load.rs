//! `xtask load` in its smallest form: 200 webhooks from 4 clients against
//! the local stack with the limit stand-ins, and its accounting checked by
//! changing what it counts: an item deleted is a lost event, a counter
//! added to is a doubled one, a Slack message sent again is a doubled alert.

use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use std::time::Duration;
use xtask::pipeline;
use xtask::pipeline::load::{Harness, LoadOptions};

fn smallest() -> LoadOptions {
    LoadOptions {
        webhooks: 200,
        run: Duration::from_secs(15),
        clients: 4,
        ingest_instances: 2,
        // Failed records come back soon, not after the template's 3 minutes.
        visibility_secs: Some(10),
        drain: Duration::from_secs(90),
        ..LoadOptions::full(pipeline::target_dir().join("debug"))
    }
}

/// An EMAIL_OPEN event of the mix other than `not`, whose counters are all
/// on one item (its lead's in the campaign): (event, pk, sk, counters).
fn an_open(h: &Harness, not: Option<usize>) -> (usize, String, String, usize) {
    let (i, e) = h
        .mix
        .events
        .iter()
        .enumerate()
        .find(|(i, e)| {
            e.event_type == "EMAIL_OPEN"
                && Some(*i) != not
                && e.counts.iter().any(|c| c.2 == "opens")
                && e.counts
                    .iter()
                    .all(|c| (&c.0, &c.1) == (&e.counts[0].0, &e.counts[0].1))
        })
        .expect("an open in the mix");
    let (pk, sk, _) = e.counts[0].clone();
    (i, pk, sk, e.counts.len())
}

fn key(pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    [("pk", pk), ("sk", sk)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_smallest_load_counts_lost_and_doubled_events_from_the_table_and_stand_ins() {
    let mut h = Harness::start(&pipeline::workspace_root(), smallest())
        .await
        .expect("the load's stack starts");
    h.drive().await.expect("drive");
    h.drain().await.expect("drain");
    let before = h.account().await.expect("account");
    println!("{}", before.markdown());
    assert_eq!(before.webhooks, 200);
    assert_eq!(before.accepted, 200, "every webhook accepted");
    assert_eq!(before.duplicates_posted, 4);
    assert_eq!(before.events, 196);
    assert_eq!(before.state_lag.count, 196, "a stored time for every event");
    assert_eq!((before.lost, before.doubled), (0, 0));
    assert!(before.slack.expected > 0 && before.hygiene.expected > 0);

    // Lost: an event's only item gone.
    let (first, pk, sk, counters) = an_open(&h, None);
    let ddb = &h.stack.ddb;
    ddb.delete_item()
        .table_name(&h.stack.table)
        .set_key(Some(key(&pk, &sk)))
        .send()
        .await
        .expect("delete");
    // Doubled: another event's counter applied twice.
    let (_, pk, sk, _) = an_open(&h, Some(first));
    ddb.update_item()
        .table_name(&h.stack.table)
        .set_key(Some(key(&pk, &sk)))
        .update_expression("ADD opens :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("add");
    // A doubled alert: Slack posts one message again (after its second).
    let message = h.slack.accepted().last().expect("an alert").body.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = smartlead::adapters::http::client()
        .post(h.slack.webhook("T0LOAD/B0LOAD/load"))
        .body(message)
        .send()
        .await
        .expect("Slack stand-in")
        .status();
    assert_eq!(status, 200);

    let after = h.account().await.expect("account again");
    assert_eq!(
        after.lost,
        before.lost + 1,
        "the deleted item's event is lost"
    );
    assert_eq!(
        after.missing_increments,
        before.missing_increments + counters
    );
    assert_eq!(after.doubled, before.doubled + 1, "the counter added to");
    let doubled_alerts = after.slack.doubled - before.slack.doubled;
    assert!(
        doubled_alerts >= 1,
        "the message sent again: {doubled_alerts}"
    );
    // The taps were read once: a second account counts them alike.
    assert_eq!(after.fanout.once, before.fanout.once);
    assert_eq!(after.sns.once, before.sns.once);
}
