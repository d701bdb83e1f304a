//! Side effects after the state: EventBridge fan-out and SNS against moto,
//! Slack against a stand-in server, state in DynamoDB Local. Each effect
//! happens once per event, is retried on failure without applying the state
//! again, and is not repeated after it succeeded.

mod common;

use async_trait::async_trait;
use common::bus::{bus, capture_queue, drain_capture};
use common::http::{self, body as text, requests, target};
use common::sqs::{batch, failures, sqs_fixture};
use common::{fresh_store, moto, unique};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_to_json, DynamoStore};
use smartlead::adapters::aws::eventbridge::EventBridgePublisher;
use smartlead::adapters::aws::local_sdk_config;
use smartlead::adapters::aws::sns::SnsNotifier;
use smartlead::adapters::http::slack::SlackNotifier;
use smartlead::app::effects::{AlertRules, BusEvent, EffectError, Effects, HygieneMode, Publisher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use test_support::sqs::SqsMessage;

fn consumer(store: DynamoStore, effects: Effects) -> common::TestConsumer {
    common::consumer_with(store, effects)
}

/// One record carrying `body`, with its own message id.
fn record(id: &str, body: &Value) -> SqsMessage {
    let mut m = sqs_fixture("email_open").records.remove(0);
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_string());
    m
}

#[tokio::test]
async fn every_processed_event_is_published_once_with_its_state_and_payload() {
    let (publisher, sqs, capture) = bus().await;
    let c = consumer(
        fresh_store().await,
        Effects {
            publisher: Some(Box::new(publisher)),
            ..Effects::default()
        },
    );
    let all = sqs_fixture("batch_all");
    let n = all.records.len();
    assert!(failures(&c.handle_batch(all.clone()).await).is_empty());
    // SmartLead retries and SQS redelivers: nothing new is published.
    assert!(failures(&c.handle_batch(all.clone()).await).is_empty());
    assert!(failures(&c.handle_batch(sqs_fixture("batch_mixed")).await).is_empty());
    let events = drain_capture(&sqs, &capture).await;
    let keys: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| e["detail"]["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), events.len(), "no event published twice");
    // batch_all holds three aliases of events it also holds: one key each.
    assert!(
        events.len() >= n - 3 && events.len() <= n,
        "{} of {n}",
        events.len()
    );
    let open = events
        .iter()
        .find(|e| {
            e["detail-type"] == "EMAIL_OPEN"
                && e["detail"]["payload"]["time_opened"].is_string()
                && e["detail"]["normalized"]["lead_email"] == "jane.doe@acme-corp.com"
        })
        .expect("an EMAIL_OPEN on the bus");
    assert_eq!(open["source"], "smartlead.webhooks");
    assert_eq!(
        open["detail"]["normalized"]["lead_email"],
        "jane.doe@acme-corp.com"
    );
    assert!(
        open["detail"]["state"]["opens"].as_f64().unwrap() >= 1.0,
        "{open}"
    );
    assert_eq!(open["detail"]["id"], open["detail"]["dedup_key"]);
}

/// Fails every entry of its first `fail` calls, then publishes for real.
struct Flaky {
    inner: EventBridgePublisher,
    fail: AtomicUsize,
}

#[async_trait]
impl Publisher for Flaky {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return events
                .iter()
                .map(|_| Err(EffectError::Transient("InternalFailure".into())))
                .collect();
        }
        self.inner.publish(events).await
    }
}

