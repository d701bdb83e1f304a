use super::*;
use smartlead::aws_sdk_dynamodb::primitives::Blob;

/// `sam local invoke`'s stdout when the function wrote a line of its own first.
const INGEST_STDOUT: &str = "some log line\n\
    {\"statusCode\": 200, \"headers\": {\"content-type\": \"application/json\"}, \
    \"body\": \"{\\\"id\\\":\\\"18bcad82\\\",\\\"status\\\":\\\"received\\\"}\", \
    \"isBase64Encoded\": false}\n\n";

fn err(r: Result<()>) -> String {
    format!("{:#}", r.expect_err("a mismatch"))
}

#[test]
fn the_answer_is_the_last_non_blank_line_of_stdout() {
    let out = last_json_line(INGEST_STDOUT).unwrap();
    assert_eq!(out["statusCode"], 200);
    assert_eq!(
        format!("{:#}", last_json_line(" \n\n").unwrap_err()),
        "no answer"
    );
    let e = last_json_line("{\"a\": 1}\nEND RequestId: 42\n").unwrap_err();
    assert_eq!(format!("{e:#}"), "not JSON: END RequestId: 42");
}

#[test]
fn the_ingest_answers_200_received_with_an_id() {
    ingest_answer(&last_json_line(INGEST_STDOUT).unwrap()).unwrap();
    let refused = json!({"statusCode": 401, "body": "{\"error\":\"unauthorized\"}"});
    assert!(err(ingest_answer(&refused)).starts_with("status 401, want 200: "));
    for body in [
        "{\"status\":\"received\"}",
        "{\"status\":\"received\",\"id\":\"\"}",
        "",
    ] {
        let out = json!({"statusCode": 200, "body": body});
        assert!(
            err(ingest_answer(&out)).ends_with("want received with an id"),
            "{body}"
        );
    }
    let not_json = json!({"statusCode": 200, "body": "received"});
    assert_eq!(err(ingest_answer(&not_json)), "body is not JSON: received");
}

#[test]
fn the_consumer_answers_no_failures_and_nothing_else() {
    no_batch_failures(&json!({"batchItemFailures": []})).unwrap();
    let failed = json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]});
    assert!(err(no_batch_failures(&failed)).ends_with("want no batch item failures"));
    assert!(no_batch_failures(&json!({})).is_err());
}

