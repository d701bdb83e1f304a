//! The reconcile function's job from its config, at cold start: the
//! SmartLead API key read from SSM (and re-read), the store, the queue
//! its backfills go to.
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use smartlead::adapters::aws::dynamodb::{budget::DynamoBudget, DynamoStore};
use smartlead::adapters::aws::{ssm, SdkConfig, SqsQueue};
use smartlead::adapters::http::smartlead::Api;
use smartlead::app::reconcile::Scheduled;
use smartlead::config::{ConfigError, ReconcileConfig};
use smartlead::metrics::Metrics;

/// The scheduled reconcile's job.
pub async fn wire(sdk: &SdkConfig, config: ReconcileConfig) -> Result<Scheduled, ConfigError> {
    // Needed to start (the job is nothing without it); re-read as the
    // consumer's, so a rotated key reaches a warm instance.
    let key = ssm::resolve(sdk, &config.api_key, "SmartLead API key", config.refresh).await?;
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(sdk);
    let budget = std::sync::Arc::new(DynamoBudget::new(ddb.clone(), config.table.clone()));
    Ok(Scheduled {
        api: Api::new(&config.api_base, "")
            .with_key(key)
            .with_budget(budget, config.per_minute),
        store: DynamoStore::new(ddb, config.table),
        queue: SqsQueue {
            client: smartlead::aws_sdk_sqs::Client::new(sdk),
            queue_url: config.queue_url,
        },
        lookback_hours: config.lookback_hours,
        dedup_ttl_days: config.dedup_ttl_days,
        metrics: Metrics::from_config(&config.metrics, "reconcile"),
    })
}
