//! The ingest function's settings.

use super::{refresh_every, s3_path_style, ConfigError, Env, FromEnv, MetricsConfig, SecretSource};
use crate::app::ingest::{AuthMethods, DEFAULT_MAX_BODY_BYTES, DEFAULT_WEBHOOK_PATH};
use std::time::Duration;

/// The ingest function's settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `QUEUE_URL`.
    pub queue_url: String,
    /// `CLAIM_CHECK_BUCKET`: bodies over `max_inline_bytes` go there.
    pub claim_check_bucket: Option<String>,
    /// `WEBHOOK_PATH` (default `/webhooks/smartlead`).
    pub webhook_path: String,
    /// `AUTH_METHODS` (see [`AuthMethods::parse`]).
    pub auth: AuthMethods,
    /// `MAX_BODY_BYTES`, `MAX_INLINE_BYTES`.
    pub max_body_bytes: usize,
    pub max_inline_bytes: usize,
    /// `WEBHOOK_SECRET` (local) or `WEBHOOK_SECRET_PARAM` (SSM), each
    /// `current` or `current,next`.
    pub secret: SecretSource,
    /// `CLIENT_PARAMETER_PATH`: an agency's deployment. Each client's own
    /// secret is the SecureString `<path>/secrets/<client id>`.
    pub clients: Option<String>,
    /// `SECRET_REFRESH_SECONDS`.
    pub refresh: Duration,
    pub metrics: MetricsConfig,
    pub s3_path_style: bool,
}

impl FromEnv for IngestConfig {
    fn fields(env: &Env) -> IngestConfig {
        let secret = env.secret_var("WEBHOOK_SECRET", "WEBHOOK_SECRET_PARAM");
        if let Some(SecretSource::Fixed(s)) = &secret {
            if let Err(reason) = crate::app::ingest::parse_keys(s) {
                env.fail(ConfigError::Invalid {
                    name: "WEBHOOK_SECRET",
                    reason,
                });
            }
        }
        let clients = env.optional_var("CLIENT_PARAMETER_PATH");
        let from_ssm = matches!(secret, Some(SecretSource::Ssm(_))) || clients.is_some();
        IngestConfig {
            queue_url: env.required_var("QUEUE_URL"),
            claim_check_bucket: env.optional_var("CLAIM_CHECK_BUCKET"),
            webhook_path: env
                .optional_var("WEBHOOK_PATH")
                .unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.to_owned()),
            auth: env.parsed_var("AUTH_METHODS", AuthMethods::default(), AuthMethods::parse),
            max_body_bytes: env.number_var("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_inline_bytes: env.number_var(
                "MAX_INLINE_BYTES",
                crate::domain::message::DEFAULT_MAX_INLINE_BYTES,
            ),
            secret: secret.unwrap_or_else(|| {
                env.fail(ConfigError::Missing("WEBHOOK_SECRET_PARAM"));
                SecretSource::Fixed(String::new())
            }),
            clients,
            refresh: env.checked_if(from_ssm, refresh_every),
            metrics: MetricsConfig::from_env(env),
            s3_path_style: s3_path_style(env),
        }
    }
}
