//! The fault interceptor does what the store's tests rely on, against
//! DynamoDB Local: a reset call writes nothing, a lost answer's write is
//! there, a refusal is DynamoDB's `ValidationException` (permanent) and
//! writes nothing, and calls are counted.

use smartlead::adapters::aws::dynamodb::{create_table, DynamoStore};
use smartlead::app::store::{ApplyOutcome, Dedup, StateReader, StoreError};
use smartlead::domain::plan::{plan, ScoreWeights};
use smartlead::domain::time::EventTime;
use test_support::faults::{with_faults, Fault, Faults};

async fn store() -> DynamoStore {
    static DDB: std::sync::OnceLock<test_support::standins::Service> = std::sync::OnceLock::new();
    let ddb = DDB.get_or_init(|| {
        test_support::standins::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}"))
    });
    let cfg = smartlead::adapters::aws::local_sdk_config(&ddb.endpoint()).await;
    let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    let table = format!("faults-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.expect("table");
    DynamoStore::new(client, table)
}

fn open_plan() -> smartlead::domain::plan::Plan {
    let ev = smartlead::SmartleadEvent::from_value(serde_json::json!({
        "event_type": "EMAIL_OPEN", "to_email": "f@x.example", "campaign_id": 3,
        "sequence_number": 1, "time_opened": "2025-01-15T10:30:00Z"}))
    .expect("event");
    plan(&ev, EventTime::now(), &ScoreWeights::default())
}

async fn written(store: &DynamoStore) -> bool {
    let p = open_plan();
    let u = &p.items[0];
    store.item(&u.pk, &u.sk).await.expect("read").is_some()
}

#[tokio::test]
async fn each_fault_does_what_it_says() {
    let clean = store().await;
    let faults = Faults::nth(1, Fault::Reset);
    let s = with_faults(&clean, faults.clone());
    let e = s.apply(&open_plan(), "m").await.expect_err("reset");
    assert!(e.is_retryable(), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    assert!(!written(&clean).await, "a reset call writes nothing");
    assert_eq!(faults.calls(), 1);

    let clean = store().await;
    let s = with_faults(&clean, Faults::nth(1, Fault::LoseAnswer));
    let e = s.apply(&open_plan(), "m").await.expect_err("lost");
    assert!(e.is_retryable(), "{e}");
    assert!(written(&clean).await, "a lost answer's write committed");

    // Refused for what it holds: the store sees DynamoDB's refusal (it
    // writes the trimmed form next) ...
    const TOO_BIG: &str = "Item size has exceeded the maximum allowed size";
    let clean = store().await;
    let faults = Faults::nth(1, Fault::Refuse(TOO_BIG));
    let s = with_faults(&clean, faults.clone());
    match s.apply(&open_plan(), "m").await.expect("trimmed") {
        ApplyOutcome::Applied { trimmed, .. } => assert!(trimmed, "not seen as refused"),
        other => panic!("{other:?}"),
    }
    assert_eq!(faults.calls(), 2);
    // ... and a refused call writes nothing: as a permanent error.
    let clean = store().await;
    let s = with_faults(&clean, Faults::first(usize::MAX, Fault::Refuse(TOO_BIG)));
    let e = s
        .item("LEAD#f@x.example", "CAMPAIGN#3")
        .await
        .expect_err("refused");
    assert!(matches!(e, StoreError::Permanent { .. }), "{e}");
    assert!(e.to_string().contains("maximum allowed size"), "{e}");
    let _ = s.apply(&open_plan(), "m").await;
    assert!(!written(&clean).await, "a refused call writes nothing");
}

/// What the SDK does not retry, the store sends again a few times: a
/// transaction on the item in the way.
#[tokio::test]
async fn a_conflict_is_sent_again_four_times_at_most() {
    let clean = store().await;
    let faults = Faults::first(4, Fault::Conflict);
    let s = with_faults(&clean, faults.clone());
    assert!(matches!(
        s.apply(&open_plan(), "m").await,
        Ok(ApplyOutcome::Applied { .. })
    ));
    assert_eq!(faults.calls(), 5, "four conflicts, then the write");
    let item = s
        .item("LEAD#f@x.example", "CAMPAIGN#3")
        .await
        .expect("read");
    assert_eq!(item.expect("written")["opens"], 1);

    let clean = store().await;
    let s = with_faults(&clean, Faults::first(usize::MAX, Fault::Conflict));
    let e = s
        .apply(&open_plan(), "m")
        .await
        .expect_err("kept conflicting");
    assert!(e.is_retryable(), "{e}");
    assert!(!written(&clean).await);
}

/// A lost answer the SDK retries (a 500 after the commit): the retry meets
/// the call's own write and the event is applied once.
#[tokio::test]
async fn a_lost_answer_the_sdk_retries_is_applied_once() {
    let clean = store().await;
    let faults = Faults::nth(1, Fault::LoseAnswerRetried);
    let s = with_faults(&clean, faults.clone());
    s.apply(&open_plan(), "m").await.expect("applied");
    assert_eq!(faults.calls(), 2, "the SDK sent it again");
    let item = s
        .item("LEAD#f@x.example", "CAMPAIGN#3")
        .await
        .expect("read");
    assert_eq!(item.expect("written")["opens"], 1, "applied once");
}
