//! The ingest's service from its config, at cold start: the webhook
//! secret read from SSM (and re-read), the SQS and S3 clients.

use smartlead::adapters::aws::{s3, ssm, S3Blobs, SdkConfig, SqsQueue};
use smartlead::app::ingest::{
    parse_keys, ClientKeys, ClientSecrets, Ingest, Keys, Secret, Settings,
};
use smartlead::config::refresh::{Loader, Refreshing};
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

/// An agency's clients' own secrets (`<path>/secrets/<client id>`), read
/// with the shared one at cold start and re-read as often. A parameter
/// that does not hold `current` or `current,next` is logged, and its
/// client's URL answers 503.
async fn client_secrets(sdk: &SdkConfig, config: &IngestConfig) -> ClientSecrets {
    let Some(path) = &config.clients else {
        return ClientSecrets::default();
    };
    let (sdk2, below) = (
        sdk.clone(),
        format!("{}/secrets", path.trim_end_matches('/')),
    );
    let load: Loader<ClientKeys> = std::sync::Arc::new(move || {
        let (sdk, below) = (sdk2.clone(), below.clone());
        Box::pin(async move {
            let params = ssm::parameters_below(&sdk, &below, true)
                .await
                .map_err(|e| e.to_string())?;
            let mut keys = ClientKeys::new();
            for (client, value) in params {
                if !smartlead::domain::client::valid_client_id(&client) {
                    tracing::error!(
                        client,
                        "a client secret's name is not a client id; left out"
                    );
                    continue;
                }
                let secret = Secret::list(&value)
                    .map_err(|reason| {
                        tracing::error!(client, reason, "a client's secret parameter does not read; its URL answers 503 until it does")
                    })
                    .ok();
                keys.insert(client, secret);
            }
            Ok(keys)
        })
    });
    // Until they read, their URLs answer 503; the shared one works.
    let what = "clients' webhook secrets";
    ClientSecrets::refreshing(Refreshing::read_at_start(what, config.refresh, load).await)
}

/// The ingest function's service.
pub async fn ingest(
    sdk: &SdkConfig,
    config: IngestConfig,
) -> Result<Ingest<SqsQueue, S3Blobs>, ConfigError> {
    let (secret, clients) = tokio::join!(secret(sdk, &config), client_secrets(sdk, &config));
    let settings = Settings {
        webhook_path: config.webhook_path.clone(),
        secret: secret?,
        clients,
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
