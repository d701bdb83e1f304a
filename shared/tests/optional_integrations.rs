//! The consumer's optional integrations (Slack, list hygiene) whose secret
//! cannot be read at cold start: the consumer, wired as the function wires
//! it (`wire::consumer` from its environment), starts without them and
//! applies the state of every event; their effects wait (pending, the record
//! failed for SQS to redeliver) until a later read, with backoff, finds the
//! parameter. SSM is moto (a parameter not there) or a stand-in answering
//! `AccessDeniedException` / `ThrottlingException`; the state is in
//! DynamoDB Local.
//!
//! Why: GetParameter allows 40 requests a second per account and region by
//! default (https://docs.aws.amazon.com/general/latest/gr/ssm.html) and every
//! cold start reads the parameters, so a burst of cold starts is throttled;
//! a parameter may also be missing or its key policy deny the function
//! (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html).
//! Before, any of these failed the cold start and sent every event, state
//! included, to the DLQ.

mod common;

use common::http::{self, query_param, requests};
use common::sqs::batch;
use common::{dynamodb, fixtures, moto, sdk_with_endpoints, store_at, unique};
use serde_json::{json, Value};
use smartlead::adapters::aws::{local_sdk_config, ssm};
use smartlead::config::{ConsumerConfig, Env, FromEnv, SecretSource};
use smartlead_consumer::wire;
use std::time::Duration;
use test_support::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn record(id: &str, body: &Value) -> SqsMessage {
    let e: SqsEvent = serde_json::from_str(&fixtures("sqs")["email_open"]).expect("SQS fixture");
    let mut m = e.records.into_iter().next().expect("a record");
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_string());
    m
}

fn failures(r: &SqsBatchResponse) -> Vec<String> {
    let mut f: Vec<String> = r
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    f.sort();
    f
}

fn reply(email: &str) -> Value {
    json!({"event_type": "EMAIL_REPLY", "to_email": email, "campaign_id": 9,
           "preview_text": "Yes", "time_replied": "2025-04-01T09:00:00Z",
           "message_id": format!("<{email}>")})
}

fn unsubscribe(email: &str) -> Value {
    json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": email, "campaign_id": 3,
           "event_timestamp": "2025-02-03T00:00:00Z"})
}

/// A new state table in DynamoDB Local: its name.
async fn table() -> String {
    let table = unique("state");
    store_at(&dynamodb().endpoint(), &table).await;
    table
}

/// A new effects queue in moto: its client and URL.
async fn effects_queue() -> (smartlead::aws_sdk_sqs::Client, String) {
    let sqs = smartlead::aws_sdk_sqs::Client::new(&local_sdk_config(&moto().endpoint()).await);
    let url = test_support::store::new_queue(&sqs, "effects").await;
    (sqs, url)
}

/// The effects queued in `q`: `batches` batches of them through `c`; the
/// effect messages reported failed.
async fn run_effects(
    c: &smartlead::app::consumer::Consumer<
        smartlead::adapters::aws::dynamodb::DynamoStore,
        smartlead::aws_sdk_s3::Client,
    >,
    q: &(smartlead::aws_sdk_sqs::Client, String),
    batches: usize,
) -> usize {
    test_support::store::run_effects_of(c, &q.0, &q.1, batches)
        .await
        .iter()
        .map(|(_, a)| a.batch_item_failures.len())
        .sum()
}

/// The consumer's config as the template sets it (plus the local-only
/// SmartLead base and no metric lines), with `extra`; failed effects are
/// retried at once (`EFFECT_RETRY_SECONDS` 0).
fn config(table: &str, queue: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut pairs = vec![
        ("TABLE_NAME", table),
        ("EFFECTS_QUEUE_URL", queue),
        ("EFFECT_RETRY_SECONDS", "0"),
        // Backoff between reads of an unread parameter is at most this.
        ("SECRET_REFRESH_SECONDS", "2"),
        ("METRICS_DISABLED", "1"),
    ];
    pairs.extend_from_slice(extra);
    ConsumerConfig::from_env(Env::from_pairs(&pairs)).expect("config")
}

/// The effect `effect` of the event `body` as its effect record holds it.
async fn effect(
    store: &smartlead::adapters::aws::dynamodb::DynamoStore,
    body: &Value,
    effect: &str,
) -> Value {
    common::marker(store, &body.to_string()).await[format!("fx_{effect}")].clone()
}

/// Longer than the backoff's longest wait (`SECRET_REFRESH_SECONDS`).
async fn past_the_backoff() {
    tokio::time::sleep(Duration::from_millis(2200)).await;
}

