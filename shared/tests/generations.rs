//! SmartLead's two field generations (help center, "Webhook Guide
//! Updated"): a body with only the current fields ends, on DynamoDB Local,
//! in the state of its twin with only the deprecated ones
//! (`events/current/` and `events/deprecated/`, same stem). What only the
//! current generation says (the category left, who actually replied,
//! SmartLead's own ids) is kept beside that state.

mod common;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use common::http::{self, requests};
use common::{consumer, consumer_with, fresh_store, get, items, TestConsumer};
use serde_json::Value;
use smartlead::adapters::http::slack::SlackNotifier;
use smartlead::app::effects::{AlertRules, Effects};
use std::collections::BTreeMap;

/// Attributes only a current-generation body can fill (the deprecated one
/// has no field for them): left out when the two states are compared, and
/// checked on their own.
const CURRENT_ONLY: &[&str] = &["previous_category", "previous_category_id"];

/// Bookkeeping that differs between two deliveries or two spellings of
/// one event (the key's hash ends the `*_order` registers and fills `ek`).
const BOOKKEEPING: &[&str] = &["processed_at", "message_id", "expires_at", "ek", "fo"];

/// The (deprecated, current) bodies of `stem`.
fn pair(stem: &str) -> (String, String) {
    let all = test_support::generations(&test_support::root()).expect("events/ generations");
    all.get(stem)
        .cloned()
        .unwrap_or_else(|| panic!("no generation pair {stem}"))
}

/// `body` as the one record of an SQS batch, as the ingest queues it.
fn batch(body: &str) -> SqsEvent {
    let kind = smartlead::domain::event::probe(body.as_bytes())
        .expect("an event")
        .event_type;
    let rec: SqsMessage =
        serde_json::from_value(test_support::sqs_record("generation", body, kind.as_str()))
            .expect("record");
    let mut e = SqsEvent::default();
    e.records = vec![rec];
    e
}

/// `body` applied by `c`; panics when the record failed.
async fn apply(c: &TestConsumer, body: &str) {
    let r = c.handle_batch(batch(body)).await;
    assert!(r.batch_item_failures.is_empty(), "{body}");
}

/// The state `body` leaves in a fresh table, keyed `pk|sk`.
async fn state(body: &str) -> BTreeMap<String, Value> {
    let c = consumer(fresh_store().await);
    apply(&c, body).await;
    items(&c.store).await
}

/// The state without bookkeeping and without the current-only attributes.
fn comparable(state: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    state
        .iter()
        .filter(|(k, _)| !k.starts_with("EVENT#"))
        .map(|(k, v)| {
            let mut v = v.clone();
            v.as_object_mut().expect("item").retain(|a, _| {
                !a.ends_with("_order")
                    && !BOOKKEEPING.contains(&a.as_str())
                    && !CURRENT_ONLY.contains(&a.as_str())
            });
            (k.clone(), v)
        })
        .collect()
}

#[tokio::test]
async fn a_current_category_update_ends_as_its_deprecated_twin_and_keeps_the_previous_one() {
    let (old, new) = pair("lead_category_updated");
    let (was, now) = (state(&old).await, state(&new).await);
    let item = get(&now, "LEAD#ramesh@acme-example.com", "CAMPAIGN#9181");
    assert_eq!(item["category"], "Interested", "{item:#}");
    assert_eq!(item["category_id"], "1");
    assert_eq!(item["previous_category"], "Information Request");
    assert_eq!(item["previous_category_id"], "5");
    assert_eq!(item["category_at"], "2025-01-20T10:02:11.120Z");
    assert_eq!(comparable(&now), comparable(&was));
}

#[tokio::test]
async fn a_current_category_update_to_a_positive_category_alerts() {
    let slack = http::server().await;
    let effects = || Effects {
        notifiers: vec![Box::new(SlackNotifier::new(format!(
            "{}/services/T000/B000/XXX",
            slack.uri()
        )))],
        alerts: AlertRules::default(),
        ..Effects::default()
    };
    let (old, new) = pair("lead_category_updated");
    for body in [&new, &old] {
        apply(&consumer_with(fresh_store().await, effects()), body).await;
    }
    let titles: Vec<Value> = requests(&slack)
        .await
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("json")["text"].clone())
        .collect();
    let lead = "Ramesh Kumar <ramesh@acme-example.com>";
    assert_eq!(
        titles,
        [
            format!("{lead} is now Interested (was Information Request)"),
            format!("{lead} is now Interested"),
        ]
    );
}

