//! End to end: HTTP front -> ingest bootstrap (RIE) -> moto SQS -> poller
//! -> consumer bootstrap (RIE) -> DynamoDB Local. Each test starts its own
//! stack on free ports ([`spawn_stack`]).

use serde_json::{json, Value};
use std::collections::HashMap;
use test_support::payloads;
use xtask::pipeline;
use xtask::pipeline::{
    depth, poll_effects, poll_once, Options, Pool, Ports, Stack, ALERT_TAP, BUS_TAP, TOKEN,
};

/// A stack on free ports with its HTTP front served, and a consumer pool
/// for [`poll_once`].
async fn spawn_stack(options: Options) -> (Stack, Pool) {
    let ports = Ports::free(options.ingest_instances);
    let stack = Stack::start(&pipeline::workspace_root(), &ports, &options)
        .await
        .expect("stack starts");
    stack.serve_front().await.expect("front");
    let consumer = Pool::new(vec![stack.consumer_url()]);
    (stack, consumer)
}

/// Polls until both queues (webhooks, then the effects they queued) are
/// empty and nothing is in flight.
async fn drain(stack: &Stack, consumer: &Pool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let p = poll_once(stack, consumer, 10, 0).await.expect("poll");
        let e = poll_effects(stack, consumer, 10, 0)
            .await
            .expect("poll effects");
        let (waiting, inflight) = depth(&stack.sqs, &stack.queue_url).await.expect("depth");
        let effects = depth(&stack.sqs, &stack.effects_queue_url)
            .await
            .expect("depth");
        let empty = |(w, i): &(String, String)| w == "0" && i == "0";
        let received = p.received + e.received;
        if received == 0 && empty(&(waiting, inflight)) && empty(&effects) {
            return;
        }
        if received == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    panic!("queue never drained");
}

