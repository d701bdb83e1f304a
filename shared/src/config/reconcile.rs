//! The scheduled reconcile's settings.

use super::{
    api_base, refresh_every, smartlead_per_minute, ConfigError, Env, FromEnv, MetricsConfig,
    SecretSource,
};
use std::time::Duration;

/// The scheduled reconcile's settings.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// `TABLE_NAME`, `QUEUE_URL`.
    pub table: String,
    pub queue_url: String,
    /// `SMARTLEAD_API_KEY` (local) or `SMARTLEAD_API_KEY_PARAM` (SSM).
    pub api_key: SecretSource,
    pub api_base: String,
    /// `SMARTLEAD_REQUESTS_PER_MINUTE`, as the consumer's.
    pub per_minute: u32,
    /// `LOOKBACK_HOURS` (default 48).
    pub lookback_hours: u64,
    /// `DEDUP_TTL_DAYS` (default 100).
    pub dedup_ttl_days: u64,
    /// `SECRET_REFRESH_SECONDS`: the API key is re-read as the consumer's.
    pub refresh: Duration,
    pub metrics: MetricsConfig,
}

impl FromEnv for ReconcileConfig {
    fn fields(env: &Env) -> ReconcileConfig {
        let api_key = env
            .secret_var("SMARTLEAD_API_KEY", "SMARTLEAD_API_KEY_PARAM")
            .unwrap_or_else(|| {
                env.fail(ConfigError::Missing("SMARTLEAD_API_KEY_PARAM"));
                SecretSource::Fixed(String::new())
            });
        let from_ssm = matches!(api_key, SecretSource::Ssm(_));
        ReconcileConfig {
            table: env.required_var("TABLE_NAME"),
            queue_url: env.required_var("QUEUE_URL"),
            api_key,
            api_base: api_base(env),
            per_minute: smartlead_per_minute(env),
            lookback_hours: env.number_var("LOOKBACK_HOURS", 48),
            dedup_ttl_days: env.number_var(
                "DEDUP_TTL_DAYS",
                crate::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
            ),
            refresh: env.checked_if(from_ssm, refresh_every),
            metrics: MetricsConfig::from_env(env),
        }
    }
}
