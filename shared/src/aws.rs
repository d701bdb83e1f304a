//! AWS adapters: the SDK clients behind the narrow traits of [`crate::ingest`]
//! and [`crate::consumer`], and configuration read once at cold start.
//!
//! Endpoints follow the SDK's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables, which is how the local stack points the functions at DynamoDB
//! Local and moto.

use crate::ingest::{BlobStore, Queue, QueueError};
use crate::message::OutgoingMessage;
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::time::Duration;

/// Configuration problems found at cold start. Permanent: the function
/// cannot serve until the deployment is fixed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("could not read the webhook secret from SSM parameter {name}: {reason}")]
    Secret { name: String, reason: String },
}

pub fn env_required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing(name))
}

pub fn env_parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// The SDK loader with the given timeouts (per attempt and for the whole
/// call, retries included) and attempt count; connect timeout 2 s.
fn loader(attempt_secs: u64, total_secs: u64, attempts: u32) -> aws_config::ConfigLoader {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(attempt_secs))
        .operation_timeout(Duration::from_secs(total_secs))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
}

/// SDK configuration with timeouts well inside SmartLead's ~30 s wait:
/// connect 2 s, each attempt 3 s, the whole call (with retries) 8 s.
pub async fn sdk_config() -> SdkConfig {
    loader(3, 8, 3).load().await
}

/// S3 client; path-style addressing when `S3_FORCE_PATH_STYLE=true` (moto).
pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
    let conf = aws_sdk_s3::config::Builder::from(cfg)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// How often values read from SSM are re-read (`SECRET_REFRESH_SECONDS`,
/// default 300).
pub fn refresh_interval() -> Result<Duration, ConfigError> {
    env_parse(
        "SECRET_REFRESH_SECONDS",
        crate::refresh::DEFAULT_REFRESH.as_secs(),
    )
    .map(Duration::from_secs)
}

/// Re-reads an SSM SecureString (for [`crate::refresh::Refreshing`]).
fn ssm_loader(cfg: &SdkConfig, name: &str) -> crate::refresh::Loader<String> {
    let (cfg, name) = (cfg.clone(), name.to_owned());
    std::sync::Arc::new(move || {
        let (cfg, name) = (cfg.clone(), name.clone());
        Box::pin(async move {
            ssm_secure_string(&cfg, &name)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

/// The webhook secret(s): `WEBHOOK_SECRET` (local runs) or the SSM
/// SecureString named by `WEBHOOK_SECRET_PARAM` (deployed), each holding
/// `current` or, during a rotation, `current,next`. The parameter is re-read
/// at most every `SECRET_REFRESH_SECONDS`. An empty `WEBHOOK_SECRET` (as
/// `sam local` declares it until `--env-vars` fills it) counts as unset.
pub async fn load_secret(cfg: &SdkConfig) -> Result<crate::ingest::Secret, ConfigError> {
    if let Some(s) = env_optional("WEBHOOK_SECRET") {
        return crate::ingest::Secret::list(&s).map_err(|reason| ConfigError::Invalid {
            name: "WEBHOOK_SECRET",
            reason,
        });
    }
    let name = env_required("WEBHOOK_SECRET_PARAM")?;
    let value = ssm_secure_string(cfg, &name).await?;
    let keys = crate::ingest::parse_keys(&value).map_err(|reason| ConfigError::Secret {
        name: name.clone(),
        reason: format!("the parameter {reason}"),
    })?;
    let read = ssm_loader(cfg, &name);
    let load: crate::refresh::Loader<crate::ingest::Keys> = std::sync::Arc::new(move || {
        let read = read.clone();
        Box::pin(async move { crate::ingest::parse_keys(&read().await?) })
    });
    Ok(crate::ingest::Secret::refreshing(
        keys,
        refresh_interval()?,
        load,
    ))
}

/// An SSM parameter's decrypted value.
pub async fn ssm_secure_string(cfg: &SdkConfig, name: &str) -> Result<String, ConfigError> {
    let out = aws_sdk_ssm::Client::new(cfg)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            name: name.to_owned(),
            reason: aws_sdk_ssm::error::DisplayErrorContext(e).to_string(),
        })?;
    Ok(out
        .parameter()
        .and_then(|p| p.value())
        .unwrap_or_default()
        .to_owned())
}

/// The ingest function's configuration from its environment.
pub async fn ingest_config(cfg: &SdkConfig) -> Result<crate::ingest::IngestConfig, ConfigError> {
    use crate::ingest::*;
    let auth = match std::env::var("AUTH_METHODS") {
        Ok(v) if !v.trim().is_empty() => {
            AuthMethods::parse(&v).map_err(|reason| ConfigError::Invalid {
                name: "AUTH_METHODS",
                reason,
            })?
        }
        _ => AuthMethods::default(),
    };
    Ok(IngestConfig {
        webhook_path: std::env::var("WEBHOOK_PATH")
            .unwrap_or_else(|_| DEFAULT_WEBHOOK_PATH.to_owned()),
        secret: load_secret(cfg).await?,
        auth,
        max_body_bytes: env_parse("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
        max_inline_bytes: env_parse("MAX_INLINE_BYTES", crate::message::DEFAULT_MAX_INLINE_BYTES)?,
    })
}

/// SQS behind [`Queue`].
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(msg.body);
        for (name, value) in msg.attributes {
            let v = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| QueueError::Send(e.to_string()))?;
            req = req.message_attributes(name, v);
        }
        let out = req.send().await.map_err(|e| {
            QueueError::Send(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
        })?;
        out.message_id()
            .map(str::to_owned)
            .ok_or_else(|| QueueError::Send("SQS answered without a message id".into()))
    }
}

/// S3 behind [`BlobStore`], for claim-checked bodies.
pub struct S3Blobs {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

#[async_trait]
impl BlobStore for S3Blobs {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), QueueError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Upload(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))
    }
}

