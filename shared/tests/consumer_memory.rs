//! The consumer's own logic on the in-memory store
//! (`test_support::memory`, which keeps `DynamoStore`'s contract:
//! `store_contract.rs`): no stand-in started, where DynamoDB is not what is
//! tested.

mod common;

use common::fixtures;
use common::sqs::{failures, record, sqs_fixture};
use serde_json::{json, Value};
use smartlead::app::consumer::Outcome;
use test_support::memory::{consumer, MemoryStore};

const JANE: &str = "LEAD#jane.doe@acme-corp.com";

/// The item `pk`/`sk`, which must be there.
fn get(store: &MemoryStore, pk: &str, sk: &str) -> Value {
    store
        .items()
        .remove(&format!("{pk}|{sk}"))
        .unwrap_or_else(|| panic!("no item {pk}|{sk}"))
}

#[tokio::test]
async fn a_retried_envelope_and_a_redelivery_with_the_same_request_id_are_duplicates() {
    let c = consumer(MemoryStore::new());
    let first = sqs_fixture("envelope_email_account_disconnected").records[0].clone();
    assert!(matches!(
        c.handle_record(&smartlead_consumer::message(first.clone()))
            .await,
        Outcome::Processed { .. }
    ));
    // SmartLead's retry: attempt 2, new bytes, new SQS message, no header.
    let mut body: Value = serde_json::from_str(first.body.as_deref().unwrap()).unwrap();
    body["meta"]["attempt"] = json!(2);
    let retry = record("retry-1", &body.to_string(), None);
    assert_eq!(
        c.handle_record(&smartlead_consumer::message(retry.clone()))
            .await,
        Outcome::Duplicate
    );
    assert_eq!(
        get(&c.store, "ACCOUNT#31338", "HEALTH#EMAIL")["disconnects"],
        1
    );

    // A flat body redelivered with the same X-Request-Id and other bytes.
    let open: Value = serde_json::from_str(&fixtures("payloads")["email_open"]).unwrap();
    let mut changed = open.clone();
    changed["campaign_name"] = json!("Q1 Outreach (renamed)");
    changed["delivery_note"] = json!("resent");
    let a = record("req-a", &open.to_string(), Some("req-7f3a"));
    let b = record("req-b", &changed.to_string(), Some("req-7f3a"));
    assert!(matches!(
        c.handle_record(&smartlead_consumer::message(a.clone()))
            .await,
        Outcome::Processed { .. }
    ));
    assert_eq!(
        c.handle_record(&smartlead_consumer::message(b.clone()))
            .await,
        Outcome::Duplicate
    );
    // The same open re-sent by hand, without the header (or with another
    // one): still a duplicate, since the event names itself.
    let resent = record("req-c", &open.to_string(), None);
    assert_eq!(
        c.handle_record(&smartlead_consumer::message(resent.clone()))
            .await,
        Outcome::Duplicate
    );
    let other_id = record("req-d", &open.to_string(), Some("req-9999"));
    assert_eq!(
        c.handle_record(&smartlead_consumer::message(other_id.clone()))
            .await,
        Outcome::Duplicate
    );
    assert_eq!(get(&c.store, JANE, "CAMPAIGN#123")["opens"], 1);
    // An open at another time is another open, whatever the header says.
    let mut later = open.clone();
    later["time_opened"] = json!("2025-01-15T10:31:00Z");
    let d = record("req-e", &later.to_string(), Some("req-7f3a"));
    assert!(matches!(
        c.handle_record(&smartlead_consumer::message(d.clone()))
            .await,
        Outcome::Processed { .. }
    ));
    assert_eq!(get(&c.store, JANE, "CAMPAIGN#123")["opens"], 2);
}

/// Every batch answers inside its deadline: records that cannot start
/// `STATE_MARGIN` before the invocation's end are reported failed, not
/// started (a Lambda that times out loses the whole partial-batch answer:
/// https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
#[tokio::test]
async fn records_too_close_to_the_deadline_are_returned_unstarted() {
    let store = MemoryStore::new();
    let c = consumer(store.clone());
    let batch = sqs_fixture("batch_mixed");
    let n = batch.records.len();
    let now = smartlead::domain::time::EventTime::now().millis();
    let margin = smartlead::app::consumer::STATE_MARGIN.as_millis() as i64;
    let started = std::time::Instant::now();
    let r = smartlead_consumer::handle(&c, batch.clone(), Some(now + margin - 500)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(failures(&r).len(), n, "every record is returned");
    assert!(store.items().is_empty(), "nothing was started");
    // With time left, the same batch is applied.
    let r = smartlead_consumer::handle(&c, batch, Some(now + 60_000)).await;
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    assert!(!store.items().is_empty());
}
