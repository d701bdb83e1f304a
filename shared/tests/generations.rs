//! SmartLead's two field generations (help center, "Webhook Guide
//! Updated"): a body with only the current fields ends, on DynamoDB Local,
//! in the state of its twin with only the deprecated ones
//! (`events/current/` and `events/deprecated/`, same stem). What only the
//! current generation says (the category left, who actually replied,
//! SmartLead's own ids) is kept beside that state.

mod common;

use common::http::{self, requests};
use common::{consumer, consumer_with, fresh_store, get, items, TestConsumer};
use serde_json::Value;
use smartlead::adapters::http::slack::SlackNotifier;
use smartlead::app::effects::{AlertRules, Effects};
use smartlead::domain::event::EventType;
use std::collections::{BTreeMap, BTreeSet};
use test_support::sqs::{SqsEvent, SqsMessage};

/// Attributes only a current-generation body can fill.
const CURRENT_ONLY: &[&str] = test_support::CURRENT_ONLY_ATTRIBUTES;

/// Top-level fields of the deprecated generation (help center, each
/// event's "Webhook Guide Updated" page; for the pages that list none,
/// the names read before): a current body has none of them.
const DEPRECATED: &[&str] = &[
    "ui_master_inbox_link",
    "time_sent",
    "time_opened",
    "time_clicked",
    "time_replied",
    "custom_subject",
    "custom_email_message",
    "sent_message_body",
    "message_id",
    "reply_body",
    "preview_text",
    "link_clicked",
    "is_bounced",
    "bounce_reply_message_id",
    "bounce_reply_email",
    "bounce_reply_email_preview",
    "category",
    "lead_category_id",
    "from",
    "to",
    "lastReply",
    "status",
    "old_status",
];

/// Top-level fields only the current generation has: a deprecated body
/// has none of them, except where [`IN_BOTH`] says.
const CURRENT: &[&str] = &[
    "app_url",
    "event_timestamp",
    "created_at",
    "campaign_status",
    "sent_message",
    "reply_message",
    "bounce_message",
    "lead_category",
    "last_reply",
    "link_details",
    "current_status",
    "previous_status",
    "current_sequence_number",
    "sent_message_ids",
    "sender_detail",
    "recipient_detail",
    "visible_text",
    "cc_emails",
    "sl_email_lead_id",
    "sl_email_lead_map_id",
    "sl_lead_email",
    "stats_thread_id",
    "leadCorrespondence",
];

/// The time both twins carry: the Lead Unsubscribed page renames nothing
/// about it, and without one a deprecated category update is applied at
/// its receive time, which no twin could match.
const IN_BOTH: &[(&str, &str)] = &[
    ("lead_category_updated", "event_timestamp"),
    ("lead_unsubscribed", "event_timestamp"),
];

/// Types no page gives two generations: the per-user account events
/// (help center article 88 lists no deprecations; LinkedIn has no payload
/// page) and the bounce breach.
const NO_GENERATIONS: &[EventType] = &[
    EventType::EmailAccountDisconnected,
    EventType::LinkedinDisconnected,
    EventType::CampaignBounceBreach,
];

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
    without(state, CURRENT_ONLY)
}

/// The state without bookkeeping and without the attributes `drop`.
fn without(state: &BTreeMap<String, Value>, drop: &[&str]) -> BTreeMap<String, Value> {
    state
        .iter()
        .filter(|(k, _)| !k.starts_with("EVENT#"))
        .map(|(k, v)| {
            let mut v = v.clone();
            v.as_object_mut().expect("item").retain(|a, _| {
                !a.ends_with("_order")
                    && !BOOKKEEPING.contains(&a.as_str())
                    && !drop.contains(&a.as_str())
            });
            (k.clone(), v)
        })
        .collect()
}

/// The event type of `body`.
fn kind(body: &str) -> EventType {
    smartlead::domain::event::probe(body.as_bytes())
        .expect("an event")
        .event_type
}

/// The top-level fields of `body` that `names` lists, but for `stem`'s [`IN_BOTH`].
fn named(stem: &str, body: &str, names: &[&str]) -> Vec<String> {
    let v: Value = serde_json::from_str(body).expect("json");
    let keys = v.as_object().expect("object").keys();
    keys.filter(|k| names.contains(&k.as_str()) && !IN_BOTH.contains(&(stem, k.as_str())))
        .cloned()
        .collect()
}

#[test]
fn every_event_type_has_a_body_of_each_generation_and_each_uses_only_its_own_names() {
    let all = test_support::generations(&test_support::root()).expect("events/ generations");
    let paired: BTreeSet<EventType> = all.values().map(|(old, _)| kind(old)).collect();
    for t in EventType::KNOWN {
        assert!(
            paired.contains(t) || NO_GENERATIONS.contains(t),
            "{t}: no pair in events/deprecated and events/current"
        );
    }
    for (stem, (old, new)) in &all {
        assert_eq!(kind(old), kind(new), "{stem}");
        assert_eq!(
            named(stem, old, CURRENT),
            Vec::<String>::new(),
            "{stem}: deprecated body"
        );
        assert_eq!(
            named(stem, new, DEPRECATED),
            Vec::<String>::new(),
            "{stem}: current body"
        );
    }
}

