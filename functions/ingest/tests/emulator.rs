//! The built `bootstrap` under the Lambda Runtime Interface Emulator,
//! against moto: every events/api fixture gets its documented answer.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn built_binary_answers_every_api_fixture_through_the_emulator() {
    let moto = local_aws::start_moto_any().unwrap_or_else(|e| panic!("{e}"));
    let cfg = smartlead::aws::local_sdk_config(&moto.endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&cfg);
    let url = sqs
        .create_queue()
        .queue_name("webhooks")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
        ("QUEUE_URL", url.as_str()),
        ("WEBHOOK_SECRET", TOKEN),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let rie = local_aws::start_rie_any(
        &local_aws::function_binary(
            "IngestFunction",
            std::path::Path::new(env!("CARGO_BIN_EXE_smartlead-ingest")),
        ),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let http = smartlead::http::client();
    let invoke = |event: Value| {
        let http = http.clone();
        let u = local_aws::rie_invoke_url(&rie);
        async move {
            http.post(u)
                .json(&event)
                .send()
                .await
                .expect("invoke")
                .json::<Value>()
                .await
                .expect("json")
        }
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
