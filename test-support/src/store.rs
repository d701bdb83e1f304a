//! The state store and the consumer as tests set them up: DynamoDB Local
//! and moto started once per test binary, a new table per test, the
//! consumer as the function builds it, and the table read back as JSON.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use smartlead::adapters::aws::dynamodb::index::{Index, INDEXES};
use smartlead::adapters::aws::dynamodb::{create_table_with, item_to_json, DynamoStore};
use smartlead::adapters::aws::SqsQueue;
use smartlead::app::consumer::{Consumer, Outcome};
use smartlead::app::effects::Effects;
use smartlead::app::worker::{EffectPath, EffectQueue};
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use tracing::instrument::WithSubscriber;

/// DynamoDB Local, started once per test binary (on a port it could bind).
pub fn dynamodb() -> &'static crate::standins::Service {
    static DDB: OnceLock<crate::standins::Service> = OnceLock::new();
    DDB.get_or_init(|| crate::standins::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}")))
}

/// moto's server, started once per test binary.
pub fn moto() -> &'static crate::standins::Service {
    static MOTO: OnceLock<crate::standins::Service> = OnceLock::new();
    MOTO.get_or_init(|| crate::standins::start_moto_any().unwrap_or_else(|e| panic!("{e}")))
}

/// A name no other test of this process uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: std::sync::atomic::AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new SQS queue named by [`unique`] from `prefix`: its URL.
pub async fn new_queue(sqs: &smartlead::aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> String {
    use smartlead::aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN")
}

/// One receive from the queue at `url`: up to 10 messages, with all their
/// message attributes (left in the queue).
pub async fn receive(
    sqs: &smartlead::aws_sdk_sqs::Client,
    url: &str,
) -> Vec<smartlead::aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

/// A new state table `table` on the DynamoDB at `endpoint`, as the
/// template creates it.
pub async fn store_at(endpoint: &str, table: &str) -> DynamoStore {
    store_with(endpoint, table, INDEXES).await
}

/// [`store_at`] without the indexes: what the state alone costs.
pub async fn bare_store_at(endpoint: &str, table: &str) -> DynamoStore {
    store_with(endpoint, table, &[]).await
}

async fn store_with(endpoint: &str, table: &str, indexes: &[Index]) -> DynamoStore {
    let cfg = smartlead::adapters::aws::local_sdk_config(endpoint).await;
    let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    create_table_with(&client, table, indexes)
        .await
        .expect("create table");
    DynamoStore::new(client, table.to_owned())
}

/// A new state table in [`dynamodb`], named by [`unique`].
pub async fn fresh_store() -> DynamoStore {
    store_at(&dynamodb().endpoint(), &unique("state")).await
}

/// One event body applied to `store` as the consumer's store step does
/// (planned now, with the default score weights), under `message_id`.
pub async fn apply_body(
    store: &DynamoStore,
    body: serde_json::Value,
    message_id: &str,
) -> Result<smartlead::app::store::ApplyOutcome, Box<dyn std::error::Error + Send + Sync>> {
    use smartlead::app::store::Dedup;
    let ev = smartlead::SmartleadEvent::from_value(body)?;
    let plan = smartlead::domain::plan::plan(
        &ev,
        smartlead::domain::time::EventTime::now(),
        &smartlead::domain::plan::ScoreWeights::default(),
    );
    Ok(store.apply(&plan, message_id).await?)
}

/// The consumer the tests run: on DynamoDB, with S3 for claim checks, and
/// an effects queue in moto. It takes SQS events as the function does,
/// through the consumer function's framing (`smartlead_consumer`). Its
/// [`TestConsumer::handle_batch`] also runs the effects the batch queued,
/// as the function's second event source would: tests see state and
/// effects as a deployment does once its effects queue is drained.
pub struct TestConsumer {
    pub consumer: Consumer<DynamoStore, smartlead::aws_sdk_s3::Client>,
    effects: TestEffectsQueue,
    /// The effect batches' answers, newest last.
    pub effect_answers: std::sync::Mutex<Vec<SqsBatchResponse>>,
    /// Effect messages run and acknowledged.
    effects_run: std::sync::atomic::AtomicUsize,
}

impl std::ops::Deref for TestConsumer {
    type Target = Consumer<DynamoStore, smartlead::aws_sdk_s3::Client>;
    fn deref(&self) -> &Self::Target {
        &self.consumer
    }
}

impl std::ops::DerefMut for TestConsumer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.consumer
    }
}