/// SDK configuration for a local stand-in at `endpoint` (moto, DynamoDB
/// Local): fixed test credentials, region us-east-1, and more patient
/// timeouts (5 s per attempt, 10 s per call, 2 attempts) for JVM and Python
/// servers on a busy 2-core machine.
pub async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    loader(5, 10, 2)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await
}

/// The consumer function's service from its environment: `TABLE_NAME`,
/// `DEDUP_TTL_DAYS` (default 100), `SCORE_WEIGHTS`, `CONCURRENCY` (default 10).
pub async fn consumer_from_env(
    cfg: &SdkConfig,
) -> Result<crate::consumer::Consumer<crate::store::DynamoStore, aws_sdk_s3::Client>, ConfigError> {
    let mut store = crate::store::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(cfg),
        env_required("TABLE_NAME")?,
    );
    let days: u64 = env_parse("DEDUP_TTL_DAYS", crate::store::DEFAULT_DEDUP_TTL_DAYS)?;
    store.dedup_ttl = Duration::from_secs(days * 86_400);
    // Messages from before an upgrade may have been applied by the
    // transactional design: its markers say so.
    store.legacy_markers = true;
    let weights = match std::env::var("SCORE_WEIGHTS") {
        Ok(v) if !v.trim().is_empty() => {
            crate::plan::ScoreWeights::parse(&v).map_err(|reason| ConfigError::Invalid {
                name: "SCORE_WEIGHTS",
                reason,
            })?
        }
        _ => crate::plan::ScoreWeights::default(),
    };
    Ok(crate::consumer::Consumer {
        store,
        blobs: Some(s3_client(cfg)),
        weights,
        concurrency: env_parse("CONCURRENCY", crate::consumer::DEFAULT_CONCURRENCY)?,
        metrics: crate::metrics::Metrics::from_env("consumer"),
        effects: effects_from_env(cfg).await?,
        time_window: crate::time::TimeWindow {
            max_past: Duration::from_secs(
                env_parse::<u64>(
                    "EVENT_TIME_MAX_PAST_DAYS",
                    crate::time::DEFAULT_MAX_PAST_DAYS,
                )?
                .saturating_mul(86_400),
            ),
            max_future: Duration::from_secs(
                env_parse::<u64>(
                    "EVENT_TIME_MAX_FUTURE_HOURS",
                    crate::time::DEFAULT_MAX_FUTURE_HOURS,
                )?
                .saturating_mul(3600),
            ),
        },
    })
}