#[tokio::test]
async fn every_current_body_ends_in_the_state_of_its_deprecated_twin() {
    let all = test_support::generations(&test_support::root()).expect("events/ generations");
    for (stem, (old, new)) in &all {
        let (was, now) = (state(old).await, state(new).await);
        assert!(
            was.keys().all(|k| !k.starts_with("UNATTRIBUTED#")),
            "{stem}: {was:#?}"
        );
        assert!(!comparable(&was).is_empty(), "{stem}: no state");
        assert_eq!(comparable(&now), comparable(&was), "{stem}");
    }
}

/// Both generations in one body (SmartLead's transition sends both).
fn merged(old: &str, new: &str) -> String {
    let mut m: Value = serde_json::from_str(old).expect("json");
    let new: Value = serde_json::from_str(new).expect("json");
    for (k, v) in new.as_object().expect("object") {
        m[k] = v.clone();
    }
    m.to_string()
}

#[tokio::test]
async fn a_body_with_both_generations_ends_as_the_current_one() {
    let all = test_support::generations(&test_support::root()).expect("events/ generations");
    for (stem, (old, new)) in &all {
        let both = merged(old, new);
        let ev = smartlead::SmartleadEvent::from_slice(both.as_bytes()).expect("event");
        assert_eq!(ev.typed_view_warning, None, "{stem}");
        let (b, n) = (state(&both).await, state(new).await);
        assert_eq!(without(&b, &[]), without(&n, &[]), "{stem}");
    }
}

#[test]
fn where_the_generations_disagree_the_current_field_wins() {
    let n = |v: Value| {
        let ev = smartlead::SmartleadEvent::from_slice(v.to_string().as_bytes()).expect("event");
        assert_eq!(ev.typed_view_warning, None);
        serde_json::to_value(ev.normalized()).expect("json")
    };
    let reply = n(
        serde_json::json!({"event_type": "EMAIL_REPLY", "to_email": "a@x.example",
        "time_replied": "2025-01-01T00:00:00Z", "event_timestamp": "2025-01-02T00:00:00Z",
        "preview_text": "old", "reply_message": {"text": "new", "message_id": "<new>"},
        "message_id": "<old>", "ui_master_inbox_link": "https://old", "app_url": "https://new"}),
    );
    assert_eq!(reply["event_time"], "2025-01-02T00:00:00.000Z");
    assert_eq!(reply["reply_text"], "new");
    assert_eq!(reply["message_id"], "<new>");
    assert_eq!(reply["app_url"], "https://new");
    let category = n(serde_json::json!({"event_type": "LEAD_CATEGORY_UPDATED",
        "lead_email": "old@x.example", "to_email": "new@x.example", "lead_name": "Old", "to_name": "New",
        "from": "old@s.example", "from_email": "new@s.example", "category": "Not Interested",
        "lead_category": {"new_name": "Interested"}, "campaign_status": "ACTIVE",
        "lastReply": {"email_body": "old"}, "last_reply": {"email_body": "new"}}));
    assert_eq!(category["lead_email"], "new@x.example");
    assert_eq!(category["lead_name"], "New");
    assert_eq!(category["sender_email"], "new@s.example");
    assert_eq!(category["category"], "Interested");
    assert_eq!(category["campaign_status"], "ACTIVE");
    let step = n(
        serde_json::json!({"event_type": "MANUAL_STEP_REACHED", "lead_email": "a@x.example",
        "to_email": "b@x.example", "sequence_number": 1, "current_sequence_number": 2}),
    );
    assert_eq!(
        step["lead_email"], "a@x.example",
        "the Manual Step page's own name"
    );
    assert_eq!(step["sequence_number"], 2);
    let status = n(
        serde_json::json!({"event_type": "CAMPAIGN_STATUS_CHANGED", "campaign_id": 1,
        "status": "PAUSED", "current_status": "ACTIVE"}),
    );
    assert_eq!(status["campaign_status"], "ACTIVE");
    let untracked = n(serde_json::json!({"event_type": "UNTRACKED_REPLIES",
        "sender_detail": "Sunita Soy <Sunita@x.example>", "from_email": "old@x.example",
        "recipient_detail": "a@s.example, b@s.example", "to_email": "old@s.example"}));
    assert_eq!(untracked["lead_email"], "sunita@x.example");
    assert_eq!(untracked["sender_email"], "a@s.example");
    let click = n(
        serde_json::json!({"event_type": "EMAIL_LINK_CLICK", "to_email": "a@x.example",
        "link_clicked": ["https://old"], "link_details": "https://new"}),
    );
    assert_eq!(click["link"], "https://new");
    let sent = n(
        serde_json::json!({"event_type": "EMAIL_SENT", "to_email": "a@x.example",
        "message_id": "<old>", "sent_message": {"message_id": "<new>"}}),
    );
    assert_eq!(sent["message_id"], "<new>");
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
    // The writer, stamped with the reply's time (the newest are kept).
    assert_eq!(
        reply["repliers"],
        serde_json::json!(["1737452101 tom@acme-example.com"])
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
    // Each of the colleague's replies; the lead's own adds none.
    assert_eq!(
        reply["repliers"],
        serde_json::json!([
            "1737452101 tom@acme-example.com",
            "1737452400 tom@acme-example.com"
        ])
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
