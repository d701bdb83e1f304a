//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use test_support::fixtures;

pub fn payload(name: &str) -> String {
    test_support::fixture("payloads", name)
}

/// DynamoDB Local, started once per test binary (on a port it could bind).
pub fn dynamodb() -> &'static local_aws::Service {
    static DDB: std::sync::OnceLock<local_aws::Service> = std::sync::OnceLock::new();
    DDB.get_or_init(|| local_aws::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}")))
}

/// moto's server, started once per test binary.
pub fn moto() -> &'static local_aws::Service {
    static MOTO: std::sync::OnceLock<local_aws::Service> = std::sync::OnceLock::new();
    MOTO.get_or_init(|| local_aws::start_moto_any().unwrap_or_else(|e| panic!("{e}")))
}

/// A name no other test of this process uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new state table in DynamoDB Local.
pub async fn fresh_store() -> smartlead::adapters::aws::dynamodb::DynamoStore {
    let cfg = smartlead::adapters::aws::local_sdk_config(&dynamodb().endpoint()).await;
    let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    let table = unique("state");
    smartlead::adapters::aws::dynamodb::create_table(&client, &table)
        .await
        .expect("create table");
    smartlead::adapters::aws::dynamodb::DynamoStore::new(client, table)
}

pub type TestConsumer = smartlead::app::consumer::Consumer<
    smartlead::adapters::aws::dynamodb::DynamoStore,
    smartlead::aws_sdk_s3::Client,
>;

/// The consumer as the function builds it, on `store`, with `effects`.
pub fn consumer_with(
    store: smartlead::adapters::aws::dynamodb::DynamoStore,
    effects: smartlead::app::effects::Effects,
) -> TestConsumer {
    smartlead::app::consumer::Consumer {
        store,
        blobs: None,
        weights: smartlead::domain::plan::ScoreWeights::default(),
        concurrency: 10,
        metrics: smartlead::metrics::Metrics::disabled(),
        effects,
        time_window: Default::default(),
    }
}

/// The dedup marker of the event in `body`.
pub async fn marker(
    store: &smartlead::adapters::aws::dynamodb::DynamoStore,
    body: &str,
) -> serde_json::Value {
    let key = smartlead::SmartleadEvent::from_slice(body.as_bytes())
        .expect("event")
        .dedup_key();
    smartlead::app::store::StateReader::item(store, &format!("EVENT#{key}"), "EVENT")
        .await
        .expect("read")
        .expect("marker")
}
