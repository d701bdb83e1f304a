//! Ingest against moto's server (real SQS and S3 APIs on 127.0.0.1).

mod common;

use common::*;
use smartlead::adapters::aws::{local_sdk_config, S3Blobs, SqsQueue};
use smartlead::app::ingest::*;
use smartlead::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use smartlead::domain::message::{attr, sha256_hex, ClaimCheckMessage, DEFAULT_MAX_INLINE_BYTES};
use smartlead::metrics::Metrics;

struct Env {
    moto: test_support::standins::Service,
    sqs: smartlead::aws_sdk_sqs::Client,
    s3: smartlead::aws_sdk_s3::Client,
    svc: Ingest<SqsQueue, S3Blobs>,
}

async fn env() -> Env {
    let moto = test_support::standins::start_moto_any().unwrap_or_else(|e| panic!("{e}"));
    let cfg = local_sdk_config(&moto.endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&cfg);
    let s3 = smartlead::aws_sdk_s3::Client::from_conf(
        smartlead::aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    );
    let url = test_support::create_queue(&sqs, "webhooks").await;
    s3.create_bucket()
        .bucket("claims")
        .send()
        .await
        .expect("create bucket");
    let svc = Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new(TOKEN).unwrap(),
            clients: Default::default(),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: DEFAULT_MAX_INLINE_BYTES,
        },
        queue: SqsQueue {
            client: sqs.clone(),
            queue_url: url,
        },
        blobs: Some(S3Blobs {
            client: s3.clone(),
            bucket: "claims".into(),
        }),
        metrics: Metrics::disabled(),
    };
    Env { moto, sqs, s3, svc }
}

async fn post(e: &Env, req: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = smartlead_ingest::respond(&e.svc, to_request(req)).await;
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("json"),
        _ => panic!("text body expected"),
    };
    (status, body)
}

async fn receive_all(e: &Env) -> Vec<smartlead::aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let r = e
            .sqs
            .receive_message()
            .queue_url(&e.svc.queue.queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        out.extend(msgs);
    }
}

#[tokio::test]
async fn queued_messages_are_byte_identical_and_carry_attributes() {
    let e = env().await;
    let fixtures = api_fixtures();
    let mut ids = std::collections::HashMap::new();
    for (name, req) in &fixtures {
        let (status, body) = post(&e, req).await;
        assert_eq!(status, 200, "{name}: {body}");
        ids.insert(body["id"].as_str().expect("id").to_owned(), name.clone());
    }
    let msgs = receive_all(&e).await;
    assert_eq!(msgs.len(), fixtures.len());
    for m in msgs {
        let name = &ids[m.message_id().expect("id")];
        let sent = body_of(&fixtures[name]);
        assert_eq!(m.body().expect("body"), sent, "{name}: byte-identical");
        let a = m.message_attributes().expect("attributes");
        let get = |k: &str| a[k].string_value().unwrap_or_default().to_owned();
        assert_eq!(get(attr::BODY_SHA256), sha256_hex(sent.as_bytes()));
        assert_eq!(get(attr::REQUEST_ID), format!("fixture-{name}"));
        assert_eq!(get(attr::SOURCE_IP), "203.0.113.10");
        assert_eq!(get(attr::BODY_LOCATION), "inline");
        assert!(!get(attr::EVENT_TYPE).is_empty());
        assert!(!get(attr::RECEIVED_AT).is_empty());
    }
}

#[tokio::test]
async fn a_claim_checked_body_round_trips_through_s3() {
    let e = env().await;
    let mut req = api_fixture("lead_category_updated");
    let mut v: serde_json::Value = serde_json::from_str(&body_of(&req)).unwrap();
    v["history"][0]["email_body"] = "<p>long thread</p>".repeat(30_000).into(); // ~540 KB
    let big = v.to_string();
    set_body(&mut req, &big);
    let (status, _) = post(&e, &req).await;
    assert_eq!(status, 200);
    let msgs = receive_all(&e).await;
    assert_eq!(msgs.len(), 1);
    let pointer: ClaimCheckMessage =
        serde_json::from_str(msgs[0].body().unwrap()).expect("pointer body");
    let obj =
        e.s3.get_object()
            .bucket(&pointer.claim_check.bucket)
            .key(&pointer.claim_check.key)
            .send()
            .await
            .expect("stored");
    let bytes = obj.body.collect().await.expect("read").into_bytes();
    assert_eq!(bytes.as_ref(), big.as_bytes());
    assert_eq!(pointer.claim_check.sha256, sha256_hex(&bytes));
}

#[tokio::test]
async fn deleted_queue_or_stopped_server_answers_503_and_acknowledges_nothing() {
    let mut e = env().await;
    e.sqs
        .delete_queue()
        .queue_url(&e.svc.queue.queue_url)
        .send()
        .await
        .expect("delete");
    let (status, body) = post(&e, &api_fixture("email_reply")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily unavailable, please retry"))
    );

    // Recreate the queue, then take the whole server away.
    let url = test_support::create_queue(&e.sqs, "webhooks").await;
    let attrs = e
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages],
        "0",
        "the 503 left nothing queued"
    );
    e.moto.stop();
    let started = std::time::Instant::now();
    let (status, _) = post(&e, &api_fixture("email_open")).await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "answered within SmartLead's patience"
    );
}