impl TestConsumer {
    /// The webhook batch, then every effect it queued (see [`Self::run_effects`]).
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let r = smartlead_consumer::handle(&self.consumer, event, None).await;
        self.run_effects().await;
        r
    }

    /// The batch before `deadline_ms` (epoch ms), as the function runs it;
    /// its effects are left in the effects queue.
    pub async fn handle_batch_until(
        &self,
        event: SqsEvent,
        deadline_ms: Option<i64>,
    ) -> SqsBatchResponse {
        smartlead_consumer::handle(&self.consumer, event, deadline_ms).await
    }

    /// One record on its own (see `Consumer::handle_record`).
    pub async fn handle_record(&self, m: &SqsMessage) -> Outcome {
        let m = smartlead_consumer::message(m.clone());
        self.consumer.handle_record(&m).await
    }

    /// Runs the effect messages in the effects queue through the consumer,
    /// batch by batch, until the queue is empty (a failed effect comes back
    /// after its backoff: zero in tests, or the destination's Retry-After),
    /// for at most 20 s. Returns how many messages were received.
    pub async fn run_effects(&self) -> usize {
        let Some(q) = self.effects.0.get() else {
            return 0;
        };
        let answers = run_effects_of(&self.consumer, &q.client, &q.queue_url, 100).await;
        let ran = answers.len();
        let acknowledged: usize = answers
            .iter()
            .map(|(n, a)| n - a.batch_item_failures.len())
            .sum();
        self.effects_run
            .fetch_add(acknowledged, std::sync::atomic::Ordering::SeqCst);
        let answers = answers.into_iter().map(|(_, a)| a);
        self.effect_answers.lock().expect("answers").extend(answers);
        ran
    }

    /// How many effect messages ran and were acknowledged so far.
    pub fn effects_run(&self) -> usize {
        self.effects_run.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many effect messages the effect batches reported failed so far.
    pub fn failed_effects(&self) -> usize {
        self.effect_answers
            .lock()
            .expect("answers")
            .iter()
            .map(|a| a.batch_item_failures.len())
            .sum()
    }

    /// The effects queue's URL, once something was queued.
    pub fn effects_queue(&self) -> Option<(smartlead::aws_sdk_sqs::Client, String)> {
        self.effects
            .0
            .get()
            .map(|q| (q.client.clone(), q.queue_url.clone()))
    }
}