async fn post(http: &reqwest::Client, url: &str, body: &str) -> u16 {
    http.post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

fn open(email: &str, second: u32) -> String {
    json!({"event_type": "EMAIL_OPEN", "to_email": email, "campaign_id": 77,
           "time_opened": format!("2025-03-01T10:00:{second:02}Z")})
    .to_string()
}

async fn opens(stack: &Stack, email: &str) -> Value {
    let items = stack
        .store()
        .partition(&format!("LEAD#{email}"))
        .await
        .expect("read state");
    items
        .iter()
        .map(smartlead::adapters::aws::dynamodb::item_to_json)
        .find(|v| v["sk"] == "CAMPAIGN#77")
        .map(|v| v["opens"].clone())
        .unwrap_or(Value::Null)
}

/// A stack for fault tests: failed records come back after 1 s.
async fn fault_stack(persist: bool) -> (Stack, String, Pool) {
    let dir = std::env::temp_dir().join(format!(
        "smartlead-ddb-{}",
        test_support::store::unique("e2e")
    ));
    let options = Options {
        visibility_secs: 1,
        ingest_instances: 1,
        dynamodb_dir: persist.then_some(dir),
        ..Options::debug()
    };
    let (stack, consumer) = spawn_stack(options).await;
    let url = format!(
        "http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
        stack.ports.http
    );
    (stack, url, consumer)
}

#[tokio::test]
async fn sqs_outage_answers_503_and_the_retry_is_processed_once() {
    let (mut stack, url, consumer) = fault_stack(false).await;
    let http = smartlead::adapters::http::client();
    assert_eq!(
        post(&http, &url, &open("before@fault.example", 1)).await,
        200
    );
    drain(&stack, &consumer).await;

    stack.stop_moto();
    let during = open("during@fault.example", 2);
    assert_eq!(
        post(&http, &url, &during).await,
        503,
        "no queue, no 200: SmartLead must retry"
    );
    stack.restart_moto().await.expect("moto back");
    // SmartLead retries the refused webhook, and once more for luck.
    assert_eq!(post(&http, &url, &during).await, 200);
    assert_eq!(post(&http, &url, &during).await, 200);
    drain(&stack, &consumer).await;
    assert_eq!(opens(&stack, "during@fault.example").await, 1);
    assert_eq!(opens(&stack, "before@fault.example").await, 1);
}

#[tokio::test]
async fn dynamodb_outage_mid_run_is_retried_and_applied_once() {
    let (mut stack, url, consumer) = fault_stack(true).await;
    let http = smartlead::adapters::http::client();
    for i in 0..20 {
        let email = format!("lead{}@ddb-fault.example", i % 10);
        assert_eq!(post(&http, &url, &open(&email, i)).await, 200);
    }
    // One batch goes through, then DynamoDB goes away mid-run.
    let first = poll_once(&stack, &consumer, 10, 0).await.unwrap();
    assert!(!first.done.is_empty());
    stack.stop_dynamodb();
    let failed = poll_once(&stack, &consumer, 10, 1).await.unwrap();
    assert!(failed.received > 0, "records were waiting");
    assert!(
        failed.done.is_empty(),
        "nothing may be acknowledged while DynamoDB is down"
    );
    stack.restart_dynamodb().expect("DynamoDB back");
    // Redeliveries and duplicates of already stored events, after the outage.
    for i in 0..5 {
        let email = format!("lead{i}@ddb-fault.example");
        assert_eq!(post(&http, &url, &open(&email, i)).await, 200);
    }
    drain(&stack, &consumer).await;
    for i in 0..10 {
        let email = format!("lead{i}@ddb-fault.example");
        assert_eq!(
            opens(&stack, &email).await,
            2,
            "{email}: two distinct opens"
        );
    }
}

#[tokio::test]
async fn a_record_that_keeps_failing_reaches_the_dlq_and_can_be_redriven() {
    use smartlead::aws_sdk_sqs::types::MessageAttributeValue;
    let (stack, _url, consumer) = fault_stack(false).await;
    // A claim-checked webhook whose bucket is not there yet: S3 fails on
    // every delivery (transient: the object may come back).
    let body = open("dlq@fault.example", 5);
    let cc = smartlead::domain::message::ClaimCheckMessage {
        claim_check: smartlead::domain::message::ClaimCheck {
            bucket: "smartlead-claims-restored".into(),
            key: "claims/dlq-test".into(),
            size: body.len() as u64,
            sha256: smartlead::domain::message::sha256_hex(body.as_bytes()),
        },
    };
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    stack
        .sqs
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body(serde_json::to_string(&cc).unwrap())
        .message_attributes(smartlead::domain::message::attr::BODY_LOCATION, attr("s3"))
        .message_attributes(
            smartlead::domain::message::attr::EVENT_TYPE,
            attr("EMAIL_OPEN"),
        )
        .send()
        .await
        .unwrap();
    let max: usize = stack.max_receive.parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut receives = 0;
    while depth(&stack.sqs, &stack.dlq_url).await.unwrap().0 != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the DLQ"
        );
        let p = poll_once(&stack, &consumer, 10, 1).await.unwrap();
        assert!(p.done.is_empty(), "a failing record is never acknowledged");
        receives += p.received;
        if p.received == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        receives, max,
        "delivered maxReceiveCount times, then the DLQ"
    );
    assert_eq!(opens(&stack, "dlq@fault.example").await, Value::Null);

    // The operator restores the object and redrives the DLQ.
    stack
        .s3
        .create_bucket()
        .bucket("smartlead-claims-restored")
        .send()
        .await
        .unwrap();
    stack
        .s3
        .put_object()
        .bucket("smartlead-claims-restored")
        .key("claims/dlq-test")
        .body(body.into_bytes().into())
        .send()
        .await
        .unwrap();
    let redrive = smartlead::adapters::aws::redrive::Options {
        limit: None,
        max_age: Some(smartlead::adapters::aws::redrive::max_age(
            smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
        )),
    };
    let moved = smartlead::adapters::aws::redrive::redrive(
        &stack.sqs,
        &stack.dlq_url,
        &stack.queue_url,
        &redrive,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(moved.moved, 1);
    assert_eq!(depth(&stack.sqs, &stack.dlq_url).await.unwrap().0, "0");
    drain(&stack, &consumer).await;
    assert_eq!(opens(&stack, "dlq@fault.example").await, 1);
}