fn env_optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A secret given directly in `local` (local runs, fixed), else read from
/// the SSM SecureString named by `param` (deployed) and re-read at most
/// every `SECRET_REFRESH_SECONDS`; `None` when neither is set.
async fn local_or_ssm(
    cfg: &SdkConfig,
    local: &str,
    param: &str,
    what: &'static str,
) -> Result<Option<crate::refresh::Refreshing<String>>, ConfigError> {
    match (env_optional(local), env_optional(param)) {
        (Some(value), _) => Ok(Some(crate::refresh::Refreshing::fixed(value))),
        (None, Some(name)) => {
            let value = ssm_secure_string(cfg, &name).await?;
            Ok(Some(crate::refresh::Refreshing::new(
                what,
                value,
                refresh_interval()?,
                ssm_loader(cfg, &name),
            )))
        }
        (None, None) => Ok(None),
    }
}

/// The consumer's side effects, each on only when configured:
/// `EVENT_BUS_NAME` (fan-out), `SLACK_WEBHOOK_PARAM` (SSM SecureString with
/// the Slack incoming-webhook URL; `SLACK_WEBHOOK_URL` locally),
/// `ALERT_TOPIC_ARN` (SNS), `ALERT_EVENTS` and `POSITIVE_CATEGORIES`;
/// `HYGIENE` (`off`, `unsubscribe`, `block`) with `SMARTLEAD_API_KEY_PARAM`
/// (SSM SecureString; `SMARTLEAD_API_KEY` locally), `HYGIENE_PER_MINUTE` and
/// `HYGIENE_SOFT_BOUNCES` (`true` to act on soft bounces too; default `false`).
pub async fn effects_from_env(cfg: &SdkConfig) -> Result<crate::effects::Effects, ConfigError> {
    use crate::effects::*;
    let mut effects = Effects {
        alerts: AlertRules::parse(
            &env_optional("ALERT_EVENTS").unwrap_or_else(|| DEFAULT_ALERT_EVENTS.into()),
            &env_optional("POSITIVE_CATEGORIES")
                .unwrap_or_else(|| DEFAULT_POSITIVE_CATEGORIES.into()),
        )
        .map_err(|reason| ConfigError::Invalid {
            name: "ALERT_EVENTS",
            reason,
        })?,
        ..Effects::default()
    };
    if let Some(bus) = env_optional("EVENT_BUS_NAME") {
        effects.publisher = Some(Box::new(EventBridgePublisher {
            client: aws_sdk_eventbridge::Client::new(cfg),
            bus,
        }));
    }
    if let Some(url) =
        local_or_ssm(cfg, "SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_PARAM", "Slack URL").await?
    {
        effects
            .notifiers
            .push(Box::new(SlackNotifier::refreshing(url)));
    }
    if let Some(topic_arn) = env_optional("ALERT_TOPIC_ARN") {
        effects.notifiers.push(Box::new(SnsNotifier {
            client: aws_sdk_sns::Client::new(cfg),
            topic_arn,
        }));
    }
    let mode = match env_optional("HYGIENE").as_deref() {
        None | Some("off") => None,
        Some("unsubscribe") => Some(HygieneMode::Unsubscribe),
        Some("block") => Some(HygieneMode::Block),
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "HYGIENE",
                reason: format!("{other:?} is not off, unsubscribe or block"),
            })
        }
    };
    if let Some(mode) = mode {
        let key = local_or_ssm(
            cfg,
            "SMARTLEAD_API_KEY",
            "SMARTLEAD_API_KEY_PARAM",
            "SmartLead API key",
        )
        .await?
        .ok_or(ConfigError::Missing("SMARTLEAD_API_KEY_PARAM"))?;
        let base =
            env_optional("SMARTLEAD_API_BASE").unwrap_or_else(|| crate::api::DEFAULT_BASE.into());
        let per_minute: usize = env_parse("HYGIENE_PER_MINUTE", 60)?;
        effects.notifiers.push(Box::new(Hygiene {
            api: crate::api::Api::new(&base, "")
                .with_key(key)
                .with_limits(10, per_minute),
            mode,
            soft_bounces: env_parse("HYGIENE_SOFT_BOUNCES", false)?,
        }));
    }
    Ok(effects)
}

