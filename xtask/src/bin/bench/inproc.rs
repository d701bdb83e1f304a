//! In-process figures: the ingest handler's tail, the consumer against DynamoDB Local.
#[allow(unused_imports)]
use super::*;

// ------------------------------------------------ in-process percentiles

/// The ingest handler timed one request at a time (criterion gives medians;
/// this gives the tail): p50/p99 in µs for each body size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HandlerTail {
    pub body_bytes: usize,
    pub micros: Stats,
}

pub(crate) fn handler_tails(requests: usize) -> Result<Vec<HandlerTail>> {
    use smartlead::app::ingest::*;
    let svc = Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new(pipeline::TOKEN).context("secret")?,
            clients: Default::default(),
            auth: AuthMethods::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 1024 * 1024,
        },
        queue: test_support::NoopQueue,
        blobs: Some(test_support::NoBlobs),
        metrics: smartlead::metrics::Metrics::disabled(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut out = Vec::new();
    for size in [1024usize, 100 * 1024] {
        let body = test_support::reply_of_size(size);
        let mut micros = Vec::with_capacity(requests);
        for i in 0..requests + requests / 10 {
            let t = Instant::now();
            let r = rt.block_on(svc.handle(test_support::token_post(body.as_bytes())));
            let us = t.elapsed().as_secs_f64() * 1e6;
            if r.status != 200 {
                bail!("the handler answered {}", r.status);
            }
            // The first tenth warms caches and the allocator.
            if i >= requests / 10 {
                micros.push(us);
            }
        }
        out.push(HandlerTail {
            body_bytes: body.len(),
            micros: Stats::of(&micros),
        });
    }
    Ok(out)
}

/// The consumer's handler in process against DynamoDB Local: batches of 10
/// distinct events, one after another.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerDirect {
    pub events: usize,
    pub batch: usize,
    pub events_per_s: f64,
    pub batch_ms: Stats,
    pub dynamodb_requests_per_event: f64,
}

pub(crate) async fn run_consumer_direct(
    stack: &Stack,
    events: usize,
    fanout: bool,
) -> Result<ConsumerDirect> {
    // Counts DynamoDB calls (an interceptor on the store's client).
    let counter = test_support::faults::Faults::counting();
    let store = test_support::faults::with_faults(&stack.store(), counter.clone());
    let mut effects = smartlead::app::effects::Effects::default();
    if fanout {
        let cfg = smartlead::adapters::aws::local_sdk_config(&stack.moto.endpoint()).await;
        effects.publisher = Some(Box::new(
            smartlead::adapters::aws::eventbridge::EventBridgePublisher {
                client: aws_sdk_eventbridge::Client::new(&cfg),
                bus: pipeline::BUS.into(),
            },
        ));
    }
    let consumer = smartlead::app::consumer::Consumer {
        store,
        blobs: None::<smartlead::aws_sdk_s3::Client>,
        weights: smartlead::domain::plan::ScoreWeights::default(),
        concurrency: smartlead::app::consumer::DEFAULT_CONCURRENCY,
        metrics: smartlead::metrics::Metrics::disabled(),
        effects,
        time_window: Default::default(),
        // The fan-out is queued (the worker's PutEvents is not measured here).
        effect_path: Some(smartlead::app::worker::EffectPath {
            queue: Box::new(smartlead::adapters::aws::SqsQueue {
                client: stack.sqs.clone(),
                queue_url: stack.effects_queue_url.clone(),
            }),
            retry_base: smartlead::app::worker::RETRY_BASE,
            requeue: None,
        }),
    };
    let run = format!("direct-{}-{fanout}", std::process::id());
    let mut batch_ms = Vec::new();
    let started = Instant::now();
    for start in (0..events).step_by(10) {
        let records: Vec<Value> = (start..(start + 10).min(events))
            .map(|i| {
                sqs_record(
                    &format!("{run}-{i}"),
                    &open_body(&format!("{run}-{i}@bench.example"), i as u32),
                    "EMAIL_OPEN",
                )
            })
            .collect();
        let batch: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_value(json!({"Records": records}))?;
        let t = Instant::now();
        let r = smartlead_consumer::handle(&consumer, batch, None).await;
        batch_ms.push(ms(t.elapsed()));
        if !r.batch_item_failures.is_empty() {
            bail!("{} records failed", r.batch_item_failures.len());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(ConsumerDirect {
        events,
        batch: 10,
        events_per_s: events as f64 / elapsed,
        batch_ms: Stats::of(&batch_ms),
        dynamodb_requests_per_event: counter.calls() as f64 / events as f64,
    })
}
