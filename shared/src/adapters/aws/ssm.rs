//! SSM Parameter Store: the secrets (webhook secret, Slack URL, SmartLead
//! API key) as SecureStrings, read at cold start and re-read now and then
//! ([`crate::config::refresh`]). The ingest's webhook secret and the
//! reconcile's API key are needed to start; the consumer's optional
//! integrations' ([`optional`]) are not.

use crate::config::refresh::{Loader, Refreshing};
use crate::config::{ConfigError, SecretSource};
use crate::metrics::{Metrics, Unit};
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

/// [`loader`] counting each failed read as `SecretReadFailures` by `Effect`.
pub fn counted_loader(
    cfg: &SdkConfig,
    name: &str,
    effect: &'static str,
    metrics: &Metrics,
) -> Loader<String> {
    let (read, metrics) = (loader(cfg, name), metrics.clone());
    std::sync::Arc::new(move || {
        let (read, metrics) = (read.clone(), metrics.clone());
        Box::pin(async move {
            let r = read().await;
            if r.is_err() {
                metrics.emit(
                    &[("Effect", effect)],
                    &[("SecretReadFailures", 1.0, Unit::Count)],
                );
            }
            r
        })
    })
}

/// An optional integration's secret (the consumer's Slack URL, hygiene's
/// API key): as [`resolve`], but a parameter that cannot be read (missing,
/// denied, throttled: GetParameter allows 40 requests a second per account
/// and region by default, and every cold start reads it) does not stop the
/// cold start, so the state of every event is still applied. The value
/// stays unread and is read again with backoff ([`Refreshing::unread`]);
/// meanwhile the integration's effects fail as transient (retried by SQS).
/// Every failed read counts `SecretReadFailures` by `Effect`.
pub async fn optional(
    cfg: &SdkConfig,
    source: &SecretSource,
    (what, effect): (&'static str, &'static str),
    every: Duration,
    metrics: &Metrics,
) -> Refreshing<String> {
    let name = match source {
        SecretSource::Fixed(value) => return Refreshing::fixed(value.clone()),
        SecretSource::Ssm(name) => name,
    };
    let load = counted_loader(cfg, name, effect, metrics);
    Refreshing::read_at_start(what, every, load).await
}

/// The SecureStrings directly below `path`: each one's last name segment
/// and value (decrypted with `decrypt`, else as stored), over every page
/// (GetParametersByPath returns at most 10 a call).
pub async fn parameters_below(
    cfg: &SdkConfig,
    path: &str,
    decrypt: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let client = aws_sdk_ssm::Client::new(cfg);
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .get_parameters_by_path()
            .path(path)
            .recursive(false)
            .with_decryption(decrypt)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| ConfigError::Ssm {
                name: path.to_owned(),
                source: super::error::AwsError::from_sdk("GetParametersByPath", e),
            })?;
        for p in page.parameters() {
            let (Some(name), Some(value)) = (p.name(), p.value()) else {
                continue;
            };
            let last = name.rsplit('/').next().unwrap_or(name);
            out.push((last.to_owned(), value.to_owned()));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}