#[tokio::test]
async fn parameters_missing_at_cold_start_hold_back_their_effects_not_the_state() {
    let (slack, api) = (http::server().await, http::server().await);
    let ssm_client = aws_sdk_ssm::Client::new(&local_sdk_config(&moto().endpoint()).await);
    let (slack_param, key_param) = (
        format!("/{}/slack", unique("t")),
        format!("/{}/key", unique("t")),
    );
    let api_base = format!("{}/api/v1", api.uri());
    let table = table().await;
    let q = effects_queue().await;
    let config = config(
        &table,
        &q.1,
        &[
            ("SLACK_WEBHOOK_PARAM", &slack_param),
            ("HYGIENE", "block"),
            ("SMARTLEAD_API_KEY_PARAM", &key_param),
            ("SMARTLEAD_API_BASE", &api_base),
        ],
    );
    let sdk = sdk_with_endpoints(
        &dynamodb().endpoint(),
        &[("SSM", moto().endpoint()), ("SQS", moto().endpoint())],
    )
    .await;
    let c = wire::consumer(&sdk, config)
        .await
        .expect("the consumer starts without its optional parameters");

    let (hot, gone) = (reply("pat@opt.example"), unsubscribe("gone@opt.example"));
    let both = || batch(vec![record("r-1", &hot), record("u-1", &gone)]);
    let r = smartlead_consumer::handle(&c, both(), None).await;
    assert!(failures(&r).is_empty(), "state applied, effects queued");
    assert_eq!(
        run_effects(&c, &q, 1).await,
        2,
        "their effects are not done"
    );
    // The state of both is applied; the effects wait, untried.
    let items = common::items(&c.store).await;
    for lead in ["LEAD#pat@opt.example", "LEAD#gone@opt.example"] {
        assert!(
            items.keys().any(|k| k.starts_with(lead)),
            "{lead} not stored: {:#?}",
            items.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(effect(&c.store, &hot, "slack").await, "pending");
    assert_eq!(effect(&c.store, &gone, "hygiene").await, "pending");
    assert!(requests(&slack).await.is_empty());
    assert!(requests(&api).await.is_empty());

    // The parameters appear: a later read finds them and the effects
    // queue's redelivery runs the effects (the state is not touched).
    for (name, value) in [
        (&slack_param, format!("{}/services/T0/B0/X", slack.uri())),
        (&key_param, "key-1".to_owned()),
    ] {
        ssm_client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put parameter");
    }
    past_the_backoff().await;
    assert_eq!(run_effects(&c, &q, 10).await, 0);
    assert_eq!(effect(&c.store, &hot, "slack").await, "done");
    assert_eq!(effect(&c.store, &gone, "hygiene").await, "done");
    assert_eq!(requests(&slack).await.len(), 1);
    let calls = requests(&api).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(query_param(&calls[0], "api_key").as_deref(), Some("key-1"));
    // The rate budgets the calls took their slots in (`BUDGET#`) aside.
    let state = |items: &std::collections::BTreeMap<String, serde_json::Value>| {
        items.keys().filter(|k| !k.starts_with("BUDGET#")).count()
    };
    let now = common::items(&c.store).await;
    assert_eq!(state(&now), state(&items), "state applied once");
}

/// An SSM stand-in answering every GetParameter with AWS's error `code`.
async fn ssm_refusing(code: &str) -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSSM.GetParameter"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            json!({"__type": code, "message": "refused by the stand-in"}).to_string(),
            "application/x-amz-json-1.1",
        ))
        .mount(&s)
        .await;
    s
}

/// From now on the stand-in answers GetParameter with `value`.
async fn ssm_answering(s: &MockServer, name: &str, value: &str) {
    s.reset().await;
    let parameter = json!({"Parameter": {"Name": name, "Type": "SecureString", "Value": value,
        "Version": 2, "DataType": "text",
        "ARN": format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")}});
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSSM.GetParameter"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(parameter.to_string(), "application/x-amz-json-1.1"),
        )
        .mount(s)
        .await;
}

#[tokio::test]
async fn a_denied_or_throttled_parameter_holds_back_its_effect_and_counts_a_metric() {
    for code in ["AccessDeniedException", "ThrottlingException"] {
        let ssm_stand_in = ssm_refusing(code).await;
        let slack = http::server().await;
        let param = format!("/{}/slack", unique("t"));
        let sdk = sdk_with_endpoints(
            &dynamodb().endpoint(),
            &[("SSM", ssm_stand_in.uri()), ("SQS", moto().endpoint())],
        )
        .await;
        let table = table().await;
        let q = effects_queue().await;
        let config = config(&table, &q.1, &[("SLACK_WEBHOOK_PARAM", &param)]);
        let c = wire::consumer(&sdk, config)
            .await
            .unwrap_or_else(|e| panic!("{code}: the consumer starts: {e}"));
        let hot = reply("sam@opt.example");
        let r = smartlead_consumer::handle(&c, batch(vec![record("r-1", &hot)]), None).await;
        assert!(
            failures(&r).is_empty(),
            "{code}: the state is not held back"
        );
        assert_eq!(run_effects(&c, &q, 1).await, 1, "{code}");
        assert_eq!(effect(&c.store, &hot, "slack").await, "pending", "{code}");
        assert!(requests(&slack).await.is_empty(), "{code}");

        // Every failed read is counted, by effect, for the alarm.
        let (metrics, lines) = smartlead::metrics::Metrics::capturing("consumer");
        let source = SecretSource::Ssm(param.clone());
        let url = ssm::optional(
            &sdk,
            &source,
            ("Slack URL", "slack"),
            Duration::from_secs(2),
            &metrics,
        )
        .await;
        assert_eq!(url.current(), None, "{code}");
        let text = String::from_utf8(lines.lock().expect("lines").clone()).expect("text");
        let doc: Value = serde_json::from_str(text.trim()).expect("one EMF line");
        assert_eq!(
            (doc["SecretReadFailures"].as_i64(), doc["Effect"].as_str()),
            (Some(1), Some("slack")),
            "{code}: {text}"
        );

        ssm_answering(
            &ssm_stand_in,
            &param,
            &format!("{}/services/T0/B0/X", slack.uri()),
        )
        .await;
        past_the_backoff().await;
        assert_eq!(run_effects(&c, &q, 10).await, 0, "{code}");
        assert_eq!(effect(&c.store, &hot, "slack").await, "done", "{code}");
        assert_eq!(requests(&slack).await.len(), 1, "{code}");
        assert_eq!(
            url.get().await.as_deref().map(String::as_str),
            Some(format!("{}/services/T0/B0/X", slack.uri()).as_str()),
            "{code}: the later read finds it"
        );
    }
}
