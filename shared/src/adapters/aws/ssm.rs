//! SSM Parameter Store: the secrets (webhook secret, Slack URL, SmartLead
//! API key) as SecureStrings, read at cold start and re-read now and then
//! ([`crate::config::refresh`]).

use crate::config::refresh::{Loader, Refreshing};
use crate::config::{ConfigError, SecretSource};
use aws_config::SdkConfig;
use std::time::Duration;

/// An SSM parameter's decrypted value.
pub async fn secure_string(cfg: &SdkConfig, name: &str) -> Result<String, ConfigError> {
    let out = aws_sdk_ssm::Client::new(cfg)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ConfigError::Ssm {
            name: name.to_owned(),
            source: super::error::AwsError::from_sdk("GetParameter", e),
        })?;
    Ok(out
        .parameter()
        .and_then(|p| p.value())
        .unwrap_or_default()
        .to_owned())
}

/// Re-reads an SSM SecureString (for [`Refreshing`]).
pub fn loader(cfg: &SdkConfig, name: &str) -> Loader<String> {
    let (cfg, name) = (cfg.clone(), name.to_owned());
    std::sync::Arc::new(move || {
        let (cfg, name) = (cfg.clone(), name.clone());
        Box::pin(async move { secure_string(&cfg, &name).await.map_err(|e| e.to_string()) })
    })
}

/// A secret's value: fixed (local runs), or read from SSM now and re-read
/// at most every `every`.
pub async fn resolve(
    cfg: &SdkConfig,
    source: &SecretSource,
    what: &'static str,
    every: Duration,
) -> Result<Refreshing<String>, ConfigError> {
    match source {
        SecretSource::Fixed(value) => Ok(Refreshing::fixed(value.clone())),
        SecretSource::Ssm(name) => {
            let value = secure_string(cfg, name).await?;
            Ok(Refreshing::new(what, value, every, loader(cfg, name)))
        }
    }
}