#[tokio::test]
async fn a_colleagues_reply_counts_for_the_lead_that_was_emailed_and_names_who_wrote_it() {
    let colleague: Value =
        serde_json::from_str(&common::payload("email_reply_colleague")).expect("json");
    // The same colleague where only `sl_lead_email` names the lead, then
    // the lead's own reply: three replies of one lead.
    let mut no_correspondence = colleague.clone();
    no_correspondence
        .as_object_mut()
        .expect("object")
        .remove("leadCorrespondence");
    no_correspondence["reply_message"]["message_id"] = "<r2@acme-example.com>".into();
    no_correspondence["event_timestamp"] = "2025-01-21T09:40:00Z".into();
    no_correspondence["reply_message"]["time"] = "2025-01-21T09:40:00Z".into();
    let mut own = colleague.clone();
    own["to_email"] = "Jane@Acme-Example.com".into();
    own["to_name"] = "Jane Roe".into();
    own["cc_emails"] = serde_json::json!([]);
    own["leadCorrespondence"]["replyReceivedFrom"] = "jane@acme-example.com".into();
    own["reply_message"]["message_id"] = "<r3@acme-example.com>".into();
    own["event_timestamp"] = "2025-01-21T09:50:00Z".into();
    own["reply_message"]["time"] = "2025-01-21T09:50:00Z".into();

    let c = consumer(fresh_store().await);
    apply(&c, &colleague.to_string()).await;
    let s = items(&c.store).await;
    assert!(
        s.keys().all(|k| !k.contains("tom@")),
        "no lead for the colleague: {:#?}",
        s.keys().collect::<Vec<_>>()
    );
    let lead = "LEAD#jane@acme-example.com";
    assert_eq!(get(&s, lead, "CAMPAIGN#9181")["replies"], 1);
    let reply = get(&s, lead, "REPLY#9181");
    assert_eq!(
        reply["last_reply_from"], "tom@acme-example.com",
        "{reply:#}"
    );
    assert_eq!(
        reply["repliers"],
        serde_json::json!(["tom@acme-example.com"])
    );
    assert_eq!(
        reply["last_reply_cc"],
        serde_json::json!(["jane@acme-example.com", "legal@acme-example.com"])
    );
    assert_eq!(reply["last_reply_company_domain"], "SameCompany");

    apply(&c, &no_correspondence.to_string()).await;
    apply(&c, &own.to_string()).await;
    let s = items(&c.store).await;
    assert!(s.keys().all(|k| !k.contains("tom@")));
    assert_eq!(get(&s, lead, "CAMPAIGN#9181")["replies"], 3);
    let reply = get(&s, lead, "REPLY#9181");
    assert_eq!(
        reply["last_reply_from"], "jane@acme-example.com",
        "{reply:#}"
    );
    assert_eq!(
        reply["repliers"],
        serde_json::json!(["tom@acme-example.com"])
    );
    assert_eq!(reply["last_reply_cc"], serde_json::json!([]));
    assert_eq!(reply["last_reply_at"], "2025-01-21T09:50:00.000Z");
}

#[tokio::test]
async fn smartleads_ids_and_the_conversation_link_are_kept_on_the_leads_campaign_item() {
    let c = consumer(fresh_store().await);
    apply(&c, &common::payload("email_reply_colleague")).await;
    // An open naming its lead by SmartLead's id alone.
    let open = serde_json::json!({"event_type": "EMAIL_OPEN", "sl_email_lead_id": 1482956,
        "campaign_id": 9181, "sequence_number": 1, "event_timestamp": "2025-01-21T10:00:00Z"});
    apply(&c, &open.to_string()).await;
    let s = items(&c.store).await;
    let item = get(&s, "LEAD#jane@acme-example.com", "CAMPAIGN#9181");
    assert_eq!(item["sl_email_lead_id"], "1482956", "{item:#}");
    assert_eq!(item["sl_email_lead_map_id"], "1438627");
    assert_eq!(item["stats_thread_id"], "thread_id");
    assert_eq!(
        item["app_url"],
        "https://app.smartlead.ai/app/master-inbox?leadMap=1438627"
    );
    assert_eq!(get(&s, "LEAD#id:1482956", "CAMPAIGN#9181")["opens"], 1);
}

#[test]
fn smartleads_ids_do_not_split_one_event_into_two() {
    let key = |v: &Value| {
        smartlead::SmartleadEvent::from_slice(v.to_string().as_bytes())
            .expect("event")
            .dedup_key()
    };
    let reply: Value =
        serde_json::from_str(&common::payload("email_reply_colleague")).expect("json");
    let mut bare = reply.clone();
    for k in [
        "sl_email_lead_id",
        "sl_email_lead_map_id",
        "stats_thread_id",
    ] {
        bare.as_object_mut().expect("object").remove(k);
    }
    assert_eq!(key(&reply), key(&bare));
    let open = |map: u64| {
        serde_json::json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.example", "campaign_id": 1,
            "sequence_number": 1, "time_opened": "2025-01-21T10:00:00Z", "sl_email_lead_map_id": map})
    };
    assert_eq!(key(&open(1)), key(&open(2)));
}