#[tokio::test]
async fn webhooks_over_http_end_as_state_exactly_once() {
    let root = pipeline::workspace_root();
    // Mid-rotation: a second, base64 secret (`+`, `/`, `=`) is live too.
    let next = "q9+Zx/Lm0w==";
    let options = Options {
        webhook_secret: format!("{TOKEN},{next}"),
        ..Options::debug()
    };
    let (stack, consumer) = spawn_stack(options).await;
    let base = format!("http://127.0.0.1:{}/webhooks/smartlead", stack.ports.http);
    let http = smartlead::adapters::http::client();
    let post = |url: String, body: String| {
        let http = http.clone();
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };

    // Every payload, the reply five times over, and 50 concurrent posts with duplicates.
    let all = payloads(&root).unwrap();
    for (name, body) in &all {
        assert_eq!(
            post(format!("{base}?token={TOKEN}"), body.clone()).await,
            200,
            "{name}"
        );
    }
    for _ in 0..5 {
        assert_eq!(
            post(format!("{base}/{TOKEN}"), all["email_reply"].clone()).await,
            200
        );
    }
    // The URL `smartlead register` builds for the next secret (path,
    // then the same token as `?token=`), through the front as API Gateway.
    let url =
        smartlead::app::ingest::webhook_url(&format!("{base}/<secret>"), &format!("{next}\n"));
    assert!(url.ends_with("/q9%2BZx%2FLm0w%3D%3D"), "{url}");
    assert_eq!(
        post(url.clone(), all["email_reply"].clone()).await,
        200,
        "{url}"
    );
    let token = url.rsplit('/').next().unwrap_or_default();
    assert_eq!(
        post(format!("{base}?token={token}"), all["email_reply"].clone()).await,
        200
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let body = serde_json::json!({"event_type": "EMAIL_OPEN", "to_email": format!("burst{}@e2e.example", i % 10), "campaign_id": 9, "time_opened": format!("2025-02-01T10:00:{:02}Z", i % 25)}).to_string();
        tasks.push(tokio::spawn(post(format!("{base}?token={TOKEN}"), body)));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // Bad requests: documented statuses, nothing queued.
    let (before, _) = depth(&stack.sqs, &stack.queue_url).await.unwrap();
    assert_eq!(
        post(format!("{base}?token=wrong"), all["email_open"].clone()).await,
        401
    );
    assert_eq!(
        post(format!("{base}?token={TOKEN}"), "not json".into()).await,
        400
    );
    assert_eq!(
        post(format!("{base}?token={TOKEN}"), "{}".into()).await,
        400
    );
    assert_eq!(
        post(
            format!("http://127.0.0.1:{}/elsewhere", stack.ports.http),
            "{}".into()
        )
        .await,
        404
    );
    let get = http
        .get(format!("{base}?token={TOKEN}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(get, 405);
    assert_eq!(
        depth(&stack.sqs, &stack.queue_url).await.unwrap().0,
        before,
        "rejected requests left no trace"
    );

    drain(&stack, &consumer).await;
    let store = stack.store();
    let jane = store
        .partition("LEAD#jane.doe@acme-corp.com")
        .await
        .unwrap();
    let campaign = jane
        .iter()
        .map(smartlead::adapters::aws::dynamodb::item_to_json)
        .find(|v| v["sk"] == "CAMPAIGN#123")
        .expect("campaign item");
    assert_eq!(
        campaign["replies"], 1,
        "six deliveries of one reply, one effect"
    );
    assert_eq!(campaign["opens"], 1);
    for i in 0..10 {
        let items = store
            .partition(&format!("LEAD#burst{i}@e2e.example"))
            .await
            .unwrap();
        let v = smartlead::adapters::aws::dynamodb::item_to_json(&items[0]);
        // Lead i got posts i, i+10, ..., i+40: times i%25 differ except where they collide.
        let distinct: std::collections::BTreeSet<usize> =
            (0..5).map(|k| (i + 10 * k) % 25).collect();
        assert_eq!(v["opens"], distinct.len(), "burst{i}");
    }

    // The fan-out published each event once; the reply alerted once.
    let published = drain_tap(&stack, BUS_TAP).await;
    let keys: std::collections::BTreeSet<&str> = published
        .iter()
        .filter_map(|e| e["detail"]["dedup_key"].as_str())
        .collect();
    assert_eq!(keys.len(), published.len(), "nothing published twice");
    let replies = published
        .iter()
        .filter(|e| {
            e["detail-type"] == "EMAIL_REPLY"
                && e["detail"]["normalized"]["lead_email"] == "jane.doe@acme-corp.com"
        })
        .count();
    assert_eq!(replies, 1);
    assert!(published.len() >= 30, "{} published", published.len());
    let alerts = drain_tap(&stack, ALERT_TAP).await;
    let jane_reply = alerts
        .iter()
        .filter(|a| {
            a["Message"].as_str().is_some_and(|m| {
                m.starts_with("Reply from") && m.contains("jane.doe@acme-corp.com")
            })
        })
        .count();
    assert_eq!(jane_reply, 1, "{alerts:?}");
}

/// Every item of the table, keyed `pk|sk`, with what differs between two
/// spellings of one event left out: dedup markers, `*_order` registers
/// (they end in the key's hash), bookkeeping, and the sort keys and
/// bodies of raw records. With `clear`, the items are deleted too.
async fn table_state(stack: &Stack, clear: bool) -> std::collections::BTreeMap<String, Value> {
    let store = stack.store();
    let mut out = std::collections::BTreeMap::new();
    for item in store.scan_all().await.expect("scan") {
        if clear {
            let key: HashMap<_, _> = item
                .iter()
                .filter(|(k, _)| *k == "pk" || *k == "sk")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            store
                .client
                .delete_item()
                .table_name(&store.table)
                .set_key(Some(key))
                .send()
                .await
                .expect("delete");
        }
        let mut v = smartlead::adapters::aws::dynamodb::item_to_json(&item);
        let pk = v["pk"].as_str().unwrap_or_default().to_owned();
        let sk = v["sk"].as_str().unwrap_or_default().to_owned();
        // Effect records, archived key generations, first-seen times:
        // bookkeeping.
        if pk.starts_with("EVENT#") || pk.starts_with("SEEN#") || pk.starts_with("FIRST#") {
            continue;
        }
        if pk.starts_with("UNKNOWN#") || pk.starts_with("UNATTRIBUTED#") {
            // Their day and shard follow the sort key: kept by kind and type.
            let kind = pk.split('#').next().unwrap_or_default();
            let key = format!("{kind}#{}", v["event_type"].as_str().unwrap_or_default());
            out.insert(key.clone(), json!({ "pk": key }));
            continue;
        }
        let o = v.as_object_mut().expect("item");
        o.retain(|a, _| {
            !a.ends_with("_order")
                && !matches!(
                    a.as_str(),
                    "processed_at"
                        | "message_id"
                        | "expires_at"
                        | "ek"
                        | "ek_old"
                        | "ek_gen"
                        | "fo"
                )
        });
        out.insert(format!("{pk}|{sk}"), v);
    }
    out
}

#[tokio::test]
async fn every_shape_over_http_ends_as_the_state_of_its_flat_twin() {
    let root = pipeline::workspace_root();
    let options = Options::debug();
    let (stack, consumer) = spawn_stack(options).await;
    let url = format!(
        "http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
        stack.ports.http
    );
    let http = smartlead::adapters::http::client();
    // As SmartLead posts: the envelope with its X-Request-Id and X-Webhook-Level.
    let send = |body: String, headers: Vec<(&'static str, String)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.send().await.expect("post").status().as_u16()
        }
    };
    let headers = |body: &str| {
        test_support::delivery_headers(body)
            .into_iter()
            .map(|(h, _, v)| (h, v))
            .collect::<Vec<_>>()
    };
    let all = payloads(&root).unwrap();
    let twins = test_support::twins(&root).unwrap();
    assert!(twins.len() >= 15, "{} twins", twins.len());
    for (name, twin) in &twins {
        let body = &all[name];
        assert_eq!(send(body.clone(), headers(body)).await, 200, "{name}");
        drain(&stack, &consumer).await;
        let shaped = table_state(&stack, true).await;
        assert_eq!(send(twin.clone(), Vec::new()).await, 200, "{name} twin");
        drain(&stack, &consumer).await;
        let flat = table_state(&stack, true).await;
        assert!(!shaped.is_empty(), "{name}: no state");
        assert_eq!(shaped, flat, "{name}: the shape ends as its flat twin");
    }

    // SmartLead's retry of an envelope (attempt 2, same X-Request-Id), a
    // redelivery with the same X-Request-Id but other bytes, and a re-send
    // of the same open without the header are duplicates.
    let envelope = &all["envelope_email_account_disconnected"];
    assert_eq!(send(envelope.clone(), headers(envelope)).await, 200);
    let mut retry: Value = serde_json::from_str(envelope).unwrap();
    retry["meta"]["attempt"] = json!(2);
    assert_eq!(send(retry.to_string(), headers(envelope)).await, 200);
    let open = json!({"event_type": "EMAIL_OPEN", "to_email": "rid@e2e.example", "campaign_id": 78, "time_opened": "2025-03-01T10:00:00Z"});
    let mut other = open.clone();
    other["campaign_name"] = json!("renamed");
    let id = vec![("x-request-id", "req-e2e-0001".to_owned())];
    assert_eq!(send(open.to_string(), id.clone()).await, 200);
    assert_eq!(send(other.to_string(), id).await, 200);
    assert_eq!(send(open.to_string(), Vec::new()).await, 200);
    // An unknown dotted type is accepted and kept.
    let unknown = &all["envelope_unknown_type"];
    assert_eq!(send(unknown.clone(), headers(unknown)).await, 200);
    drain(&stack, &consumer).await;
    let state = table_state(&stack, false).await;
    assert_eq!(
        state["ACCOUNT#31338|HEALTH#EMAIL"]["disconnects"], 1,
        "{state:#?}"
    );
    assert_eq!(state["LEAD#rid@e2e.example|CAMPAIGN#78"]["opens"], 1);
    assert!(state.contains_key("UNKNOWN#email.account.warmup_paused"));
}

/// Attributes that hold the receive time: CAMPAIGN_STATUS_CHANGED and
/// MANUAL_STEP_REACHED bodies carry no time of their own in either
/// generation, and two posts are received at two times.
const RECEIVE_TIME: &[&str] = &["status_at", "reached_at"];

#[tokio::test]
async fn every_current_body_over_http_ends_as_its_deprecated_twin() {
    let root = pipeline::workspace_root();
    let (stack, consumer) = spawn_stack(Options::debug()).await;
    let url = format!(
        "http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
        stack.ports.http
    );
    let http = smartlead::adapters::http::client();
    let comparable = |mut state: std::collections::BTreeMap<String, Value>| {
        for v in state.values_mut() {
            v.as_object_mut().expect("item").retain(|a, _| {
                !test_support::CURRENT_ONLY_ATTRIBUTES.contains(&a.as_str())
                    && !RECEIVE_TIME.contains(&a.as_str())
            });
        }
        state
    };
    let pairs = test_support::generations(&root).unwrap();
    assert!(pairs.len() >= 11, "{} pairs", pairs.len());
    for (name, (old, new)) in &pairs {
        assert_eq!(post(&http, &url, old).await, 200, "{name} deprecated");
        drain(&stack, &consumer).await;
        let was = table_state(&stack, true).await;
        assert_eq!(post(&http, &url, new).await, 200, "{name} current");
        drain(&stack, &consumer).await;
        let now = table_state(&stack, true).await;
        assert!(!was.is_empty(), "{name}: no state");
        assert!(
            was.keys().all(|k| !k.starts_with("UNATTRIBUTED#")),
            "{name}: {was:#?}"
        );
        assert_eq!(comparable(now), comparable(was), "{name}");
    }
}

async fn drain_tap(stack: &Stack, queue: &str) -> Vec<Value> {
    let url = stack
        .sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    test_support::take_all(&stack.sqs, &url).await
}

/// An agency end to end: HTTP front, ingest, SQS, consumer, DynamoDB, a
/// Slack stand-in. Acme (11) has its own secret and Slack channel, Globex
/// (12) neither, Initech (13) is in the registry only. One client's secret
/// is refused at another's URL; each reply alerts its client's channel;
/// an unsubscribe for Acme leaves the lead sendable for Globex.
#[tokio::test]
async fn an_agency_s_clients_are_kept_apart_end_to_end() {
    let slack = test_support::standins::StandIn::start().await;
    let options = Options {
        ingest_instances: 1,
        clients: true,
        slack_url: Some(format!("{}/services/shared", slack.url)),
        ..Options::debug()
    };
    let (stack, consumer) = spawn_stack(options).await;
    // Set before the first webhook: the functions start on their first call.
    let cfg = smartlead::adapters::aws::local_sdk_config(&stack.moto.endpoint()).await;
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    let path = smartlead::local_stack::CLIENT_PARAMETER_PATH;
    for (name, value) in [
        (format!("{path}/secrets/11"), "acme-secret".to_owned()),
        (
            format!("{path}/slack/11"),
            format!("{}/services/acme", slack.url),
        ),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("parameter");
    }
    let registry: smartlead::domain::client::Registry = serde_json::from_value(json!({
        "clients": {"11": {"name": "Acme", "slack_param": format!("{path}/slack/11")},
                    "12": {"name": "Globex"}, "13": {"name": "Initech"}},
        "campaigns": {"101": "11", "102": "12", "103": "13"}
    }))
    .unwrap();
    smartlead::adapters::aws::dynamodb::clients::write_registry(
        &stack.ddb,
        &stack.table,
        &registry,
        0,
    )
    .await
    .expect("registry");

    let http = reqwest::Client::new();
    let at = |client: &str, secret: &str| {
        format!(
            "http://127.0.0.1:{}/webhooks/smartlead/client/{client}/{secret}",
            stack.ports.http
        )
    };
    let reply = |email: &str, campaign: u64| {
        json!({"event_type": "EMAIL_REPLY", "to_email": email, "campaign_id": campaign,
               "preview_text": "Sounds good", "time_replied": "2025-04-01T09:00:00Z",
               "message_id": format!("<{email}>")})
        .to_string()
    };
    // Each client's URL takes its own secret (Globex: the shared one) and
    // no other client's.
    assert_eq!(
        post(
            &http,
            &at("12", "acme-secret"),
            &reply("x@globex.example", 102)
        )
        .await,
        401
    );
    assert_eq!(
        post(&http, &at("11", TOKEN), &reply("x@acme.example", 101)).await,
        401
    );
    let shared_url = format!(
        "http://127.0.0.1:{}/webhooks/smartlead/acme-secret",
        stack.ports.http
    );
    assert_eq!(
        post(&http, &shared_url, &reply("x@acme.example", 101)).await,
        401
    );
    assert_eq!(
        post(
            &http,
            &at("11", "acme-secret"),
            &reply("ann@acme.example", 101)
        )
        .await,
        200
    );
    assert_eq!(
        post(&http, &at("12", TOKEN), &reply("bob@globex.example", 102)).await,
        200
    );
    // A campaign the registry does not know: the URL names the client.
    assert_eq!(
        post(
            &http,
            &at("11", "acme-secret"),
            &reply("dee@acme.example", 999)
        )
        .await,
        200
    );
    let unsub = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "pat@lead.example",
        "campaign_id": 101, "unsubscribed_client_id_map": {"11": true},
        "event_timestamp": "2025-04-02T10:00:00Z"});
    assert_eq!(
        post(&http, &at("11", "acme-secret"), &unsub.to_string()).await,
        200
    );
    drain(&stack, &consumer).await;

    // Alerts: Acme's channel has Acme's replies, the shared one Globex's.
    let calls = slack.recorded();
    let to = |p: &str| -> String {
        calls
            .iter()
            .filter(|r| r.target.starts_with(p))
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (acme, shared) = (to("/services/acme"), to("/services/shared"));
    assert!(
        acme.contains("ann@acme.example") && acme.contains("dee@acme.example"),
        "{acme}"
    );
    assert!(!acme.contains("bob@"), "{acme}");
    assert!(
        shared.contains("bob@globex.example") && !shared.contains("ann@"),
        "{shared}"
    );

    // The state: each lead's client, and the unsubscribe's scope.
    let item = |email: &str, sk: &str| {
        let store = stack.store();
        let (email, sk) = (email.to_owned(), sk.to_owned());
        async move {
            store
                .partition(&format!("LEAD#{email}"))
                .await
                .expect("state")
                .iter()
                .map(smartlead::adapters::aws::dynamodb::item_to_json)
                .find(|v| v["sk"] == sk.as_str())
                .unwrap_or(Value::Null)
        }
    };
    assert_eq!(
        item("bob@globex.example", "CAMPAIGN#102").await["client_id"],
        "12"
    );
    assert_eq!(
        item("dee@acme.example", "CAMPAIGN#999").await["client_id"],
        "11"
    );
    let s = item("pat@lead.example", "SUPPRESSION").await;
    assert_eq!(s["clients"], json!(["11"]), "{s}");
    let scope = smartlead::domain::client::Scope::of(&[], &["11".to_owned()]);
    assert!(scope.applies_to(Some("11")) && !scope.applies_to(Some("12")));
    assert_eq!(s["flags"], json!(["client_unsubscribe"]), "{s}");
}