/// Environment variables each function reads in AWS (template.yaml must set
/// them all; a test checks). `WEBHOOK_SECRET`, `S3_FORCE_PATH_STYLE`,
/// `METRICS_DISABLED` and the SDK's `AWS_*` are for local runs only.
pub const INGEST_ENV: &[&str] = &[
    "QUEUE_URL",
    "CLAIM_CHECK_BUCKET",
    "WEBHOOK_SECRET_PARAM",
    "WEBHOOK_PATH",
    "AUTH_METHODS",
    "MAX_BODY_BYTES",
    "MAX_INLINE_BYTES",
    "METRICS_NAMESPACE",
    "SECRET_REFRESH_SECONDS",
];
pub const CONSUMER_ENV: &[&str] = &[
    "TABLE_NAME",
    "DEDUP_TTL_DAYS",
    "SCORE_WEIGHTS",
    "CONCURRENCY",
    "METRICS_NAMESPACE",
    "EVENT_BUS_NAME",
    "SLACK_WEBHOOK_PARAM",
    "ALERT_TOPIC_ARN",
    "ALERT_EVENTS",
    "POSITIVE_CATEGORIES",
    "HYGIENE",
    "SMARTLEAD_API_KEY_PARAM",
    "HYGIENE_PER_MINUTE",
    "EVENT_TIME_MAX_PAST_DAYS",
    "EVENT_TIME_MAX_FUTURE_HOURS",
    "HYGIENE_SOFT_BOUNCES",
    "SECRET_REFRESH_SECONDS",
];
pub const LOCAL_ONLY_ENV: &[&str] = &[
    "WEBHOOK_SECRET",
    "S3_FORCE_PATH_STYLE",
    "METRICS_DISABLED",
    "SLACK_WEBHOOK_URL",
    "SMARTLEAD_API_KEY",
    "SMARTLEAD_API_BASE",
];

/// The IAM actions behind the SDK calls each function makes, and nothing else.
/// (DynamoDB authorizes `TransactWriteItems` per item as `PutItem`/`UpdateItem`.)
pub const INGEST_IAM_ACTIONS: &[&str] = &["sqs:SendMessage", "s3:PutObject", "ssm:GetParameter"];
pub const CONSUMER_IAM_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "s3:GetObject",
    "events:PutEvents",
    "sns:Publish",
    "ssm:GetParameter",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `sam local` declares `WEBHOOK_SECRET` empty unless `--env-vars` sets
    /// it: an empty one is no secret at all (the parameter is then needed),
    /// never an invalid or accept-anything secret.
    #[tokio::test]
    async fn an_empty_local_secret_counts_as_unset() {
        std::env::set_var("WEBHOOK_SECRET", "");
        std::env::remove_var("WEBHOOK_SECRET_PARAM");
        let cfg = SdkConfig::builder().build();
        let got = load_secret(&cfg).await.err().map(|e| e.to_string());
        std::env::remove_var("WEBHOOK_SECRET");
        assert_eq!(
            got.as_deref(),
            Some("environment variable WEBHOOK_SECRET_PARAM is required")
        );
    }
}