#[test]
fn an_http_answer_is_its_code_with_the_documented_body() {
    let received = r#"{"id":"18bcad82","status":"received"}"#;
    let unauthorized = r#"{"error":"unauthorized"}"#;
    http_answer(200, "200", received).unwrap();
    http_answer(401, "401\n", unauthorized).unwrap();
    assert_eq!(
        err(http_answer(200, "401", unauthorized)),
        r#"HTTP 401, want 200: {"error":"unauthorized"}"#
    );
    assert!(err(http_answer(200, "200", r#"{"status":"received"}"#)).contains("with an id"));
    assert!(err(http_answer(401, "401", received)).contains("unauthorized"));
    assert!(err(http_answer(401, "401", "<html>")).starts_with("body is not JSON"));
}

#[test]
fn bodies_match_as_a_multiset() {
    let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    same_bodies(v(&["a", "b"]), v(&["b", "a"])).unwrap();
    assert_eq!(
        err(same_bodies(v(&["a", "b"]), v(&["a", "a", "c"]))),
        "queue holds 3 messages, want the 2 payloads byte for byte (missing 1, unexpected 1)"
    );
    assert!(same_bodies(v(&["a"]), v(&["a", "a"])).is_err());
}

#[test]
fn curl_sends_the_file_less_its_line_ends() {
    assert_eq!(curl_data("{\r\n  \"a\": 1\n}\n"), "{  \"a\": 1}");
}

#[test]
fn the_queue_is_reached_at_moto_not_through_the_docker_host() {
    let file = std::fs::read_to_string(crate::workspace_root().join("events/env/local.json"));
    let env: Value = serde_json::from_str(&file.unwrap()).unwrap();
    assert_eq!(
        queue_url(&env, "http://127.0.0.1:5123/").unwrap(),
        "http://127.0.0.1:5123/123456789012/smartlead-webhooks"
    );
    assert_eq!(
        format!("{:#}", queue_url(&json!({}), "x").unwrap_err()),
        "the env-vars file has no IngestFunction.QUEUE_URL"
    );
}

/// A message as moto's ReceiveMessage answers one the ingest sent.
fn received() -> Message {
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .string_value(v)
            .data_type("String")
            .build()
            .unwrap()
    };
    Message::builder()
        .message_id("bb1e5773")
        .receipt_handle("rh-1")
        .md5_of_body("8929a18e5582a6a966cd6bb051faedbc")
        .body("{\"a\": 1}\n")
        .attributes(MessageSystemAttributeName::SentTimestamp, "1796502667674")
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .message_attributes("event_type", attr("EMAIL_REPLY"))
        .message_attributes("body_location", attr("inline"))
        .build()
}

#[test]
fn saved_messages_become_the_sqs_event_lambda_gets() {
    let saved = serde_json::to_string(&[Saved::from(&received())]).unwrap();
    assert!(saved.contains(r#""MD5OfBody":"8929a18e5582a6a966cd6bb051faedbc""#));
    let saved: Vec<Saved> = serde_json::from_str(&saved).unwrap();
    let arn = "arn:aws:sqs:us-east-1:123456789012:smartlead-webhooks";
    let event = sqs_event(&saved, arn).unwrap();
    let r = &event["Records"][0];
    assert_eq!(r["messageId"], "bb1e5773");
    assert_eq!(r["receiptHandle"], "rh-1");
    assert_eq!(r["body"], "{\"a\": 1}\n");
    assert_eq!(r["md5OfBody"], "8929a18e5582a6a966cd6bb051faedbc");
    assert_eq!(r["eventSource"], "aws:sqs");
    assert_eq!(r["eventSourceARN"], arn);
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(
        r["attributes"],
        json!({"SentTimestamp": "1796502667674", "ApproximateReceiveCount": "1"})
    );
    assert_eq!(
        r["messageAttributes"]["event_type"],
        json!({"stringValue": "EMAIL_REPLY", "dataType": "String",
               "stringListValues": [], "binaryListValues": []})
    );
    // The fields of the committed SQS fixtures' records, no more, no fewer.
    let fixture: Value = serde_json::from_str(&test_support::fixture("sqs", "batch_all")).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(r), keys(&fixture["Records"][0]));
    assert_eq!(
        format!("{:#}", sqs_event(&[], arn).unwrap_err()),
        "no queued messages"
    );
}

#[test]
fn a_saved_message_lacking_a_field_is_refused() {
    let e = serde_json::from_str::<Vec<Saved>>(r#"[{"MessageId": "m", "Body": "{}"}]"#);
    assert!(e.unwrap_err().to_string().contains("missing field"));
}

fn item(pk: &str, sk: &str, more: &[(&str, AttributeValue)]) -> Item {
    let mut i: Item = [("pk", pk), ("sk", sk)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect();
    i.extend(more.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    i
}

fn keys(ks: &[&[u8]]) -> AttributeValue {
    AttributeValue::Bs(ks.iter().map(|k| Blob::new(*k)).collect())
}

#[test]
fn each_absorbed_event_key_counts_once_across_items_and_generations() {
    let items = [
        item(LEAD_PK, LEAD_SK, &[("ek", keys(&[b"k1", b"k2"]))]),
        item(
            "CAMPAIGN#123",
            "STATS",
            &[("ek", keys(&[b"k1"])), ("ek_old", keys(&[b"k3"]))],
        ),
        item("X", "Y", &[("ek", AttributeValue::S("not a set".into()))]),
    ];
    let mut got: Vec<&[u8]> = absorbed_keys(&items).into_iter().collect();
    got.sort();
    assert_eq!(got, [b"k1", b"k2", b"k3"]);
}

#[test]
fn the_reply_is_counted_on_the_lead() {
    let replies = |n: &str| {
        item(
            LEAD_PK,
            LEAD_SK,
            &[("replies", AttributeValue::N(n.into()))],
        )
    };
    reply_counted(&[replies("1")]).unwrap();
    assert!(err(reply_counted(&[replies("0")])).starts_with("no reply counted on"));
    assert!(err(reply_counted(&[replies("1.5")])).contains("not a whole number"));
    assert!(err(reply_counted(&[item(LEAD_PK, "OTHER", &[])])).ends_with("no such item"));
}