/// State never waits for an effect: a failed publish leaves the record
/// acknowledged (its state stored) and is retried on the effects queue.
#[tokio::test]
async fn a_failed_publish_is_retried_on_its_own_path_not_by_the_record() {
    let (publisher, sqs, capture) = bus().await;
    let store = fresh_store().await;
    let c = consumer(
        store.clone(),
        Effects {
            publisher: Some(Box::new(Flaky {
                inner: publisher,
                fail: AtomicUsize::new(1),
            })),
            ..Effects::default()
        },
    );
    let open = json!({"event_type": "EMAIL_OPEN", "to_email": "flaky@fx.example", "campaign_id": 5,
                      "time_opened": "2025-05-05T05:05:05Z"});
    // The batch alone: its effects are left in the effects queue.
    let first = c
        .handle_batch_until(batch(vec![record("m-1", &open)]), None)
        .await;
    assert!(
        failures(&first).is_empty(),
        "the state is applied: the record is acknowledged although its publish will fail"
    );
    let opens = || async {
        let items = store.partition("LEAD#flaky@fx.example").await.unwrap();
        item_to_json(&items[0])["opens"].clone()
    };
    assert_eq!(opens().await, 1);
    assert!(drain_capture(&sqs, &capture).await.is_empty());
    // The effects queue runs it: failed once, then published.
    c.run_effects().await;
    assert_eq!(c.failed_effects(), 1, "the first publish failed");
    assert_eq!(drain_capture(&sqs, &capture).await.len(), 1);

    // Later deliveries (a redelivery, SmartLead's retry) do nothing at all.
    assert!(failures(&c.handle_batch(batch(vec![record("m-1", &open)])).await).is_empty());
    assert!(failures(&c.handle_batch(batch(vec![record("m-2", &open)])).await).is_empty());
    assert_eq!(opens().await, 1);
    assert!(drain_capture(&sqs, &capture).await.is_empty());
}

fn slack_effects(url: &str) -> Effects {
    Effects {
        notifiers: vec![Box::new(SlackNotifier::new(format!(
            "{url}/services/T000/B000/XXX"
        )))],
        alerts: AlertRules::default(),
        ..Effects::default()
    }
}

fn reply(email: &str) -> Value {
    json!({"event_type": "EMAIL_REPLY", "to_email": email, "to_name": "Pat Lee", "campaign_id": 9,
           "campaign_name": "Spring", "preview_text": "Yes, let's meet on Tuesday",
           "time_replied": "2025-04-01T09:00:00Z", "message_id": format!("<{email}>")})
}

#[tokio::test]
async fn slack_alerts_once_honouring_429_and_retrying_after_a_500() {
    let slack = http::server().await;
    let c = consumer(fresh_store().await, slack_effects(&slack.uri()));

    // Rate limited first: waits Retry-After, then delivers, within the invocation.
    http::once(&slack, 429, Some(1)).await;
    let r = c
        .handle_batch(batch(vec![record("r-1", &reply("pat@fx.example"))]))
        .await;
    assert!(failures(&r).is_empty());
    let calls = requests(&slack).await;
    assert_eq!(calls.len(), 2);
    // The first call got the 429 (checked by `verify`); the other was delivered.
    let delivered = &calls[1..];
    assert_eq!(delivered.len(), 1);
    let msg: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(msg["text"], "Reply from Pat Lee <pat@fx.example>");
    assert!(text(&delivered[0]).contains("Yes, let's meet on Tuesday"));
    assert_eq!(target(&delivered[0]), "/services/T000/B000/XXX");
    http::verify(&slack).await;

    // A 500: the record is acknowledged (state kept), the effect retried
    // on its own path and delivered, then never again.
    http::once(&slack, 500, None).await;
    let second = reply("sam@fx.example");
    let failed_before = c.failed_effects();
    let r = c.handle_batch(batch(vec![record("r-2", &second)])).await;
    assert!(failures(&r).is_empty());
    assert_eq!(c.failed_effects(), failed_before + 1, "the 500 was retried");
    http::verify(&slack).await;
    for _ in 0..2 {
        assert!(failures(&c.handle_batch(batch(vec![record("r-2", &second)])).await).is_empty());
    }
    // Two calls for Sam: the one answered 500, then one delivered.
    let to_sam: Vec<_> = requests(&slack)
        .await
        .into_iter()
        .filter(|r| text(r).contains("sam@fx.example"))
        .collect();
    assert_eq!(to_sam.len(), 2, "one answered 500, one delivered");

    // Opens do not alert.
    let before = requests(&slack).await.len();
    let open = json!({"event_type": "EMAIL_OPEN", "to_email": "pat@fx.example", "campaign_id": 9});
    assert!(failures(&c.handle_batch(batch(vec![record("o-1", &open)])).await).is_empty());
    assert_eq!(requests(&slack).await.len(), before);
}

