//! The built `bootstrap` under the Lambda Runtime Interface Emulator,
//! against moto: every events/api fixture gets its documented answer.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn built_binary_answers_every_api_fixture_through_the_emulator() {
    let moto = test_support::standins::start_moto_any().unwrap_or_else(|e| panic!("{e}"));
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto.endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&cfg);
    let url = test_support::create_queue(&sqs, "webhooks").await;
    let endpoint = moto.endpoint();
    let ingest = test_support::Function::start(
        "IngestFunction",
        env!("CARGO_BIN_EXE_smartlead-ingest"),
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("QUEUE_URL", &url),
            ("WEBHOOK_SECRET", TOKEN),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    );
    let invoke = |event: Value| {
        let ingest = &ingest;
        async move { ingest.invoke(&event).await }
    };
    for (name, req) in api_fixtures() {
        let out = invoke(req).await;
        assert_eq!(out["statusCode"], 200, "{name}: {out}");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], "received", "{name}");
    }
    let mut bad = api_fixture("email_open");
    set_token(&mut bad, "wrong");
    let out = invoke(bad).await;
    assert_eq!(
        (out["statusCode"].clone(), out["body"].clone()),
        (json!(401), json!("{\"error\":\"unauthorized\"}"))
    );
    let mut bad = api_fixture("email_open");
    set_body(&mut bad, "[]");
    assert_eq!(invoke(bad).await["statusCode"], 400);
    let n = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(
            smartlead::aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
        )
        .send()
        .await
        .unwrap();
    let depth = n.attributes().unwrap().values().next().unwrap().clone();
    assert_eq!(
        depth,
        api_fixtures().len().to_string(),
        "one message per accepted fixture, none for the rejected"
    );
}
