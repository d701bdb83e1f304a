//! The stand-ins that enforce the real services' limits (`test_support::standins::limits`)
//! enforce them: Slack's one message a second per webhook URL, SmartLead's
//! per-key budget, DynamoDB's write units per partition key.

use serde_json::{json, Value};
use std::time::Duration;
use test_support::standins;
use test_support::standins::limits::{DynamoThrottle, SlackLimit, SmartleadLimit};

async fn post(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.post(url)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .expect("stand-in answers")
}

/// Slack: "1 per second" for posting messages, incoming webhooks included
/// (https://api.slack.com/docs/rate-limits); over it, 429 with Retry-After.
#[tokio::test]
async fn slack_takes_one_message_a_second_per_webhook_url() {
    let slack = SlackLimit::start().await.expect("start");
    let http = standins::limits::http_client();
    let (a, b) = (slack.webhook("A"), slack.webhook("B"));
    assert_eq!(post(&http, &a).await.status(), 200);
    let refused = post(&http, &a).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    // Another URL has a budget of its own.
    assert_eq!(post(&http, &b).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(post(&http, &a).await.status(), 200);
    assert_eq!(slack.calls().len(), 4);
    assert_eq!(slack.accepted().len(), 3);
}

async fn smartlead_get(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    http.get(format!("{base}/campaigns?api_key={key}"))
        .send()
        .await
        .expect("stand-in answers")
}

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

/// SmartLead, standard plan: 60 requests a minute per API key, bursts of 10
/// a second, x-ratelimit-* headers, 429 with Retry-After
/// (https://api.smartlead.ai/reference/rate-limits,
/// https://api.smartlead.ai/guides/rate-limits).
#[tokio::test]
async fn smartlead_keeps_sixty_a_minute_and_ten_a_second_per_api_key() {
    let api = SmartleadLimit::start().await.expect("start");
    let http = standins::limits::http_client();
    let mut accepted = 0;
    for round in 0..7 {
        let answers = futures_join(&http, &api.base, 12).await;
        let ok: Vec<&reqwest::Response> = answers.iter().filter(|r| r.status() == 200).collect();
        let refused: Vec<&reqwest::Response> =
            answers.iter().filter(|r| r.status() == 429).collect();
        assert_eq!(ok.len() + refused.len(), 12);
        accepted += ok.len();
        for r in &answers {
            assert_eq!(header(r, "x-ratelimit-limit"), 60);
            assert!(
                header(r, "x-ratelimit-reset") > 1_700_000_000,
                "Unix seconds"
            );
        }
        for r in &refused {
            assert!(header(r, "retry-after") >= 1);
        }
        if round < 6 {
            // The second's burst: 10 of 12.
            assert_eq!(ok.len(), 10, "round {round}");
        } else {
            // The minute is spent: everything waits for its oldest call.
            assert_eq!(ok.len(), 0);
            assert!(header(refused[0], "retry-after") > 40);
            assert_eq!(header(refused[0], "x-ratelimit-remaining"), 0);
        }
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    assert_eq!(accepted, 60);
    // Another key is another budget.
    assert_eq!(smartlead_get(&http, &api.base, "other").await.status(), 200);
    assert_eq!(api.accepted().len(), 61);
    assert!(api.calls().iter().all(|c| !c.query.contains("api_key")));
}

async fn futures_join(http: &reqwest::Client, base: &str, n: usize) -> Vec<reqwest::Response> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, base) = (http.clone(), base.to_owned());
            tokio::spawn(async move { smartlead_get(&http, &base, "k").await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// A DynamoDB JSON request (DynamoDB Local checks no signature, only that
/// there is one).
async fn ddb(http: &reqwest::Client, endpoint: &str, op: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .body(body.to_string())
        .send()
        .await
        .expect("answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn put(pk: &str, sk: usize, bytes: usize) -> Value {
    json!({"TableName": "limits", "Item": {"pk": {"S": pk}, "sk": {"S": sk.to_string()},
           "data": {"S": "x".repeat(bytes)}}})
}

/// One partition key takes 1,000 write units a second, a write costing one
/// unit per started KB of the item; past that, HTTP 400
/// ProvisionedThroughputExceededException
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html,
/// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html).
#[tokio::test]
async fn dynamodb_throttles_a_partition_key_past_a_thousand_write_units_a_second() {
    let local = standins::start_dynamodb_any().expect("DynamoDB Local");
    let http = standins::limits::http_client();
    let create = json!({"TableName": "limits", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}]});
    let (status, body) = ddb(&http, &local.endpoint(), "CreateTable", create).await;
    assert_eq!(status, 200, "{body}");
    let proxy = DynamoThrottle::start(&local.endpoint(), "pk", "sk", 1000.0)
        .await
        .expect("proxy");
    // 60 small items (1 unit each) on one key: within its second.
    for i in 0..60 {
        let (status, body) = ddb(&http, &proxy.endpoint, "PutItem", put("small", i, 100)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("ConsumedCapacity").is_none(), "not asked for");
    }
    // 60 items of 30 KB (30 units each) on one key, as fast as they go.
    let mut refused = None;
    for i in 0..60 {
        let (status, body) = ddb(&http, &proxy.endpoint, "PutItem", put("hot", i, 30_000)).await;
        if status == 400 {
            refused = Some(body);
            break;
        }
    }
    let refused = refused.expect("the hot key was throttled");
    assert_eq!(
        refused["__type"],
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    );
    // Another key is not.
    assert_eq!(
        ddb(&http, &proxy.endpoint, "PutItem", put("cold", 0, 30_000))
            .await
            .0,
        200
    );
    // A second later the hot key takes writes again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        ddb(&http, &proxy.endpoint, "PutItem", put("hot", 99, 30_000))
            .await
            .0,
        200
    );
    let writes = proxy.writes();
    let hot: f64 = writes
        .iter()
        .filter(|w| w.pk == "hot" && !w.throttled)
        .map(|w| w.units)
        .sum();
    assert!(hot >= 1000.0, "charged by item size: {hot}");
    assert!(writes
        .iter()
        .filter(|w| w.pk == "small")
        .all(|w| w.units == 1.0));
}