#[tokio::test]
async fn a_slack_4xx_is_recorded_as_refused_and_never_retried() {
    let slack = http::server().await;
    let c = consumer(fresh_store().await, slack_effects(&slack.uri()));
    // The hook was revoked: Slack answers 404 (no_service).
    http::once(&slack, 404, None).await;
    let body = reply("gone@fx.example");
    let r = c.handle_batch(batch(vec![record("g-1", &body)])).await;
    assert!(
        failures(&r).is_empty(),
        "a 4xx does not hold the record back"
    );
    // SmartLead's retry of the same event does not call Slack again.
    assert!(failures(&c.handle_batch(batch(vec![record("g-2", &body)])).await).is_empty());
    assert_eq!(requests(&slack).await.len(), 1);
    http::verify(&slack).await;
    let marker = common::marker(&c.store, &body.to_string()).await;
    assert_eq!(marker["fx_slack"], "refused");
}

#[tokio::test]
async fn two_consumers_at_once_alert_once() {
    let slack = http::server().await;
    // Slow answers: both consumers are in the call at once; one call in all.
    http::slow(&slack, std::time::Duration::from_millis(300), 1).await;
    let store = fresh_store().await;
    let a = Arc::new(consumer(store.clone(), slack_effects(&slack.uri())));
    let b = Arc::new(consumer(store, slack_effects(&slack.uri())));
    let body = reply("both@fx.example");
    let (ra, rb) = tokio::join!(
        a.handle_batch(batch(vec![record("a-1", &body)])),
        b.handle_batch(batch(vec![record("b-1", &body)]))
    );
    assert!(failures(&ra).is_empty() && failures(&rb).is_empty());
    assert_eq!(requests(&slack).await.len(), 1, "one alert for one event");
    http::verify(&slack).await;
}

#[tokio::test]
async fn sns_alerts_carry_a_readable_message() {
    let cfg = local_sdk_config(&moto().endpoint()).await;
    let sns = aws_sdk_sns::Client::new(&cfg);
    let topic = sns
        .create_topic()
        .name(unique("alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (sqs, capture, arn) = capture_queue().await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap();
    let c = consumer(
        fresh_store().await,
        Effects {
            notifiers: vec![Box::new(SnsNotifier {
                client: sns,
                topic_arn: topic,
            })],
            alerts: AlertRules::default(),
            ..Effects::default()
        },
    );
    let body = reply("sns@fx.example");
    for _ in 0..2 {
        assert!(failures(&c.handle_batch(batch(vec![record("s-1", &body)])).await).is_empty());
    }
    let got = drain_capture(&sqs, &capture).await;
    assert_eq!(got.len(), 1);
    let text = got[0]["Message"].as_str().unwrap();
    assert!(
        text.starts_with("Reply from Pat Lee <sns@fx.example>"),
        "{text}"
    );
    assert!(text.contains("Campaign: Spring (#9)"));
    assert_eq!(got[0]["Subject"], "Reply from Pat Lee <sns@fx.example>");
}

/// A SmartLead stand-in, and the consumer on a new table with list
/// hygiene in `mode` against it.
async fn hygiene(mode: HygieneMode) -> (wiremock::MockServer, common::TestConsumer) {
    let api = http::server().await;
    let url = api.uri();
    let effects = Effects {
        notifiers: vec![Box::new(smartlead::adapters::http::hygiene::Hygiene {
            api: smartlead::adapters::http::smartlead::Api::new(
                &format!("{url}/api/v1"),
                "test-key",
            ),
            mode,
            soft_bounces: false,
        })],
        ..Effects::default()
    };
    (api, consumer(fresh_store().await, effects))
}

#[tokio::test]
async fn list_hygiene_unsubscribes_a_bounced_lead_once_within_the_rate_limit() {
    let (api, c) = hygiene(HygieneMode::Unsubscribe).await;
    http::once(&api, 429, Some(1)).await;
    let bounce = json!({"event_type": "EMAIL_BOUNCE", "to_email": "gone@fx.example", "lead_id": 4711,
                        "campaign_id": 3, "stats_id": "st-1", "event_timestamp": "2025-02-02T02:02:02Z"});
    for id in ["h-1", "h-1", "h-2"] {
        assert!(failures(&c.handle_batch(batch(vec![record(id, &bounce)])).await).is_empty());
    }
    let calls = requests(&api).await;
    assert_eq!(calls.len(), 2, "one 429, then one call: {calls:?}");
    http::verify(&api).await; // the first got the 429
    assert_eq!(calls[1].method.as_str(), "POST");
    assert_eq!(
        target(&calls[1]),
        "/api/v1/leads/4711/unsubscribe?api_key=test-key"
    );
    // Replies and opens are not hygiene's business.
    let before = requests(&api).await.len();
    assert!(failures(
        &c.handle_batch(batch(vec![record("h-3", &reply("x@fx.example"))]))
            .await
    )
    .is_empty());
    assert_eq!(requests(&api).await.len(), before);
}

#[tokio::test]
async fn list_hygiene_blocks_and_is_not_retried_when_refused() {
    let (api, c) = hygiene(HygieneMode::Block).await;
    let unsub = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "Stop@FX.example", "campaign_id": 3,
                       "event_timestamp": "2025-02-03T00:00:00Z"});
    assert!(failures(&c.handle_batch(batch(vec![record("b-1", &unsub)])).await).is_empty());
    let calls = requests(&api).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        target(&calls[0]),
        "/api/v1/leads/add-domain-block-list?api_key=test-key"
    );
    let body: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(body, json!({"domain_block_list": ["stop@fx.example"]}));

    // A refusal (4xx) is logged and counted, not retried forever.
    http::once(&api, 400, None).await;
    let other = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "no@fx.example", "campaign_id": 3,
                       "event_timestamp": "2025-02-03T00:00:00Z"});
    for _ in 0..2 {
        assert!(failures(&c.handle_batch(batch(vec![record("b-2", &other)])).await).is_empty());
    }
    assert_eq!(requests(&api).await.len(), 2);
    http::verify(&api).await;
    // A 5xx is retried with backoff inside the call.
    http::once(&api, 503, None).await;
    let third = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "later@fx.example", "campaign_id": 3,
                       "event_timestamp": "2025-02-03T00:00:00Z"});
    assert!(failures(&c.handle_batch(batch(vec![record("b-3", &third)])).await).is_empty());
    // Two calls more: the first answered 503 (one-off answers go first,
    // `verify` checks it was used once), then the same call answered 200.
    let calls = requests(&api).await;
    assert_eq!(calls.len(), 4);
    http::verify(&api).await;
    assert_eq!(
        (text(&calls[2]), target(&calls[2])),
        (text(&calls[3]), target(&calls[3]))
    );
}

