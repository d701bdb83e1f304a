//! Each function's service from its config, at cold start: SDK clients,
//! secrets read from SSM, the effects that are switched on.

use super::dynamodb::{budget::DynamoBudget, DynamoStore};
use super::{s3, ssm, S3Blobs, SdkConfig, SqsQueue};
use crate::adapters::http::hygiene::Hygiene;
use crate::adapters::http::slack::SlackNotifier;
use crate::adapters::http::smartlead::Api;
use crate::app::consumer::Consumer;
use crate::app::effects::Effects;
use crate::app::ingest::{parse_keys, Ingest, Keys, Secret, Settings};
use crate::app::worker::EffectPath;
use crate::config::refresh::Loader;
use crate::config::{ConfigError, ConsumerConfig, IngestConfig, ReconcileConfig, SecretSource};
use crate::metrics::Metrics;

/// The webhook secret(s), re-read from SSM at most every `config.refresh`.
async fn secret(sdk: &SdkConfig, config: &IngestConfig) -> Result<Secret, ConfigError> {
    let name = match &config.secret {
        SecretSource::Fixed(s) => {
            return Secret::list(s).map_err(|reason| ConfigError::Invalid {
                name: "WEBHOOK_SECRET",
                reason,
            })
        }
        SecretSource::Ssm(name) => name.clone(),
    };
    let value = ssm::secure_string(sdk, &name).await?;
    let keys = parse_keys(&value).map_err(|reason| ConfigError::Secret {
        name: name.clone(),
        reason: format!("the parameter {reason}"),
    })?;
    let read = ssm::loader(sdk, &name);
    let load: Loader<Keys> = std::sync::Arc::new(move || {
        let read = read.clone();
        Box::pin(async move { parse_keys(&read().await?) })
    });
    Ok(Secret::refreshing(keys, config.refresh, load))
}

/// The ingest function's service.
pub async fn ingest(
    sdk: &SdkConfig,
    config: IngestConfig,
) -> Result<Ingest<SqsQueue, S3Blobs>, ConfigError> {
    let settings = Settings {
        webhook_path: config.webhook_path.clone(),
        secret: secret(sdk, &config).await?,
        auth: config.auth,
        max_body_bytes: config.max_body_bytes,
        max_inline_bytes: config.max_inline_bytes,
    };
    Ok(Ingest {
        config: settings,
        queue: SqsQueue {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url: config.queue_url,
        },
        blobs: config.claim_check_bucket.map(|bucket| S3Blobs {
            client: s3::client(sdk, config.s3_path_style),
            bucket,
        }),
        metrics: Metrics::from_config(&config.metrics, "ingest"),
    })
}

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
        ..Effects::default()
    };
    if let Some(bus) = &config.bus {
        effects.publisher = Some(Box::new(super::eventbridge::EventBridgePublisher {
            client: aws_sdk_eventbridge::Client::new(sdk),
            bus: bus.clone(),
        }));
    }
    if let Some(source) = &config.slack {
        let what = ("Slack URL", crate::app::effects::SLACK);
        let url = ssm::optional(sdk, source, what, config.refresh, metrics).await;
        effects.notifiers.push(Box::new(
            SlackNotifier::refreshing(url).with_budget(budget.clone()),
        ));
    }
    if let Some(topic_arn) = &config.topic_arn {
        effects.notifiers.push(Box::new(super::sns::SnsNotifier {
            client: aws_sdk_sns::Client::new(sdk),
            topic_arn: topic_arn.clone(),
        }));
    }
    if let Some(h) = &config.hygiene {
        let what = ("SmartLead API key", crate::app::effects::HYGIENE);
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
            }) as Box<dyn crate::app::worker::EffectQueue>
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

/// The scheduled reconcile's job.
pub async fn reconcile(
    sdk: &SdkConfig,
    config: ReconcileConfig,
) -> Result<crate::app::reconcile::Scheduled, ConfigError> {
    // Needed to start (the job is nothing without it); re-read as the
    // consumer's, so a rotated key reaches a warm instance.
    let key = ssm::resolve(sdk, &config.api_key, "SmartLead API key", config.refresh).await?;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let budget = std::sync::Arc::new(DynamoBudget::new(ddb.clone(), config.table.clone()));
    Ok(crate::app::reconcile::Scheduled {
        api: Api::new(&config.api_base, "")
            .with_key(key)
            .with_budget(budget, config.per_minute),
        store: DynamoStore::new(ddb, config.table),
        queue: SqsQueue {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url: config.queue_url,
        },
        lookback_hours: config.lookback_hours,
        dedup_ttl_days: config.dedup_ttl_days,
        metrics: Metrics::from_config(&config.metrics, "reconcile"),
    })
}
