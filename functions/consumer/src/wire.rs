//! The consumer's service from its config, at cold start: the store, the
//! claim-check reader, the effects queue and the effects that are
//! switched on.

use smartlead::adapters::aws::dynamodb::clients::registry_loader;
use smartlead::adapters::aws::dynamodb::{budget::DynamoBudget, DynamoStore};
use smartlead::adapters::aws::{eventbridge, s3, sns, ssm, SdkConfig, SqsQueue};
use smartlead::adapters::http::hygiene::Hygiene;
use smartlead::adapters::http::slack::{ClientChannels, SlackNotifier};
use smartlead::adapters::http::smartlead::Api;
use smartlead::app::clients::{Clients, REGISTRY_REFRESH};
use smartlead::app::consumer::Consumer;
use smartlead::app::effects::Effects;
use smartlead::app::worker::{EffectPath, EffectQueue};
use smartlead::config::refresh::Refreshing;
use smartlead::config::{ConfigError, ConsumerConfig};
use smartlead::metrics::Metrics;
use smartlead::{aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs};

/// The consumer's side effects, each on only when configured. The Slack
/// URL and the SmartLead API key are optional: one that cannot be read
/// leaves its effect waiting, never the consumer ([`ssm::optional`]).
pub async fn effects(sdk: &SdkConfig, config: &ConsumerConfig, metrics: &Metrics) -> Effects {
    // Slack's and SmartLead's rate budgets, shared with every other
    // process calling them, in the state table.
    let budget = std::sync::Arc::new(DynamoBudget::new(
        aws_sdk_dynamodb::Client::new(sdk),
        config.table.clone(),
    ));
    let mut effects = Effects {
        alerts: config.alerts.clone(),
        clients: clients(sdk, config).await,
        ..Effects::default()
    };
    if let Some(bus) = &config.bus {
        effects.publisher = Some(Box::new(eventbridge::EventBridgePublisher {
            client: smartlead::aws_sdk_eventbridge::Client::new(sdk),
            bus: bus.clone(),
        }));
    }
    let what = ("Slack URL", smartlead::app::effects::SLACK);
    let url = match &config.slack {
        Some(source) => Some(ssm::optional(sdk, source, what, config.refresh, metrics).await),
        None => None,
    };
    // An agency's clients' own channels: each URL read on first use (a
    // failed read counts SecretReadFailures, as the shared URL's does).
    let channels = config.clients.as_ref().map(|_| {
        let (sdk, every, metrics) = (sdk.clone(), config.refresh, metrics.clone());
        ClientChannels::new(
            effects.clients.clone(),
            Box::new(move |name: &str| {
                let load = ssm::counted_loader(&sdk, name, what.1, &metrics);
                Refreshing::on_first_use("a client's Slack URL", every, load)
            }),
        )
    });
    if url.is_some() || channels.is_some() {
        effects.notifiers.push(Box::new(
            SlackNotifier::routed(url, channels).with_budget(budget.clone()),
        ));
    }
    if let Some(topic_arn) = &config.topic_arn {
        effects.notifiers.push(Box::new(sns::SnsNotifier {
            client: smartlead::aws_sdk_sns::Client::new(sdk),
            topic_arn: topic_arn.clone(),
        }));
    }
    if let Some(h) = &config.hygiene {
        let what = ("SmartLead API key", smartlead::app::effects::HYGIENE);
        let key = ssm::optional(sdk, &h.api_key, what, config.refresh, metrics).await;
        effects.notifiers.push(Box::new(Hygiene {
            api: Api::new(&h.api_base, "")
                .with_key(key)
                .with_budget(budget.clone(), h.per_minute),
            mode: h.mode,
            soft_bounces: h.soft_bounces,
        }));
    }
    effects
}

/// An agency's client registry, re-read from the table (none without
/// `CLIENT_PARAMETER_PATH`).
/// Read at cold start, so that no event of the first batch goes without;
/// a registry that cannot be read then is read again with backoff.
async fn clients(sdk: &SdkConfig, config: &ConsumerConfig) -> Clients {
    if config.clients.is_none() {
        return Clients::default();
    }
    let load = registry_loader(aws_sdk_dynamodb::Client::new(sdk), config.table.clone());
    // Until it reads, events go without their campaign's client.
    Clients::refreshing(Refreshing::read_at_start("client registry", REGISTRY_REFRESH, load).await)
}

/// The consumer function's service.
pub async fn consumer(
    sdk: &SdkConfig,
    config: ConsumerConfig,
) -> Result<Consumer<DynamoStore, aws_sdk_s3::Client>, ConfigError> {
    let mut store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table.clone());
    store.dedup_ttl = config.dedup_ttl;
    let metrics = Metrics::from_config(&config.metrics, "consumer");
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let effect_path = config.effects_queue.clone().map(|queue_url| EffectPath {
        queue: Box::new(SqsQueue {
            client: sqs.clone(),
            queue_url,
        }),
        retry_base: config.effect_retry_base,
        requeue: config.webhook_queue.clone().map(|queue_url| {
            Box::new(SqsQueue {
                client: sqs.clone(),
                queue_url,
            }) as Box<dyn EffectQueue>
        }),
    });
    Ok(Consumer {
        store,
        blobs: Some(s3::client(sdk, config.s3_path_style)),
        weights: config.weights,
        concurrency: config.concurrency,
        effects: effects(sdk, &config, &metrics).await,
        metrics,
        time_window: config.time_window,
        effect_path,
    })
}