/// Runs the effect messages in the effects queue `url` through `consumer`,
/// batch by batch, until the queue is empty (a failed effect comes back
/// after its backoff: zero in tests, or the destination's Retry-After),
/// for at most 20 s and `max_batches` batches. Returns each batch's size
/// and answer.
pub async fn run_effects_of<S, B>(
    consumer: &Consumer<S, B>,
    sqs: &smartlead::aws_sdk_sqs::Client,
    url: &str,
    max_batches: usize,
) -> Vec<(usize, SqsBatchResponse)>
where
    S: smartlead::app::store::StateStore,
    B: smartlead::app::consumer::BlobReader,
{
    let arn = queue_arn(sqs, url).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut answers = Vec::new();
    while std::time::Instant::now() < deadline && answers.len() < max_batches {
        // The harness's own SQS calls stay out of the logs a test captures
        // (the SDK's TRACE lines show the bodies it receives).
        let quiet = tracing::subscriber::NoSubscriber::default;
        let msgs = receive_all_attributes(sqs, url)
            .with_subscriber(quiet())
            .await
            .expect("receive");
        if msgs.is_empty() {
            if queue_is_empty(sqs, url).with_subscriber(quiet()).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = msgs
            .iter()
            .map(|m| crate::sqs_message_from(&arn, m))
            .collect();
        let answer = smartlead_consumer::handle(consumer, event, None).await;
        for m in &msgs {
            let failed = answer
                .batch_item_failures
                .iter()
                .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
            if !failed {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .with_subscriber(quiet())
                    .await
                    .expect("delete effect message");
            }
        }
        answers.push((msgs.len(), answer));
    }
    answers
}

/// A test consumer's effects queue: a queue in moto, made on first use.
#[derive(Clone, Default)]
pub struct TestEffectsQueue(std::sync::Arc<tokio::sync::OnceCell<SqsQueue>>);

impl TestEffectsQueue {
    async fn queue(&self) -> &SqsQueue {
        self.0
            .get_or_init(|| async {
                let sdk = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
                let client = smartlead::aws_sdk_sqs::Client::new(&sdk);
                let queue_url = new_queue(&client, "effects").await;
                SqsQueue { client, queue_url }
            })
            .await
    }
}

#[async_trait::async_trait]
impl EffectQueue for TestEffectsQueue {
    async fn send_delayed(
        &self,
        msgs: &[smartlead::domain::message::OutgoingMessage],
        delay: std::time::Duration,
    ) -> Vec<Result<(), smartlead::app::ingest::QueueError>> {
        self.queue().await.send_delayed(msgs, delay).await
    }
    async fn delay(&self, receipts: &[(String, std::time::Duration)]) {
        self.queue().await.delay(receipts).await
    }
}

/// No message waiting or in flight.
async fn queue_is_empty(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> bool {
    use smartlead::aws_sdk_sqs::types::QueueAttributeName as A;
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .all(|k| a.get(k).map(String::as_str) == Some("0"))
}

/// One receive from the queue at `url`: up to 10 messages (left in the
/// queue), with every message attribute and SQS attribute.
pub async fn receive_all_attributes(
    sqs: &smartlead::aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<smartlead::aws_sdk_sqs::types::Message>, smartlead::aws_sdk_sqs::Error> {
    let r = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(
            smartlead::aws_sdk_sqs::types::MessageSystemAttributeName::All,
        )
        .send()
        .await?;
    Ok(r.messages.unwrap_or_default())
}

/// Receives of [`drain`] at most: 1,000 messages.
const DRAIN_RECEIVES: usize = 100;

/// Every message the queue at `url` holds (at most 1,000), each with all
/// its attributes and deleted once received, in the order received. An
/// error when a receive fails or a delete is refused.
pub async fn drain(
    sqs: &smartlead::aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<smartlead::aws_sdk_sqs::types::Message>, Box<dyn std::error::Error + Send + Sync>> {
    use smartlead::aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
    let mut out = Vec::new();
    for _ in 0..DRAIN_RECEIVES {
        let msgs = receive_all_attributes(sqs, url).await?;
        if msgs.is_empty() {
            break;
        }
        let entries = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(smartlead::aws_sdk_sqs::Error::from)?;
        if let Some(f) = deleted.failed().first() {
            let n = deleted.failed().len();
            let why = f.message().unwrap_or(f.code());
            return Err(format!(
                "{n} of {} messages not deleted from {url}: {why}",
                msgs.len()
            )
            .into());
        }
        out.extend(msgs);
    }
    Ok(out)
}

/// The consumer as the function builds it, on `store`, with `effects`
/// (run through an effects queue in moto, retried at once).
pub fn consumer_with(store: DynamoStore, effects: Effects) -> TestConsumer {
    let queue = TestEffectsQueue::default();
    TestConsumer {
        consumer: Consumer {
            store,
            blobs: None,
            weights: smartlead::domain::plan::ScoreWeights::default(),
            concurrency: 10,
            metrics: smartlead::metrics::Metrics::disabled(),
            effects,
            time_window: Default::default(),
            effect_path: Some(EffectPath {
                queue: Box::new(queue.clone()),
                retry_base: std::time::Duration::ZERO,
                requeue: None,
            }),
        },
        effects: queue,
        effect_answers: Default::default(),
        effects_run: Default::default(),
    }
}

/// [`consumer_with`] without effects.
pub fn consumer(store: DynamoStore) -> TestConsumer {
    consumer_with(store, Effects::default())
}

/// Writes `item` as it is (what an older version left, an item near a
/// limit), over any item with its key.
pub async fn put_item(store: &DynamoStore, item: HashMap<String, AttributeValue>) {
    store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// The item `pk`/`sk` as DynamoDB holds it, which must be there.
pub async fn raw_item(store: &DynamoStore, pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    store
        .client
        .get_item()
        .table_name(&store.table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .send()
        .await
        .expect("read")
        .item
        .unwrap_or_else(|| panic!("no item {pk}|{sk}"))
}

/// The item `pk`/`sk`, which must be there.
pub async fn item(store: &DynamoStore, pk: &str, sk: &str) -> Value {
    smartlead::app::store::StateReader::item(store, pk, sk)
        .await
        .expect("read")
        .expect("item")
}

/// The dedup marker of the event in `body`.
pub async fn marker(store: &DynamoStore, body: &str) -> Value {
    let key = smartlead::SmartleadEvent::from_slice(body.as_bytes())
        .expect("event")
        .dedup_key();
    item(store, &format!("EVENT#{key}"), "EVENT").await
}

/// Every item of the table as JSON, keyed `pk|sk`.
pub async fn items(store: &DynamoStore) -> BTreeMap<String, Value> {
    store
        .scan_all()
        .await
        .expect("scan")
        .iter()
        .map(item_to_json)
        .map(|v| {
            let key = format!(
                "{}|{}",
                v["pk"].as_str().unwrap_or_default(),
                v["sk"].as_str().unwrap_or_default()
            );
            (key, v)
        })
        .collect()
}

/// The item `pk|sk` of an [`items`] map; panics with the keys there are.
pub fn get<'a>(items: &'a BTreeMap<String, Value>, pk: &str, sk: &str) -> &'a Value {
    items.get(&format!("{pk}|{sk}")).unwrap_or_else(|| {
        panic!(
            "no item {pk}|{sk} in {:#?}",
            items.keys().collect::<Vec<_>>()
        )
    })
}
