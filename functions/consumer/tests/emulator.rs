//! The built consumer `bootstrap` under the Lambda Runtime Interface
//! Emulator, against DynamoDB Local: the right `batchItemFailures`.

use serde_json::{json, Value};

fn batch(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/sqs")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
}

#[tokio::test]
async fn built_binary_processes_sqs_batches_through_the_emulator() {
    let ddb = local_aws::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}"));
    let cfg = smartlead::aws::local_sdk_config(&ddb.endpoint()).await;
    let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    smartlead::store::create_table(&client, "state")
        .await
        .expect("table");
    let env: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", ddb.endpoint().as_str()),
        ("TABLE_NAME", "state"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let rie = local_aws::start_rie_any(
        &local_aws::function_binary(
            "ConsumerFunction",
            std::path::Path::new(env!("CARGO_BIN_EXE_smartlead-consumer")),
        ),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let http = smartlead::http::client();
    let url = local_aws::rie_invoke_url(&rie);
    for name in ["batch_all", "batch_mixed", "batch_all"] {
        let out: Value = http
            .post(&url)
            .json(&batch(name))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(out, json!({"batchItemFailures": []}), "{name}");
    }
    // With the table gone every record is a retryable failure, reported by id.
    client
        .delete_table()
        .table_name("state")
        .send()
        .await
        .unwrap();
    let b = batch("batch_all");
    let out: Value = http
        .post(&url)
        .json(&b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed: Vec<&str> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed.len(),
        b["Records"].as_array().unwrap().len(),
        "{out}"
    );
}
