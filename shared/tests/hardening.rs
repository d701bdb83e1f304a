//! The consumer against DynamoDB Local on hostile and unlucky input: the
//! webhook secret never leaves the raw message, whatever the ingest accepts
//! is applied or deliberately recorded (never looped to the DLQ), a commit
//! whose answer was lost still runs its effects, and event times far from
//! the receive time do not freeze the state.

mod common;

use async_trait::async_trait;
use common::sqs::batch;
use common::{fixtures, fresh_store};
use proptest::prelude::*;
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_to_json, DynamoStore};
use smartlead::app::consumer::Outcome;
use smartlead::app::effects::{AlertRules, BusEvent, EffectError, Effects, Notifier, Publisher};
use smartlead::domain::event::SmartleadEvent;
use smartlead::domain::plan::ScoreWeights;
use smartlead::domain::time::EventTime;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use test_support::faults::{with_faults, Fault, Faults};
use test_support::sqs::SqsMessage;

use common::{consumer_with as consumer, marker};

fn record(id: &str, body: &str, sent_ms: i64) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_owned());
    m.attributes
        .insert("SentTimestamp".into(), sent_ms.to_string());
    m
}

/// Every item of the table, as JSON text.
async fn table_text(store: &DynamoStore) -> Vec<String> {
    let items = store.scan_all().await.expect("scan");
    items.iter().map(|i| item_to_json(i).to_string()).collect()
}