#[tokio::test]
async fn unsubscribe_mode_finds_the_lead_by_address_and_never_blocks() {
    let (api, c) = hygiene(HygieneMode::Unsubscribe).await;
    // Every bounce and unsubscribe fixture comes without a lead id.
    let unsub = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "sam@fx.example", "campaign_id": 3,
                       "event_timestamp": "2025-02-04T00:00:00Z"});
    http::answer_next(&api, 2, r#"{"id": 4242, "email": "sam@fx.example"}"#).await;
    assert!(failures(&c.handle_batch(batch(vec![record("u-1", &unsub)])).await).is_empty());
    let calls = requests(&api).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].method.as_str(), "GET");
    assert_eq!(
        target(&calls[0]),
        "/api/v1/leads/?api_key=test-key&email=sam%40fx.example"
    );
    assert_eq!(
        (calls[1].method.as_str(), target(&calls[1]).as_str()),
        ("POST", "/api/v1/leads/4242/unsubscribe?api_key=test-key")
    );
    // Unknown to SmartLead (`{}`): a permanent failure, nothing blocked, not retried.
    http::verify(&api).await;
    http::answer_rest(&api, "{}").await;
    let other = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "ghost@fx.example", "campaign_id": 3,
                       "event_timestamp": "2025-02-04T00:00:00Z"});
    for _ in 0..2 {
        assert!(failures(&c.handle_batch(batch(vec![record("u-2", &other)])).await).is_empty());
    }
    assert_eq!(requests(&api).await.len(), 3);
    assert!(requests(&api)
        .await
        .iter()
        .all(|r| !target(r).contains("block")));

    // A soft bounce (4.x.x) is left alone unless configured.
    let soft = json!({"event_type": "EMAIL_BOUNCE", "to_email": "full@fx.example", "lead_id": 5,
                      "campaign_id": 3, "stats_id": "st-soft",
                      "bounce_message": {"text": "452 4.2.2 Mailbox full"}});
    assert!(failures(&c.handle_batch(batch(vec![record("s-1", &soft)])).await).is_empty());
    assert_eq!(requests(&api).await.len(), 3, "a soft bounce makes no call");
}

