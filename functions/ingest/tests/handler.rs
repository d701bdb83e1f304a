//! Ingest handler over every events/api fixture and every error path, with
//! an in-memory queue (unit level; tests/moto.rs uses the real SQS API).

mod common;

use async_trait::async_trait;
use common::*;
use lambda_http::Body;
use serde_json::{json, Value};
use smartlead::app::ingest::*;
use smartlead::domain::message::{attr, sha256_hex, ClaimCheckMessage, OutgoingMessage};
use smartlead::metrics::Metrics;
use std::sync::Mutex;

#[derive(Default)]
struct MemQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    fail: bool,
}

#[async_trait]
impl Queue for MemQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
        if self.fail {
            return Err(QueueError::Send("connection refused (injected)".into()));
        }
        let mut s = self.sent.lock().unwrap();
        s.push(msg);
        Ok(format!("msg-{}", s.len()))
    }
}

#[derive(Default)]
struct MemBlobs {
    put: Mutex<Vec<(String, Vec<u8>)>>,
    fail: bool,
}

#[async_trait]
impl BlobStore for MemBlobs {
    fn bucket(&self) -> &str {
        "claim-bucket"
    }
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), QueueError> {
        if self.fail {
            return Err(QueueError::Upload("timeout (injected)".into()));
        }
        self.put
            .lock()
            .unwrap()
            .push((key.to_owned(), body.to_vec()));
        Ok(())
    }
}

fn service(queue: MemQueue, blobs: Option<MemBlobs>) -> Ingest<MemQueue, MemBlobs> {
    Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new(TOKEN).unwrap(),
            clients: Default::default(),
            auth: AuthMethods::default(),
            max_body_bytes: 64 * 1024,
            max_inline_bytes: 8 * 1024,
        },
        queue,
        blobs,
        metrics: Metrics::disabled(),
    }
}

async fn call(
    svc: &Ingest<MemQueue, MemBlobs>,
    v: &Value,
) -> (u16, Value, lambda_http::http::HeaderMap) {
    let resp = smartlead_ingest::respond(svc, to_request(v)).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON answer"),
        other => panic!("unexpected body {other:?}"),
    };
    (status, body, headers)
}

fn sent(svc: &Ingest<MemQueue, MemBlobs>) -> Vec<OutgoingMessage> {
    svc.queue.sent.lock().unwrap().clone()
}