/// Keeps what it is asked to publish.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn taken(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Publisher for Recorder {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        let mut v = self.0.lock().expect("lock");
        for e in events {
            v.push(e.detail.clone());
        }
        events
            .iter()
            .map(|e| {
                if e.detail.contains("refuse-me") {
                    Err(EffectError::Permanent("MalformedDetail: refused".into()))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

#[async_trait]
impl Notifier for Recorder {
    fn effect(&self) -> &'static str {
        "slack"
    }
    async fn notify(&self, ev: &SmartleadEvent, key: &str, _: Instant) -> Result<(), EffectError> {
        let a = smartlead::app::effects::Alert::from_event(ev, key);
        let mut v = self.0.lock().expect("lock");
        v.push(a.text());
        v.push(a.slack().to_string());
        Ok(())
    }
}

const SECRET: &str = "Zx81-hook-secret+/=7Qp";

#[tokio::test]
async fn no_stored_item_bus_event_alert_or_log_line_carries_the_webhook_secret() {
    // Log lines as the functions write them, every span and level included.
    let (logs, _guard) = common::json_logs(tracing::Level::TRACE, true);

    let bus = Recorder::default();
    let alerts = Recorder::default();
    let every_type: Vec<&str> = smartlead::EventType::KNOWN
        .iter()
        .map(|t| t.as_str())
        .collect();
    let effects = Effects {
        publisher: Some(Box::new(bus.clone())),
        notifiers: vec![Box::new(alerts.clone())],
        alerts: AlertRules::parse(&every_type.join(","), "Interested").expect("rules"),
        ..Default::default()
    };
    let c = consumer(fresh_store().await, effects);
    // Every fixture, with the secret where SmartLead puts it and in other
    // spellings and depths besides.
    let mut bodies: Vec<String> = fixtures("payloads")
        .values()
        .map(|text| {
            let mut v: Value = serde_json::from_str(text).expect("fixture");
            let o = v.as_object_mut().expect("object");
            o.insert("secret_key".into(), json!(SECRET));
            // Current bodies name the URL SmartLead posts to, which holds
            // the secret as its last path segment (or `?token=`).
            let url = format!("https://x.example/webhooks/smartlead/{SECRET}");
            o.insert("webhook_url".into(), json!(url));
            o.insert(
                "extra".into(),
                json!({"SECRET_KEY": SECRET, "list": [{"secretKey": SECRET}],
                       "webhookUrl": format!("https://x.example/w?token={SECRET}")}),
            );
            v.to_string()
        })
        .collect();
    // Rejected bodies (kept with their raw text) and raw-kept ones.
    bodies.extend([
        json!({"secret_key": SECRET, "note": "no event type"}).to_string(),
        json!({"Secret-Key": SECRET, "event_type": 5}).to_string(),
        format!(r#"{{"event_type":"EMAIL_OPEN","secret_key":"{SECRET}","to_email":"#),
        json!({"event_type": "SOMETHING_NEW", "secret_key": SECRET}).to_string(),
        format!(r#"{{"event_type":"EMAIL_OPEN","webhook_url":"https://x.example/{SECRET}","#),
        json!({"event_type": "EMAIL_OPEN", "secret_key": SECRET, "campaign_id": 1}).to_string(),
    ]);
    let now = EventTime::now().millis();
    let records: Vec<SqsMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| record(&format!("m-{i}"), b, now))
        .collect();
    for chunk in records.chunks(10) {
        let r = c.handle_batch(batch(chunk.to_vec())).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    let items = table_text(&c.store).await;
    let bus = bus.taken();
    let alerts = alerts.taken();
    let logs = logs.text();
    // Not vacuous: every copy exists.
    assert!(items.iter().filter(|i| i.contains("REJECTED")).count() >= 3);
    assert!(items.iter().any(|i| i.contains("UNKNOWN#")));
    assert!(items.iter().any(|i| i.contains("UNATTRIBUTED#")));
    assert!(bus.len() >= fixtures("payloads").len(), "{}", bus.len());
    assert!(!alerts.is_empty() && !logs.is_empty());
    for (what, texts) in [("item", &items), ("bus event", &bus), ("alert", &alerts)] {
        for t in texts {
            assert!(!t.contains(SECRET), "a {what} carries the secret: {t}");
        }
    }
    assert!(
        !logs.contains(SECRET),
        "a log line carries the secret: {}",
        logs.lines()
            .filter(|l| l.contains(SECRET))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The rest of each event is still there.
    assert!(bus.iter().any(|b| b.contains("jane.doe@acme-corp.com")));
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_still_runs_its_effects_once() {
    let bus = Recorder::default();
    // The first write commits; its answer is lost, as a timeout would.
    let store = with_faults(&fresh_store().await, Faults::nth(1, Fault::LoseAnswer));
    let c = consumer(
        store,
        Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Effects::default()
        },
    );
    let body = common::payload("email_open");
    let b = batch(vec![record("m-1", &body, EventTime::now().millis())]);
    // SmartLead's retries and SQS's redeliveries, until it is acknowledged.
    for round in 0.. {
        assert!(round < 5, "never acknowledged");
        if c.handle_batch(b.clone())
            .await
            .batch_item_failures
            .is_empty()
        {
            break;
        }
    }
    assert_eq!(bus.taken().len(), 1, "the fan-out ran exactly once");
    // Its outcome: the pending mark the state write added is gone.
    let ev = smartlead::SmartleadEvent::from_slice(body.as_bytes()).expect("event");
    let lead = ev.normalized().lead_email.expect("lead");
    let items = c
        .store
        .partition(&format!("LEAD#{lead}"))
        .await
        .expect("query");
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| !i.contains_key("fo")), "fan-out done");
}

#[tokio::test]
async fn an_effect_refused_for_good_is_recorded_not_retried_and_does_not_hold_the_record() {
    let bus = Recorder::default();
    let c = consumer(
        fresh_store().await,
        Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Effects::default()
        },
    );
    let body = json!({"event_type": "EMAIL_OPEN", "to_email": "refuse-me@x.example",
                      "campaign_id": 3, "time_opened": "2025-01-15T10:00:00Z"})
    .to_string();
    let b = batch(vec![record("r-1", &body, EventTime::now().millis())]);
    let r = c.handle_batch(b.clone()).await;
    assert!(r.batch_item_failures.is_empty(), "{r:?}");
    // A redelivery (SmartLead's retry) does not try it again.
    assert!(c.handle_batch(b).await.batch_item_failures.is_empty());
    assert_eq!(bus.taken().len(), 1);
    let marker = marker(&c.store, &body).await;
    assert_eq!(marker["fx_fanout"], "refused");
}

#[tokio::test]
async fn far_future_and_epoch_microsecond_times_do_not_freeze_the_state() {
    let c = consumer(fresh_store().await, Effects::default());
    let now = EventTime::now();
    let hour_ago = EventTime::from_millis(now.millis() - 3_600_000).expect("time");
    let two_hours_ago_us = (now.millis() - 7_200_000) * 1000;
    let open = |t: Value, id: &str| {
        json!({"event_type": "EMAIL_OPEN", "to_email": "t@x.example", "campaign_id": 5,
               "sequence_number": 1, "time_opened": t, "stats_id": id})
        .to_string()
    };
    let b = batch(vec![
        record("a", &open(json!("2099-01-01T00:00:00Z"), "a"), now.millis()),
        record("b", &open(json!(hour_ago.to_string()), "b"), now.millis()),
        record("c", &open(json!(two_hours_ago_us), "c"), now.millis()),
    ]);
    assert!(c.handle_batch(b).await.batch_item_failures.is_empty());
    let item = smartlead::app::store::StateReader::item(&c.store, "LEAD#t@x.example", "CAMPAIGN#5")
        .await
        .expect("read")
        .expect("item");
    assert_eq!(item["opens"], 3);
    // The 2099 open counts, at its receive time; it does not hold `last_open_at`.
    let last = item["last_open_at"].as_str().expect("last open");
    assert!(last < "2098", "{last}");
    // Epoch microseconds read as such (not the year 55,000).
    let two_hours_ago = EventTime::from_millis(now.millis() - 7_200_000).expect("time");
    assert_eq!(item["first_open_at"], json!(two_hours_ago.to_string()));
}

// ---------------------------------------------------------------------------
// Hostile payloads: whatever the ingest accepts ends applied or recorded.
// ---------------------------------------------------------------------------

/// A JSON text with hostile parts; `@@…@@` placeholders become what a
/// `serde_json::Value` cannot hold (lone surrogates, numbers past f64).
fn hostile() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "EMAIL_SENT",
        "EMAIL_OPEN",
        "EMAIL_LINK_CLICK",
        "EMAIL_REPLY",
        "EMAIL_BOUNCE",
        "LEAD_UNSUBSCRIBED",
        "LEAD_CATEGORY_UPDATED",
        "MANUAL_STEP_REACHED",
        "CAMPAIGN_STATUS_CHANGED",
        "UNTRACKED_REPLIES",
        "EMAIL_ACCOUNT_DISCONNECTED",
        "CAMPAIGN_BOUNCE_BREACH",
        "LONG_UNKNOWN",
    ]);
    let text = prop_oneof![
        Just(json!("plain")),
        Just(json!("")),
        (1usize..120_000).prop_map(|n| json!("é😀".repeat(n))),
        Just(json!("@@LONE@@")),
    ];
    let number = prop_oneof![
        Just(json!(1)),
        Just(json!(1e300)),
        Just(json!(-1e200)),
        Just(json!(1e-300)),
        Just(json!("@@BIG@@")),
        Just(json!(u64::MAX)),
    ];
    let id = prop_oneof![
        Just(json!(42)),
        (300usize..4000).prop_map(|n| json!("9".repeat(n))),
    ];
    let email = prop_oneof![
        Just(json!("lead@acme.example")),
        (300usize..5000).prop_map(|n| json!(format!("{}@acme.example", "a".repeat(n)))),
    ];
    let time = prop_oneof![
        Just(json!("2025-01-15T10:30:00Z")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!(1_736_937_000_000_000_i64)),
        Just(json!(-5)),
    ];
    let links = prop::collection::vec(
        prop_oneof![
            Just("https://a.example/x".to_owned()),
            Just(String::new()),
            (2000usize..6000).prop_map(|n| format!("https://a.example/{}", "p".repeat(n))),
        ],
        0..120,
    );
    let depth = 0usize..60;
    (kind, text.clone(), text, number, id, email, time, links, depth).prop_map(
        |(kind, t1, t2, n, id, email, time, links, depth)| {
            let kind = if kind == "LONG_UNKNOWN" {
                "X".repeat(3000)
            } else {
                kind.to_owned()
            };
            let mut nested = json!({"leaf": n.clone()});
            for _ in 0..depth {
                nested = json!({"k": nested});
            }
            let v = json!({
                "event_type": kind, "to_email": email.clone(), "lead_email": email,
                "campaign_id": id.clone(), "email_account_id": id, "sequence_number": n.clone(),
                "time_opened": time.clone(), "time_clicked": time.clone(), "time_replied": time.clone(),
                "event_timestamp": time, "link_clicked": links, "preview_text": t1.clone(),
                "subject": t2.clone(), "step_description": t1, "message": t2,
                "bounce_rate": n.clone(), "threshold": n, "status": "PAUSED",
                "lead_data": {"first_name": "A", "custom_fields": nested.clone(), "category": {"name": "Interested"}},
                "category": {"name": "Interested", "id": 1},
                "deep": nested,
            });
            v.to_string()
                .replace(r#""@@LONE@@""#, r#""cut mid-emoji \ud83d""#)
                .replace(r#""@@BIG@@""#, "1e400")
        },
    )
}

#[test]
fn whatever_the_ingest_accepts_ends_applied_or_recorded_never_retried() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let c = rt.block_on(async { consumer(fresh_store().await, Effects::default()) });
    let n = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&hostile(), |body| {
            // What the ingest accepts: a probe that passes.
            prop_assert!(smartlead::domain::event::probe(body.as_bytes()).is_ok());
            let id = format!("h-{}", n.fetch_add(1, Ordering::SeqCst));
            let m = record(&id, &body, EventTime::now().millis());
            let outcome = rt.block_on(c.handle_record(&m));
            // Bounded to what DynamoDB holds: applied, not even refused.
            prop_assert!(
                matches!(outcome, Outcome::Processed { .. } | Outcome::Duplicate),
                "{outcome:?} for a body of {} bytes",
                body.len()
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn an_item_that_outgrows_dynamodb_still_takes_counts_flags_and_suppression() {
    let c = consumer(fresh_store().await, Effects::default());
    // Clicks adding 50 distinct 1 KB links each: unbounded, the lead's item
    // would pass DynamoDB's 400 KB after a few hundred links.
    for i in 0..12 {
        let links: Vec<String> = (0..50)
            .map(|j| format!("https://a.example/{i}/{j}/{}", "p".repeat(1000)))
            .collect();
        let body = json!({"event_type": "EMAIL_LINK_CLICK", "to_email": "big@x.example",
                          "campaign_id": 1, "link_clicked": links, "stats_id": format!("s{i}")})
        .to_string();
        let m = record(&format!("g-{i}"), &body, EventTime::now().millis());
        let outcome = c.handle_record(&m).await;
        assert!(
            matches!(outcome, Outcome::Processed { .. }),
            "click {i}: {outcome:?}"
        );
    }
    let bounce =
        json!({"event_type": "EMAIL_BOUNCE", "to_email": "big@x.example", "campaign_id": 1,
                        "stats_id": "b1", "bounce_message": {"text": "550 5.1.1 no such user"}})
        .to_string();
    let outcome = c
        .handle_record(&record("g-b", &bounce, EventTime::now().millis()))
        .await;
    assert!(matches!(outcome, Outcome::Processed { .. }), "{outcome:?}");
    let item =
        smartlead::app::store::StateReader::item(&c.store, "LEAD#big@x.example", "CAMPAIGN#1")
            .await
            .expect("read")
            .expect("item");
    assert_eq!(item["clicks"], 12);
    assert_eq!(item["bounces"], 1);
    let links = item["links_clicked"].as_array().expect("links").len();
    assert_eq!(
        links,
        smartlead::domain::plan::MAX_KEPT_LINKS,
        "the newest clicks kept"
    );
    let supp =
        smartlead::app::store::StateReader::item(&c.store, "LEAD#big@x.example", "SUPPRESSION")
            .await
            .expect("read");
    assert!(supp.is_some(), "the bounce suppressed the lead");
}

#[tokio::test]
async fn an_event_dynamodb_refuses_even_trimmed_is_recorded_with_the_reason_not_looped() {
    let clean = fresh_store().await;
    // DynamoDB refuses the first two writes for what they hold (the event
    // and its trimmed form), then takes the rest (the REJECTED record).
    let refused = Fault::Refuse("Item size has exceeded the maximum allowed size");
    let store = with_faults(&clean, Faults::first(2, refused));
    let c = consumer(store, Effects::default());
    let body = common::payload("email_open");
    let outcome = c
        .handle_record(&record("x-1", &body, EventTime::now().millis()))
        .await;
    assert_eq!(outcome, Outcome::Rejected("store_refused"));
    let items = table_text(&clean).await;
    assert!(
        items
            .iter()
            .any(|i| i.contains("\"store_refused\"") && i.contains("maximum allowed size")),
        "{items:?}"
    );
}

#[test]
fn only_content_validation_errors_are_permanent() {
    use smartlead::adapters::aws::dynamodb::refused_for_content as content;
    assert!(content(Some(
        "Item size has exceeded the maximum allowed size"
    )));
    assert!(content(Some(
        "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes"
    )));
    assert!(content(Some(
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    )));
    assert!(!content(Some(
        "Invalid UpdateExpression: Syntax error; token: \"+\""
    )));
    assert!(!content(Some(
        "The provided key element does not match the schema"
    )));
    assert!(!content(Some(
        "One or more parameter values were invalid: Type mismatch for key pk"
    )));
    assert!(!content(None));
}

/// UpdateItem's value errors as AWS words them: the message opens with
/// "ExpressionAttributeValues contains invalid value:", which holds the
/// word "expression" of a deploy's mistakes, then says what is wrong with
/// the value. An empty set, a duplicated set member or a number out of
/// range fails on every delivery alike: permanent. See "Error handling with
/// DynamoDB" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html)
/// and the attribute value limits in "Supported data types and naming rules"
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
#[test]
fn aws_value_errors_are_permanent_and_expression_errors_are_not() {
    use smartlead::adapters::aws::dynamodb::refused_for_content as content;
    for m in [
        "ExpressionAttributeValues contains invalid value: One or more parameter values were invalid: An string set  may not be empty for key :v3",
        "ExpressionAttributeValues contains invalid value: One or more parameter values were invalid: Input collection [a, a] contains duplicates. for key :v3",
        "ExpressionAttributeValues contains invalid value: Number overflow. Attempting to store a number with magnitude larger than supported range for key :v3",
        "ExpressionAttributeValues contains invalid value: Number underflow. Attempting to store a number with magnitude smaller than supported range for key :v3",
        "ExpressionAttributeValues contains invalid value: One or more parameter values were invalid: An AttributeValue may not contain an empty string for key :v0",
        // The duplicated values quoted, whatever they say.
        "ExpressionAttributeValues contains invalid value: One or more parameter values were invalid: Input collection [Page not found, Page not found] contains duplicates. for key :v3",
    ] {
        assert!(content(Some(m)), "permanent: {m}");
    }
    for m in [
        "ExpressionAttributeValues contains invalid key: Syntax error; key: \"v 1\"",
        "Value provided in ExpressionAttributeValues unused in expressions: keys: {:v9}",
        "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size",
        "Invalid ConditionExpression: Syntax error; token: \"<\", near: \"a <\"",
    ] {
        assert!(!content(Some(m)), "transient (a deploy's mistake): {m}");
    }
}

/// JSON-like texts built from hostile fragments, valid or not.
fn json_ish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just(r#""\ud83d""#.to_owned()),
        Just(r#""\udc00\ud800""#.to_owned()),
        Just(r#""\ud83d\ude00""#.to_owned()),
        Just("1e400".to_owned()),
        Just("-1E+999".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        Just("0.5e-400".to_owned()),
        Just("null".to_owned()),
        Just(r#""\\ud800""#.to_owned()),
        (0usize..300).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d))),
        (0usize..300).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
        (0usize..300).prop_map(|d| format!("{}2{}", "{\"a\":".repeat(d), "}".repeat(d))),
        Just("[".to_owned()),
        Just(r#""x"#.to_owned()),
    ];
    prop::collection::vec(fragment, 1..6).prop_map(|parts| {
        let fields: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!(r#""f{i}":{p}"#))
            .collect();
        format!(
            r#"{{"event_type":"EMAIL_REPLY","to_email":"a@b.example",{}}}"#,
            fields.join(",")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// One rule for both sides: a body the ingest's probe accepts parses in
    /// the consumer, and one it refuses is refused there too.
    #[test]
    fn the_probe_and_the_full_parse_agree(body in json_ish()) {
        let probed = smartlead::domain::event::probe(body.as_bytes()).is_ok();
        let parsed = SmartleadEvent::from_slice(body.as_bytes());
        prop_assert_eq!(probed, parsed.is_ok(), "{}", body);
        if let Ok(ev) = parsed {
            // And it plans without trouble.
            let _ = smartlead::domain::plan::plan(&ev, EventTime::now(), &ScoreWeights::default());
        }
    }
}

/// The items of `store` whose `pk|sk` starts with `prefix`.
/// The keys (`pk|sk`) of the records of `kind` (`UNKNOWN`, `REJECTED`...)
/// of `event_type` (any when none), whichever day and shard holds them.
async fn records_of(store: &DynamoStore, kind: &str, event_type: Option<&str>) -> Vec<String> {
    let items = common::items(store).await;
    items
        .into_iter()
        .filter(|(k, v)| {
            k.starts_with(&format!("{kind}#")) && event_type.is_none_or(|t| v["event_type"] == t)
        })
        .map(|(k, _)| k)
        .collect()
}

/// Records keyed `<time>#<key>` of events that name no time of their own
/// (or one believed by one delivery and not by the next): SmartLead sends
/// an event again when it got no timely 2xx, as a new request, so a new SQS
/// message with a new receive time. Each event still leaves one item,
/// counted once.
#[tokio::test]
async fn a_time_less_event_delivered_twice_seconds_apart_leaves_one_record() {
    let c = consumer(fresh_store().await, Effects::default());
    let unknown = json!({"event_type": "LEAD_MEETING_BOOKED", "campaign_id": 9, "calendar": "x"});
    // An open that names no lead and no time: kept whole, unattributed.
    let open = json!({"event_type": "EMAIL_OPEN", "campaign_id": 9, "sequence_number": 2});
    let now = EventTime::now().millis();
    // A time just past the believed window (24 h ahead) of the first
    // delivery and inside that of the second: one time for both still.
    let edge = EventTime::from_millis(now + 86_400_000 + 3_500).expect("time");
    let edge = json!({"event_type": "LEAD_CALL_BOOKED", "event_timestamp": edge.to_string()});
    for (i, sent) in [now, now + 7_000].into_iter().enumerate() {
        for (name, body) in [("unknown", &unknown), ("open", &open), ("edge", &edge)] {
            let m = record(&format!("{name}-{i}"), &body.to_string(), sent);
            let outcome = c.handle_record(&m).await;
            let expected = match i {
                0 => matches!(outcome, Outcome::Processed { .. }),
                _ => outcome == Outcome::Duplicate,
            };
            assert!(expected, "{name}, delivery {i}: {outcome:?}");
        }
    }
    let store = &c.store;
    let unknown = records_of(store, "UNKNOWN", Some("LEAD_MEETING_BOOKED")).await;
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let open = records_of(store, "UNATTRIBUTED", Some("EMAIL_OPEN")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    let edge = records_of(store, "UNKNOWN", Some("LEAD_CALL_BOOKED")).await;
    assert_eq!(edge.len(), 1, "{edge:?}");
}

/// A body that is no SmartLead event, and an event DynamoDB refuses even
/// trimmed, each sent twice by SmartLead (two SQS messages): one REJECTED
/// record each, whatever the message ids and receive times.
#[tokio::test]
async fn an_event_rejected_on_two_deliveries_leaves_one_rejected_record() {
    let clean = fresh_store().await;
    // Every delivery of the open: its item and its trimmed form refused
    // (the first two calls of each four, counted from 1), then the
    // first-seen write and the record.
    let refused = Fault::Refuse("Item size has exceeded the maximum allowed size");
    let pick = move |n: usize| ((n + 3) % 4 < 2).then_some(refused);
    let store = with_faults(&clean, Faults::new(pick));
    let c = consumer(store, Effects::default());
    let now = EventTime::now().millis();
    let open = common::payload("email_open");
    for (i, sent) in [now, now + 9_000].into_iter().enumerate() {
        let m = record(&format!("open-{i}"), &open, sent);
        assert_eq!(
            c.handle_record(&m).await,
            Outcome::Rejected("store_refused")
        );
    }
    let plain = consumer(clean.clone(), Effects::default());
    for (i, sent) in [now, now + 9_000].into_iter().enumerate() {
        let m = record(&format!("html-{i}"), "<html>not json</html>", sent);
        assert!(matches!(
            plain.handle_record(&m).await,
            Outcome::Rejected(_)
        ));
    }
    let records = records_of(&clean, "REJECTED", None).await;
    assert_eq!(records.len(), 2, "one record per event: {records:?}");
}

/// An S3 stand-in whose GetObject answers 403 AccessDenied, as S3 does for
/// a missing key to a caller without `s3:ListBucket` (GetObject,
/// "Permissions": https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html),
/// and whose ListObjectsV2 answers with `listed` (None: 403 too).
async fn s3_answering_403(listed: Option<&str>) -> (wiremock::MockServer, aws_sdk_s3::Client) {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, ResponseTemplate};
    let s = wiremock::MockServer::start().await;
    let denied = ResponseTemplate::new(403).set_body_raw(
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        "application/xml",
    );
    let listing = match listed {
        Some(keys) => ResponseTemplate::new(200).set_body_raw(
            format!(
                "<ListBucketResult><Name>bodies</Name><Prefix>raw/a.json</Prefix>\
                 <KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated>{keys}</ListBucketResult>"
            ),
            "application/xml",
        ),
        None => denied.clone(),
    };
    Mock::given(method("GET"))
        .and(path("/bodies/"))
        .and(query_param("list-type", "2"))
        .respond_with(listing)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/bodies/raw/a.json"))
        .respond_with(denied)
        .mount(&s)
        .await;
    let cfg = smartlead::adapters::aws::local_sdk_config(&s.uri()).await;
    (s, smartlead::adapters::aws::s3::client(&cfg, true))
}

/// A claim check of a body that is gone: in AWS, without `s3:ListBucket`,
/// S3 says 403 rather than 404. It ends recorded (REJECTED
/// `claim_check_missing`) and acknowledged, not looped to the DLQ; a 403
/// for an object that is there (or a listing denied too) is a real denial:
/// retried, for a permissions fix and a redrive.
#[tokio::test]
async fn a_claim_check_gone_reads_as_missing_though_s3_answers_403() {
    let pointer = json!({"claim_check": {"bucket": "bodies", "key": "raw/a.json",
                                         "size": 10, "sha256": "00"}})
    .to_string();
    let mut m = record("cc-1", &pointer, EventTime::now().millis());
    m.message_attributes
        .insert("body_location".into(), test_support::string_attribute("s3"));
    let there = "<Contents><Key>raw/a.json</Key><Size>10</Size></Contents>";
    for (listed, want_missing) in [(Some(""), true), (Some(there), false), (None, false)] {
        let (_s3, client) = s3_answering_403(listed).await;
        let mut c = consumer(fresh_store().await, Effects::default());
        c.blobs = Some(client);
        let outcome = c.handle_record(&m).await;
        if want_missing {
            assert_eq!(outcome, Outcome::Rejected("claim_check_missing"));
            let records = records_of(&c.store, "REJECTED", None).await;
            assert_eq!(records.len(), 1, "{records:?}");
        } else {
            assert!(
                matches!(outcome, Outcome::Failed(_)),
                "{listed:?}: {outcome:?}"
            );
        }
    }
}

/// An effects queue that is down: nothing can be queued.
struct QueueDown;

#[async_trait]
impl smartlead::app::worker::EffectQueue for QueueDown {
    async fn send_delayed(
        &self,
        msgs: &[smartlead::domain::message::OutgoingMessage],
        _delay: std::time::Duration,
    ) -> Vec<Result<(), smartlead::app::ingest::QueueError>> {
        msgs.iter()
            .map(|_| {
                Err(smartlead::app::ingest::QueueError::Send(
                    "ServiceUnavailable".into(),
                ))
            })
            .collect()
    }
    async fn delay(&self, _receipts: &[(String, std::time::Duration)]) {}
}

/// The webhook queue in moto: a client, its URL and ARN.
async fn webhook_queue() -> (smartlead::aws_sdk_sqs::Client, String, String) {
    let sdk = smartlead::adapters::aws::local_sdk_config(&common::moto().endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&sdk);
    let url = common::new_queue(&sqs, "webhooks").await;
    let arn = common::queue_arn(&sqs, &url).await;
    (sqs, url, arn)
}

/// A consumer whose effects queue is down and whose webhooks go back to
/// `requeue`, the first copy delayed by `base`.
fn effects_down(
    store: DynamoStore,
    publisher: Box<dyn Publisher>,
    requeue: Box<dyn smartlead::app::worker::EffectQueue>,
    base: std::time::Duration,
) -> common::TestConsumer {
    let mut c = consumer(
        store,
        Effects {
            publisher: Some(publisher),
            ..Effects::default()
        },
    );
    c.effect_path = Some(smartlead::app::worker::EffectPath {
        queue: Box::new(QueueDown),
        retry_base: base,
        requeue: Some(requeue),
    });
    c
}

/// A webhook message as the ingest queues it (`received_at` names it).
fn webhook(id: &str, body: &str, received_ms: i64) -> SqsMessage {
    let mut m = record(id, body, received_ms + 20);
    let at = EventTime::from_millis(received_ms)
        .expect("time")
        .to_string();
    m.message_attributes
        .insert("received_at".into(), test_support::string_attribute(&at));
    m
}

/// The copy `message` becomes when the effects queue is down: the record is
/// acknowledged, and its copy arrives on the webhook queue after its delay.
async fn sent_back(store: &DynamoStore, never: &Recorder, message: SqsMessage) -> SqsMessage {
    let (sqs, url, arn) = webhook_queue().await;
    let back = smartlead::adapters::aws::SqsQueue {
        client: sqs.clone(),
        queue_url: url.clone(),
    };
    let delay = std::time::Duration::from_secs(5);
    let down = effects_down(
        store.clone(),
        Box::new(never.clone()),
        Box::new(back),
        delay,
    );
    let answer = down.handle_batch(batch(vec![message])).await;
    assert!(
        answer.batch_item_failures.is_empty(),
        "the state is applied: the record is acknowledged, not redelivered: {answer:?}"
    );
    assert_eq!(delayed(&sqs, &url).await, 1, "the copy is delayed");
    next_copy(&sqs, &url, &arn).await
}

/// The messages of the queue at `url` sent with a delay not yet over.
async fn delayed(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> u64 {
    use smartlead::aws_sdk_sqs::types::QueueAttributeName as Q;
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Q::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes");
    a.attributes()
        .and_then(|m| m.get(&Q::ApproximateNumberOfMessagesDelayed))
        .and_then(|v| v.parse().ok())
        .expect("ApproximateNumberOfMessagesDelayed")
}

/// The one copy the webhook queue receives within 20 s.
async fn next_copy(sqs: &smartlead::aws_sdk_sqs::Client, url: &str, arn: &str) -> SqsMessage {
    let started = Instant::now();
    let copies = loop {
        let got = common::receive(sqs, url).await;
        if !got.is_empty() || started.elapsed() > std::time::Duration::from_secs(20) {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(copies.len(), 1, "{copies:?}");
    test_support::sqs_message_from(arn, &copies[0])
}

/// The copy, delivered twice with the effects queue up: a duplicate for
/// the state that queues the pending fan-out once.
async fn publishes_once(store: DynamoStore, copy: SqsMessage) {
    let bus = Recorder::default();
    let up = consumer(
        store,
        Effects {
            publisher: Some(Box::new(bus.clone())),
            ..Effects::default()
        },
    );
    for _ in 0..2 {
        let answer = up.handle_batch(batch(vec![copy.clone()])).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    }
    assert_eq!(bus.taken().len(), 1, "{:?}", bus.taken());
}

/// An effects queue that is down costs the webhook queue no receive: the
/// applied record goes back to its queue as a delayed copy (same body,
/// same `received_at`) and is acknowledged. The copy, once the effects
/// queue is up, queues the fan-out the first delivery could not: published
/// once, however often the copy comes. Before, each delivery was reported
/// failed, and five receives walked the applied record into the DLQ.
#[tokio::test]
async fn an_applied_record_whose_effects_are_not_queued_goes_back_delayed() {
    let store = fresh_store().await;
    let never = Recorder::default();
    let body = common::payload("email_open");
    let t0 = EventTime::now().millis();
    let copy = sent_back(&store, &never, webhook("m-1", &body, t0)).await;
    assert_eq!(copy.body.as_deref(), Some(body.as_str()));
    let attr = |name: &str| copy.message_attributes[name].string_value.clone();
    let at = EventTime::from_millis(t0).expect("time").to_string();
    assert_eq!(attr("received_at"), Some(at));
    assert_eq!(attr("requeued"), Some("1".into()));
    publishes_once(store, copy).await;
    assert!(never.taken().is_empty());
}

/// A message without `received_at` (not queued by the ingest) is named by
/// its `SentTimestamp`, which its copy's own would change: the copy carries
/// that time as `received_at`, so it still publishes the pending fan-out.
#[tokio::test]
async fn a_copy_keeps_the_time_that_names_a_message_without_received_at() {
    let store = fresh_store().await;
    let never = Recorder::default();
    let t0 = EventTime::now().millis() - 60_000;
    let copy = sent_back(
        &store,
        &never,
        record("m-2", &common::payload("email_reply"), t0),
    )
    .await;
    let at = EventTime::from_millis(t0).expect("time").to_string();
    let received_at = copy.message_attributes["received_at"].string_value.clone();
    assert_eq!(received_at, Some(at));
    publishes_once(store, copy).await;
}

/// A webhook the ingest queued with every attribute it sets (SmartLead's
/// `X-Request-Id` and `X-Webhook-Level` included: 8) gets its alert: the
/// alert's effect message keeps only what the worker reads, within SQS's
/// 10 attributes, which the SQS adapter enforces as SQS does (moto does not).
#[tokio::test]
async fn an_alert_of_a_webhook_with_every_attribute_fits_sqs_attribute_limit() {
    let alerts = Recorder::default();
    let c = consumer(
        fresh_store().await,
        Effects {
            notifiers: vec![Box::new(alerts.clone())],
            alerts: AlertRules::parse("EMAIL_REPLY", "Interested").expect("rules"),
            ..Effects::default()
        },
    );
    let mut m = webhook(
        "m-all",
        &common::payload("email_reply"),
        EventTime::now().millis(),
    );
    for (name, value) in [
        ("event_type", "EMAIL_REPLY"),
        ("request_id", "req-1"),
        ("body_sha256", "00"),
        ("source_ip", "192.0.2.1"),
        ("smartlead_request_id", "sl-1"),
        ("webhook_level", "campaign"),
        ("body_location", "inline"),
    ] {
        m.message_attributes
            .insert(name.into(), test_support::string_attribute(value));
    }
    assert_eq!(m.message_attributes.len(), 8);
    let answer = c.handle_batch(batch(vec![m])).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(
        alerts.taken().len(),
        2,
        "the alert ran once: {:?}",
        alerts.taken()
    );
}

/// An effects queue that takes the fan-outs and refuses the other effects.
struct FanoutOnly(smartlead::adapters::aws::SqsQueue);

#[async_trait]
impl smartlead::app::worker::EffectQueue for FanoutOnly {
    async fn send_delayed(
        &self,
        msgs: &[smartlead::domain::message::OutgoingMessage],
        _delay: std::time::Duration,
    ) -> Vec<Result<(), smartlead::app::ingest::QueueError>> {
        let mut out = Vec::new();
        for m in msgs {
            let fanout = m
                .attributes
                .iter()
                .any(|(k, v)| *k == "effect" && v == "fanout");
            out.push(if fanout {
                let sent = self.0.send_all(std::slice::from_ref(m)).await;
                sent.into_iter().next().expect("one answer")
            } else {
                QueueDown.send_all(std::slice::from_ref(m)).await.remove(0)
            });
        }
        out
    }
    async fn delay(&self, receipts: &[(String, std::time::Duration)]) {
        self.0.delay(receipts).await
    }
}

/// A record whose fan-out was queued but whose alert was not goes back,
/// and its copy runs the alert without queueing the fan-out again: the
/// fan-out's mark goes with the fan-out queued, whatever became of the
/// record's other effects. Each effect runs once.
#[tokio::test]
async fn a_copy_of_a_record_whose_fan_out_was_queued_publishes_it_no_more() {
    let store = fresh_store().await;
    let (sqs, url, arn) = webhook_queue().await;
    let effects_url = common::new_queue(&sqs, "effects").await;
    let (bus, alerts) = (Recorder::default(), Recorder::default());
    let effects = || Effects {
        publisher: Some(Box::new(bus.clone())),
        notifiers: vec![Box::new(alerts.clone())],
        alerts: AlertRules::parse("EMAIL_REPLY", "Interested").expect("rules"),
        ..Default::default()
    };
    let mut down = consumer(store.clone(), effects());
    let fanouts = smartlead::adapters::aws::SqsQueue {
        client: sqs.clone(),
        queue_url: effects_url.clone(),
    };
    let back = smartlead::adapters::aws::SqsQueue {
        client: sqs.clone(),
        queue_url: url.clone(),
    };
    down.effect_path = Some(smartlead::app::worker::EffectPath {
        queue: Box::new(FanoutOnly(fanouts)),
        retry_base: std::time::Duration::ZERO,
        requeue: Some(Box::new(back)),
    });
    let m = webhook(
        "m-1",
        &common::payload("email_reply"),
        EventTime::now().millis(),
    );
    let answer = down.handle_batch(batch(vec![m])).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    test_support::store::run_effects_of(&down, &sqs, &effects_url, 10).await;
    assert_eq!(bus.taken().len(), 1, "the fan-out ran: {:?}", bus.taken());
    assert!(alerts.taken().is_empty(), "the alert was not queued");
    let copy = next_copy(&sqs, &url, &arn).await;
    let queued = copy.message_attributes["queued"].string_value.clone();
    assert_eq!(queued.as_deref(), Some("fanout"));
    let up = consumer(store, effects());
    for _ in 0..2 {
        let answer = up.handle_batch(batch(vec![copy.clone()])).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    }
    assert_eq!(bus.taken().len(), 1, "published again: {:?}", bus.taken());
    // The alert ran once (the recorder keeps its text and its Slack body).
    assert_eq!(alerts.taken().len(), 2, "{:?}", alerts.taken());
}

/// A webhook sent back [`smartlead::app::consumer::MAX_COPIES`] times
/// already (a day of copies), or one the webhook queue refuses too, is left to
/// SQS: reported failed, so redelivered and, in the end, in the DLQ with
/// its alarm, where a redrive queues its effects.
#[tokio::test]
async fn a_webhook_sent_back_for_a_day_or_refused_is_left_to_sqs() {
    let store = fresh_store().await;
    let (sqs, url, _) = webhook_queue().await;
    let back = smartlead::adapters::aws::SqsQueue {
        client: sqs.clone(),
        queue_url: url.clone(),
    };
    let zero = std::time::Duration::ZERO;
    let down = effects_down(
        store.clone(),
        Box::new(Recorder::default()),
        Box::new(back),
        zero,
    );
    let t0 = EventTime::now().millis();
    let mut last = webhook("m-last", &common::payload("email_reply"), t0);
    let copies = smartlead::app::consumer::MAX_COPIES.to_string();
    last.message_attributes
        .insert("requeued".into(), test_support::string_attribute(&copies));
    let answer = down.handle_batch(batch(vec![last])).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "{answer:?}");
    assert_eq!(delayed(&sqs, &url).await, 0, "no copy");
    assert!(common::receive(&sqs, &url).await.is_empty(), "no copy");
    let refused = effects_down(
        store,
        Box::new(Recorder::default()),
        Box::new(QueueDown),
        zero,
    );
    let m = webhook(
        "m-refused",
        &common::payload("email_link_click"),
        EventTime::now().millis(),
    );
    let answer = refused.handle_batch(batch(vec![m])).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "{answer:?}");
}

/// A fan-out mark left pending (the effects queue down, the message then
/// gone to the DLQ; or a queued fan-out whose mark removal was lost) is
/// not queued again by a later copy of the event (SmartLead's retry, a
/// reconcile backfill, days later): only by the message that set it, which
/// a redelivery or a redrive brings back with its `received_at`.
#[tokio::test]
async fn a_pending_fan_out_is_published_again_only_by_the_message_that_marked_it() {
    let store = fresh_store().await;
    let effects = |p: Box<dyn Publisher>| Effects {
        publisher: Some(p),
        ..Effects::default()
    };
    let body = common::payload("email_open");
    let now = EventTime::now().millis();
    let t0 = now - 3 * 86_400_000;
    // A message as the ingest queues it: `received_at` names it, and a
    // redrive keeps it while SQS gives the copy a new `SentTimestamp`.
    let message = |id: &str, received_ms: i64, sent_ms: i64| {
        let mut m = record(id, &body, sent_ms);
        let at = EventTime::from_millis(received_ms)
            .expect("time")
            .to_string();
        m.message_attributes
            .insert("received_at".into(), test_support::string_attribute(&at));
        m
    };
    let never = Recorder::default();
    let mut down = consumer(store.clone(), effects(Box::new(never.clone())));
    down.effect_path = Some(smartlead::app::worker::EffectPath {
        queue: Box::new(QueueDown),
        retry_base: std::time::Duration::ZERO,
        requeue: None,
    });
    let failed = down
        .handle_batch(batch(vec![message("m-1", t0, t0 + 20)]))
        .await;
    assert_eq!(
        failed.batch_item_failures.len(),
        1,
        "the fan-out could not be queued: the record is to retry"
    );
    let bus = Recorder::default();
    let up = consumer(store, effects(Box::new(bus.clone())));
    // SmartLead sends the event again, three days on: a duplicate.
    let later = batch(vec![message("m-2", now, now + 20)]);
    assert!(up.handle_batch(later).await.batch_item_failures.is_empty());
    assert!(
        bus.taken().is_empty(),
        "a later copy published: {:?}",
        bus.taken()
    );
    // The first message, redriven from the DLQ: it publishes, once.
    let redriven = batch(vec![message("m-1-redriven", t0, now)]);
    assert!(up
        .handle_batch(redriven.clone())
        .await
        .batch_item_failures
        .is_empty());
    assert!(up
        .handle_batch(redriven)
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(bus.taken().len(), 1, "{:?}", bus.taken());
    assert!(never.taken().is_empty());
}
