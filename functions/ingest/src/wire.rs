//! The ingest's service from its config, at cold start: the webhook
//! secret read from SSM (and re-read), the SQS and S3 clients.

use smartlead::adapters::aws::{s3, ssm, S3Blobs, SdkConfig, SqsQueue};
use smartlead::app::ingest::{parse_keys, Ingest, Keys, Secret, Settings};
use smartlead::config::refresh::Loader;
use smartlead::config::{ConfigError, IngestConfig, SecretSource};
use smartlead::metrics::Metrics;

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
            client: smartlead::aws_sdk_sqs::Client::new(sdk),
            queue_url: config.queue_url,
        },
        blobs: config.claim_check_bucket.map(|bucket| S3Blobs {
            client: s3::client(sdk, config.s3_path_style),
            bucket,
        }),
        metrics: Metrics::from_config(&config.metrics, "ingest"),
    })
}