#[tokio::test]
async fn every_fixture_is_queued_byte_for_byte_with_attributes() {
    for (name, req) in api_fixtures() {
        let svc = service(MemQueue::default(), Some(MemBlobs::default()));
        let (status, body, _) = call(&svc, &req).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body, json!({"status": "received", "id": "msg-1"}), "{name}");
        let msgs = sent(&svc);
        assert_eq!(msgs.len(), 1, "{name}");
        let raw = body_of(&req);
        assert_eq!(
            msgs[0].body, raw,
            "{name}: the queued body is the request body, byte for byte"
        );
        let attrs: std::collections::HashMap<_, _> = msgs[0].attributes.iter().cloned().collect();
        assert_eq!(
            attrs[attr::EVENT_TYPE],
            req["headers"]["x-smartlead-event"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(attrs[attr::REQUEST_ID], format!("fixture-{name}"));
        assert_eq!(attrs[attr::SOURCE_IP], "203.0.113.10");
        assert_eq!(attrs[attr::BODY_SHA256], sha256_hex(raw.as_bytes()));
        assert_eq!(attrs[attr::BODY_LOCATION], "inline");
        assert!(attrs[attr::RECEIVED_AT].ends_with('Z'));
        // SmartLead's event id and webhook level pass through when sent.
        for (header, attribute) in [
            ("x-request-id", attr::SMARTLEAD_REQUEST_ID),
            ("x-webhook-level", attr::WEBHOOK_LEVEL),
        ] {
            assert_eq!(
                attrs.get(attribute).map(String::as_str),
                req["headers"][header].as_str(),
                "{name}: {header}"
            );
        }
    }
}

#[tokio::test]
async fn smartlead_request_id_and_webhook_level_become_attributes_when_usable() {
    let body = r#"{"id":"evt_1","type":"email.account.warmup_paused","data":{}}"#;
    for (id, level, want_id, want_level) in [
        (" evt_1 ", "User", Some("evt_1"), Some("user")),
        ("", "campaign", None, Some("campaign")),
        ("has space", "nobody", None, None),
    ] {
        let svc = service(MemQueue::default(), None);
        let mut r = api_fixture("email_open");
        set_body(&mut r, body);
        r["headers"]["x-request-id"] = json!(id);
        r["headers"]["x-webhook-level"] = json!(level);
        assert_eq!(
            call(&svc, &r).await.0,
            200,
            "an unknown dotted type is accepted"
        );
        let msg = &sent(&svc)[0];
        let attrs: std::collections::HashMap<_, _> = msg.attributes.iter().cloned().collect();
        assert_eq!(attrs[attr::EVENT_TYPE], "email.account.warmup_paused");
        assert_eq!(
            attrs.get(attr::SMARTLEAD_REQUEST_ID).map(String::as_str),
            want_id,
            "{id:?}"
        );
        assert_eq!(
            attrs.get(attr::WEBHOOK_LEVEL).map(String::as_str),
            want_level,
            "{level:?}"
        );
    }
}

#[tokio::test]
async fn routes_and_methods() {
    let svc = service(MemQueue::default(), None);
    let base = api_fixture("email_open");
    let mut r = base.clone();
    set_path(&mut r, "/other");
    assert_eq!(call(&svc, &r).await.0, 404);
    let mut r = base.clone();
    set_path(&mut r, "/webhooks/smartlead/a/b");
    assert_eq!(call(&svc, &r).await.0, 404);
    for m in ["GET", "PUT", "DELETE"] {
        let mut r = base.clone();
        set_method(&mut r, m);
        let (status, body, headers) = call(&svc, &r).await;
        assert_eq!(status, 405, "{m}");
        assert_eq!(body, json!({"error": "method not allowed"}));
        assert_eq!(headers["allow"], "POST");
    }
    // A trailing slash is the same route.
    let mut r = base.clone();
    set_path(&mut r, "/webhooks/smartlead/");
    assert_eq!(call(&svc, &r).await.0, 200);
    assert_eq!(sent(&svc).len(), 1, "only the routed POST was queued");
}

#[tokio::test]
async fn every_auth_method_and_every_wrong_secret() {
    let base = api_fixture("email_open");
    let secret = Secret::new(TOKEN).unwrap();

    // Path token.
    let svc = service(MemQueue::default(), None);
    let mut r = base.clone();
    without_token(&mut r);
    set_path(&mut r, &format!("/webhooks/smartlead/{TOKEN}"));
    assert_eq!(call(&svc, &r).await.0, 200);
    set_path(&mut r, "/webhooks/smartlead/wrong");
    assert_eq!(
        call(&svc, &r).await,
        (
            401,
            json!({"error": "unauthorized"}),
            call(&svc, &r).await.2
        )
    );

    // Wrong and missing query token.
    let mut r = base.clone();
    set_token(&mut r, "local-dev-secreT");
    assert_eq!(call(&svc, &r).await.0, 401);
    without_token(&mut r);
    assert_eq!(call(&svc, &r).await.0, 401);

    // Signature header.
    let body = body_of(&base);
    r["headers"]["x-smartlead-signature"] = secret.sign(body.as_bytes()).into();
    assert_eq!(call(&svc, &r).await.0, 200);
    r["headers"]["x-smartlead-signature"] =
        Secret::new("other").unwrap().sign(body.as_bytes()).into();
    assert_eq!(call(&svc, &r).await.0, 401);
    r["headers"]["x-smartlead-signature"] = "sha256=zz".into();
    assert_eq!(call(&svc, &r).await.0, 401);

    // Body secret_key (email_reply carries one).
    let mut r = api_fixture("email_reply");
    without_token(&mut r);
    assert_eq!(call(&svc, &r).await.0, 200);
    let mut v: Value = serde_json::from_str(&body_of(&r)).unwrap();
    v["secret_key"] = "nope".into();
    set_body(&mut r, &v.to_string());
    assert_eq!(call(&svc, &r).await.0, 401);

    assert_eq!(sent(&svc).len(), 3, "only authorized requests were queued");
}

#[tokio::test]
async fn disabled_auth_methods_are_refused() {
    let mut svc = service(MemQueue::default(), None);
    svc.config.auth = AuthMethods::parse("signature").unwrap();
    let r = api_fixture("email_reply"); // has ?token= and a body secret_key
    assert_eq!(call(&svc, &r).await.0, 401);
    assert!(AuthMethods::parse("path,bogus").is_err());
    assert!(AuthMethods::parse(" , ").is_err());
}

#[tokio::test]
async fn bad_bodies_get_400_with_a_reason_and_are_not_queued() {
    let svc = service(MemQueue::default(), None);
    let base = api_fixture("email_open");
    let cases: &[(&str, &str)] = &[
        ("{\"event_type\": \"EMAIL_OPEN\"", "body is not valid JSON"),
        ("", "body is not valid JSON"),
        ("[1,2,3]", "body is JSON but not an object (found an array)"),
        (
            "{\"to_email\": \"a@b.c\"}",
            "body has no event type (looked for `event_type`, `eventType`, `event` and the envelope's `type`)",
        ),
        (
            "{\"event_type\": 12}",
            "event type in `event_type` is not a string",
        ),
    ];
    for (body, reason) in cases {
        let mut r = base.clone();
        set_body(&mut r, body);
        let (status, answer, _) = call(&svc, &r).await;
        assert_eq!(
            (status, answer),
            (400, json!({ "error": reason })),
            "{body}"
        );
    }
    let mut r = base.clone();
    set_binary_body(
        &mut r,
        b"{\"event_type\": \"EMAIL_OPEN\", \"x\": \"\xff\xfe\"}",
    );
    assert_eq!(
        call(&svc, &r).await.1,
        json!({"error": "body is not valid UTF-8"})
    );
    // Without a valid token the same bodies are 401: nothing is said to strangers.
    without_token(&mut r);
    assert_eq!(call(&svc, &r).await.0, 401);
    assert!(sent(&svc).is_empty());
}

#[tokio::test]
async fn unknown_event_types_are_accepted() {
    let svc = service(MemQueue::default(), None);
    let mut r = api_fixture("email_open");
    set_body(&mut r, r#"{"event_type":"SOMETHING_NEW","x":1}"#);
    assert_eq!(call(&svc, &r).await.0, 200);
    assert_eq!(
        sent(&svc)[0].attributes[0],
        (attr::EVENT_TYPE, "SOMETHING_NEW".to_owned())
    );
}

#[tokio::test]
async fn base64_bodies_are_decoded_then_queued_as_sent() {
    let svc = service(MemQueue::default(), None);
    let mut r = api_fixture("email_reply");
    let raw = body_of(&r);
    set_binary_body(&mut r, raw.as_bytes());
    assert_eq!(call(&svc, &r).await.0, 200);
    assert_eq!(sent(&svc)[0].body, raw);
}

#[tokio::test]
async fn oversize_is_413_and_large_bodies_go_by_claim_check() {
    let svc = service(MemQueue::default(), Some(MemBlobs::default()));
    let base = api_fixture("lead_category_updated");
    let mut v: Value = serde_json::from_str(&body_of(&base)).unwrap();
    v["history"][0]["email_body"] = "x".repeat(20 * 1024).into(); // over 8 KiB inline, under 64 KiB cap
    let big = serde_json::to_string_pretty(&v).unwrap();
    let mut r = base.clone();
    set_body(&mut r, &big);
    assert_eq!(call(&svc, &r).await.0, 200);
    let msgs = sent(&svc);
    let pointer: ClaimCheckMessage = serde_json::from_str(&msgs[0].body).expect("pointer");
    assert_eq!(pointer.claim_check.bucket, "claim-bucket");
    assert_eq!(pointer.claim_check.size, big.len() as u64);
    assert_eq!(pointer.claim_check.sha256, sha256_hex(big.as_bytes()));
    let stored = svc.blobs.as_ref().unwrap().put.lock().unwrap().clone();
    assert_eq!(
        stored,
        vec![(pointer.claim_check.key.clone(), big.into_bytes())]
    );
    assert!(msgs[0]
        .attributes
        .contains(&(attr::BODY_LOCATION, "s3".into())));

    v["history"][0]["email_body"] = "x".repeat(70 * 1024).into();
    set_body(&mut r, &v.to_string());
    assert_eq!(
        call(&svc, &r).await,
        (
            413,
            json!({"error": "payload too large"}),
            call(&svc, &r).await.2
        )
    );
    assert_eq!(sent(&svc).len(), 1);
}

#[tokio::test]
async fn bodies_sqs_cannot_carry_go_by_claim_check() {
    let svc = service(MemQueue::default(), Some(MemBlobs::default()));
    let mut r = api_fixture("email_open");
    set_body(
        &mut r,
        "{\"event_type\":\"EMAIL_OPEN\",\"note\":\"\u{FFFF}\"}",
    );
    assert_eq!(call(&svc, &r).await.0, 200);
    assert!(sent(&svc)[0]
        .attributes
        .contains(&(attr::BODY_LOCATION, "s3".into())));
}

#[tokio::test]
async fn queue_or_store_failure_is_503_never_200() {
    let svc = service(
        MemQueue {
            fail: true,
            ..Default::default()
        },
        None,
    );
    let (status, body, headers) = call(&svc, &api_fixture("email_reply")).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": "temporarily unavailable, please retry"}),
        "no internal error text"
    );
    assert_eq!(headers["retry-after"], "5");

    let svc = service(
        MemQueue::default(),
        Some(MemBlobs {
            fail: true,
            ..Default::default()
        }),
    );
    let mut r = api_fixture("email_open");
    set_body(
        &mut r,
        &format!(
            "{{\"event_type\":\"EMAIL_OPEN\",\"pad\":\"{}\"}}",
            "y".repeat(10_000)
        ),
    );
    assert_eq!(call(&svc, &r).await.0, 503);
    assert!(sent(&svc).is_empty(), "no pointer without its body");

    // Too large for the queue and no bucket configured: not acknowledged either.
    let svc = service(MemQueue::default(), None);
    assert_eq!(call(&svc, &r).await.0, 503);
}

#[tokio::test]
async fn function_url_requests_work_too() {
    let svc = service(MemQueue::default(), None);
    let mut r = api_fixture("email_sent");
    r["requestContext"]["domainName"] = "abcdefg.lambda-url.us-east-1.on.aws".into();
    r["requestContext"]["apiId"] = "abcdefg".into();
    r["requestContext"]["authorizer"] = json!({"iam": null});
    r.as_object_mut().unwrap().remove("routeKey");
    r["requestContext"]["routeKey"] = "$default".into();
    assert_eq!(call(&svc, &r).await.0, 200);
}

/// A secret from `openssl rand -base64` (with SSM's trailing newline), the
/// URL exactly as `smartlead register` builds it, and that URL's path as each
/// front delivers it: API Gateway's HTTP API decodes the path (`%2F` becomes
/// `/`), a Function URL passes it encoded, the query is decoded once.
#[tokio::test]
async fn a_base64_secret_registered_by_the_cli_is_accepted_however_it_arrives() {
    for secret in ["Ab+c/d9z=", "k3/Jw+PqZ0bXy/"] {
        let url = smartlead::app::ingest::webhook_url(
            "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead/<secret>",
            &format!("{secret}\n"),
        );
        assert!(!url.contains("%0A"), "{url}");
        let encoded_path = url
            .strip_prefix("https://abc.execute-api.us-east-1.amazonaws.com")
            .unwrap()
            .to_owned();
        assert!(
            !encoded_path["/webhooks/smartlead/".len()..].contains('/'),
            "{encoded_path}"
        );
        let mut svc = service(MemQueue::default(), None);
        svc.config.secret = Secret::new(secret).unwrap();
        let base = api_fixture("email_open");
        // API Gateway HTTP API: rawPath decoded.
        let mut r = base.clone();
        without_token(&mut r);
        let decoded = smartlead::app::ingest::percent_decode(&encoded_path).unwrap();
        set_path(&mut r, &decoded);
        assert_eq!(call(&svc, &r).await.0, 200, "{decoded}");
        // Function URL: rawPath as sent.
        set_path(&mut r, &encoded_path);
        assert_eq!(call(&svc, &r).await.0, 200, "{encoded_path}");
        // Query token, as registered by hand: ?token=<encoded>.
        let mut r = base.clone();
        let enc = &encoded_path["/webhooks/smartlead/".len()..];
        r["rawQueryString"] = format!("token={enc}").into();
        r["queryStringParameters"] = json!({ "token": secret });
        assert_eq!(call(&svc, &r).await.0, 200, "?token={enc}");
        // Wrong secrets stay out: one segment 401, several segments 404.
        let mut r = base.clone();
        without_token(&mut r);
        set_path(&mut r, "/webhooks/smartlead/Ab+c");
        assert_eq!(call(&svc, &r).await.0, 401);
        set_path(&mut r, "/webhooks/smartlead/Ab+c/d9");
        assert_eq!(call(&svc, &r).await.0, 404);
        assert_eq!(sent(&svc).len(), 3);
    }
}
