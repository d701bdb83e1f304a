//! The built consumer `bootstrap` under the Lambda Runtime Interface
//! Emulator, against DynamoDB Local: the right `batchItemFailures`, and
//! the state the batches leave in the table.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use test_support::Function;

fn batch(name: &str) -> Value {
    serde_json::from_str(&test_support::fixture("sqs", name)).expect("json")
}

/// Every item of the table, keyed `pk|sk`.
async fn snapshot(
    store: &smartlead::adapters::aws::dynamodb::DynamoStore,
) -> BTreeMap<String, Value> {
    let items = store.scan_all().await.expect("scan");
    items
        .iter()
        .map(smartlead::adapters::aws::dynamodb::item_to_json)
        .map(|v| {
            (
                format!(
                    "{}|{}",
                    v["pk"].as_str().unwrap(),
                    v["sk"].as_str().unwrap()
                ),
                v,
            )
        })
        .collect()
}

#[tokio::test]
async fn built_binary_processes_sqs_batches_through_the_emulator() {
    let ddb = test_support::standins::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}"));
    let client = test_support::state_table(&ddb.endpoint(), "state").await;
    let endpoint = ddb.endpoint();
    let consumer = Function::start(
        "ConsumerFunction",
        env!("CARGO_BIN_EXE_smartlead-consumer"),
        &[("AWS_ENDPOINT_URL", &endpoint), ("TABLE_NAME", "state")],
    );
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(client.clone(), "state");
    let mut after = Vec::new();
    for name in ["batch_all", "batch_mixed", "batch_all"] {
        let out = consumer.invoke(&batch(name)).await;
        assert_eq!(out, json!({"batchItemFailures": []}), "{name}");
        after.push(snapshot(&store).await);
    }
    // The state the batches left: every record of the first applied, the
    // mixed batch's duplicates changed nothing and its poison record is kept
    // as REJECTED, the redelivered batch changed nothing.
    let jane = &after[0]["LEAD#jane.doe@acme-corp.com|CAMPAIGN#123"];
    assert_eq!(
        (jane["opens"].clone(), jane["replies"].clone()),
        (json!(1), json!(1))
    );
    assert!(after[0].keys().all(|k| !k.starts_with("REJECTED#")));
    let records = batch("batch_all")["Records"].as_array().unwrap().len();
    // Every record's event is absorbed (its compact key in the `ek` set of
    // the items it changed), each once: as many distinct keys as records.
    let absorbed: std::collections::BTreeSet<String> = after[0]
        .values()
        .flat_map(|item| item["ek"].as_array().cloned().unwrap_or_default())
        .map(|k| k.to_string())
        .collect();
    assert_eq!(absorbed.len(), records, "one absorbed key per record");
    // The poison record's REJECTED item, and the time its key was first
    // seen (a new `FIRST#` item: one record per event, whichever delivery
    // brings it).
    let mut mixed = after[1].clone();
    mixed.retain(|k, _| {
        !k.starts_with("REJECTED#") && (!k.starts_with("FIRST#") || after[0].contains_key(k))
    });
    let rejected: Vec<&Value> = after[1]
        .iter()
        .filter(|(k, _)| k.starts_with("REJECTED#"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["raw"], "this is not json");
    assert_eq!(
        mixed, after[0],
        "the mixed batch's duplicates changed nothing"
    );
    assert_eq!(after[2], after[1], "a redelivered batch is a no-op");
    // With the table gone every record is a retryable failure, reported by id.
    client
        .delete_table()
        .table_name("state")
        .send()
        .await
        .unwrap();
    let b = batch("batch_all");
    let out = consumer.invoke(&b).await;
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