/// An EventBridge stand-in that refuses a whole PutEvents request as
/// invalid when any of its entries holds `"bad"` (as AWS refuses a request
/// for one entry's malformed detail), and publishes the others.
async fn eventbridge_refusing_bad_entries() -> wiremock::MockServer {
    use wiremock::{Mock, Request, ResponseTemplate};
    let s = wiremock::MockServer::start().await;
    let answer = |r: &Request| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let entries = body["Entries"].as_array().cloned().unwrap_or_default();
        if entries
            .iter()
            .any(|e| e["Detail"].as_str().unwrap_or("").contains("bad"))
        {
            return ResponseTemplate::new(400).set_body_raw(
                r#"{"__type":"ValidationException","message":"Detail is malformed."}"#,
                "application/x-amz-json-1.1",
            );
        }
        let ids: Vec<Value> = (0..entries.len())
            .map(|i| json!({"EventId": format!("e{i}")}))
            .collect();
        ResponseTemplate::new(200).set_body_raw(
            json!({"FailedEntryCount": 0, "Entries": ids}).to_string(),
            "application/x-amz-json-1.1",
        )
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(answer)
        .mount(&s)
        .await;
    s
}

/// PutEvents refuses a whole request when one entry is invalid
/// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
/// "Errors"): the refused entry is recorded for good and its chunk-mates
/// are published, not sent back to the queue with it.
#[tokio::test]
async fn one_refused_bus_entry_does_not_hold_its_chunk_mates() {
    let s = eventbridge_refusing_bad_entries().await;
    let cfg = local_sdk_config(&s.uri()).await;
    let publisher = EventBridgePublisher {
        client: aws_sdk_eventbridge::Client::new(&cfg),
        bus: "bus".into(),
    };
    let event = |d: &str| BusEvent {
        detail_type: "EMAIL_OPEN".into(),
        detail: json!({"d": d}).to_string(),
        time: None,
    };
    let results = publisher
        .publish(&[event("a"), event("bad"), event("c")])
        .await;
    let shape: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(()) => "published",
            Err(EffectError::Permanent(_)) => "refused",
            Err(EffectError::Transient(_)) => "retry",
        })
        .collect();
    assert_eq!(shape, ["published", "refused", "published"]);
    // Every entry refused alone too: the request is at fault (a deploy's
    // bus name, say), not an entry: all wait for the fix.
    let results = publisher.publish(&[event("bad-1"), event("bad-2")]).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(EffectError::Transient(_)))),
        "{results:?}"
    );
}

/// A reply wave reaches Slack as digests: one message carries up to ten
/// alerts, so Slack's one message a second per webhook
/// (https://api.slack.com/docs/rate-limits) drains ten alerts a second.
#[tokio::test]
async fn a_wave_of_replies_goes_to_slack_as_digests_of_ten() {
    let slack = http::server().await;
    let c = consumer(fresh_store().await, slack_effects(&slack.uri()));
    let replies: Vec<Value> = (0..12)
        .map(|i| reply(&format!("wave{i}@fx.example")))
        .collect();
    let records: Vec<SqsMessage> = replies
        .iter()
        .enumerate()
        .map(|(i, r)| record(&format!("w-{i}"), r))
        .collect();
    let r = c.handle_batch(batch(records[..10].to_vec())).await;
    assert!(failures(&r).is_empty());
    let r = c.handle_batch(batch(records[10..].to_vec())).await;
    assert!(failures(&r).is_empty());
    let calls = requests(&slack).await;
    assert!(
        calls.len() < replies.len(),
        "{} calls for 12 alerts",
        calls.len()
    );
    for (i, body) in replies.iter().enumerate() {
        let lead = format!("wave{i}@fx.example");
        let n = calls.iter().filter(|c| text(c).contains(&lead)).count();
        assert_eq!(n, 1, "{lead} alerted {n} times");
        let marker = common::marker(&c.store, &body.to_string()).await;
        assert_eq!(marker["fx_slack"], "done", "{lead}");
    }
    let blocks = |c: &wiremock::Request| {
        serde_json::from_slice::<Value>(&c.body).unwrap()["blocks"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert!(
        calls.iter().all(|c| blocks(c) <= 50),
        "Slack takes 50 blocks a message"
    );
}
