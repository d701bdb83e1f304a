//! The consumer function's settings, list hygiene's among them.

use super::{
    api_base, refresh_every, s3_path_style, smartlead_per_minute, ConfigError, Env, FromEnv,
    MetricsConfig, SecretSource,
};
use crate::app::effects::{
    AlertRules, HygieneMode, DEFAULT_ALERT_EVENTS, DEFAULT_POSITIVE_CATEGORIES,
};
use crate::domain::plan::ScoreWeights;
use crate::domain::time::TimeWindow;
use std::time::Duration;

/// List hygiene's settings (`HYGIENE` is not `off`).
#[derive(Debug, Clone)]
pub struct HygieneConfig {
    pub mode: HygieneMode,
    /// `SMARTLEAD_API_KEY` (local) or `SMARTLEAD_API_KEY_PARAM` (SSM).
    pub api_key: SecretSource,
    /// `SMARTLEAD_API_BASE` (local stand-ins).
    pub api_base: String,
    /// `SMARTLEAD_REQUESTS_PER_MINUTE` (default 60): the account's plan
    /// limit, shared by every process using the key (not per instance).
    pub per_minute: u32,
    /// `HYGIENE_SOFT_BOUNCES` (default false).
    pub soft_bounces: bool,
}

/// The consumer function's settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `TABLE_NAME`.
    pub table: String,
    /// `DEDUP_TTL_DAYS` (default 100).
    pub dedup_ttl: Duration,
    /// `SCORE_WEIGHTS`.
    pub weights: ScoreWeights,
    /// `CONCURRENCY` (default 10).
    pub concurrency: usize,
    /// `EVENT_TIME_MAX_PAST_DAYS`, `EVENT_TIME_MAX_FUTURE_HOURS`.
    pub time_window: TimeWindow,
    /// `ALERT_EVENTS`, `POSITIVE_CATEGORIES`.
    pub alerts: AlertRules,
    /// `EVENT_BUS_NAME`: fan-out on.
    pub bus: Option<String>,
    /// `SLACK_WEBHOOK_URL` (local) or `SLACK_WEBHOOK_PARAM` (SSM).
    pub slack: Option<SecretSource>,
    /// `ALERT_TOPIC_ARN`.
    pub topic_arn: Option<String>,
    /// `CLIENT_PARAMETER_PATH`: an agency's deployment. The client registry
    /// is read from the table, and clients' Slack URLs from the SSM
    /// parameters it names (below this path: the policy allows no other).
    pub clients: Option<String>,
    /// `HYGIENE` (`off`, `unsubscribe`, `block`) and its settings.
    pub hygiene: Option<HygieneConfig>,
    /// `EFFECTS_QUEUE_URL`: where effects wait to run (needed when any is on).
    pub effects_queue: Option<String>,
    /// `WEBHOOK_QUEUE_URL`: the queue this function drains; a webhook whose
    /// effects could not be queued goes back to it, delayed.
    pub webhook_queue: Option<String>,
    /// `EFFECT_RETRY_SECONDS` (default 30): a failed effect's first retry
    /// delay, doubling to an hour.
    pub effect_retry_base: Duration,
    pub refresh: Duration,
    pub metrics: MetricsConfig,
    pub s3_path_style: bool,
}

fn hygiene(env: &Env) -> Option<HygieneConfig> {
    let mode = env.parsed_var("HYGIENE", None, |v| match v {
        "off" => Ok(None),
        "unsubscribe" => Ok(Some(HygieneMode::Unsubscribe)),
        "block" => Ok(Some(HygieneMode::Block)),
        other => Err(format!("{other:?} is not off, unsubscribe or block")),
    });
    let api_key = env.secret_var("SMARTLEAD_API_KEY", "SMARTLEAD_API_KEY_PARAM");
    let api_base = api_base(env);
    let (per_minute, soft_bounces) = env.checked_if(mode.is_some(), |env| {
        (
            smartlead_per_minute(env),
            env.number_var("HYGIENE_SOFT_BOUNCES", false),
        )
    });
    let mode = mode?;
    let Some(api_key) = api_key else {
        env.fail(ConfigError::Missing("SMARTLEAD_API_KEY_PARAM"));
        return None;
    };
    Some(HygieneConfig {
        mode,
        api_key,
        api_base,
        per_minute,
        soft_bounces,
    })
}

impl FromEnv for ConsumerConfig {
    fn fields(env: &Env) -> ConsumerConfig {
        let days = |name, default: u64, unit: u64| {
            Duration::from_secs(env.number_var::<u64>(name, default).saturating_mul(unit))
        };
        let alerts = AlertRules::parse(
            &env.optional_var("ALERT_EVENTS")
                .unwrap_or_else(|| DEFAULT_ALERT_EVENTS.into()),
            &env.optional_var("POSITIVE_CATEGORIES")
                .unwrap_or_else(|| DEFAULT_POSITIVE_CATEGORIES.into()),
        )
        .unwrap_or_else(|reason| {
            env.fail(ConfigError::Invalid {
                name: "ALERT_EVENTS",
                reason,
            });
            AlertRules::default()
        });
        let slack = env.secret_var("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_PARAM");
        let hygiene = hygiene(env);
        let ssm = |s: Option<&SecretSource>| matches!(s, Some(SecretSource::Ssm(_)));
        let clients = env.optional_var("CLIENT_PARAMETER_PATH");
        let from_ssm =
            ssm(slack.as_ref()) || ssm(hygiene.as_ref().map(|h| &h.api_key)) || clients.is_some();
        let bus = env.optional_var("EVENT_BUS_NAME");
        let topic_arn = env.optional_var("ALERT_TOPIC_ARN");
        let effects_queue = env.optional_var("EFFECTS_QUEUE_URL");
        let any_effect = bus.is_some()
            || slack.is_some()
            || topic_arn.is_some()
            || hygiene.is_some()
            || clients.is_some();
        if any_effect && effects_queue.is_none() {
            env.fail(ConfigError::Missing("EFFECTS_QUEUE_URL"));
        }
        ConsumerConfig {
            table: env.required_var("TABLE_NAME"),
            dedup_ttl: days(
                "DEDUP_TTL_DAYS",
                crate::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
                86_400,
            ),
            weights: env.parsed_var(
                "SCORE_WEIGHTS",
                ScoreWeights::default(),
                ScoreWeights::parse,
            ),
            concurrency: env.number_var("CONCURRENCY", crate::app::consumer::DEFAULT_CONCURRENCY),
            time_window: TimeWindow {
                max_past: days(
                    "EVENT_TIME_MAX_PAST_DAYS",
                    crate::domain::time::DEFAULT_MAX_PAST_DAYS,
                    86_400,
                ),
                max_future: days(
                    "EVENT_TIME_MAX_FUTURE_HOURS",
                    crate::domain::time::DEFAULT_MAX_FUTURE_HOURS,
                    3600,
                ),
            },
            alerts,
            bus,
            slack,
            topic_arn,
            clients,
            hygiene,
            effects_queue,
            webhook_queue: env.optional_var("WEBHOOK_QUEUE_URL"),
            effect_retry_base: Duration::from_secs(env.number_var("EFFECT_RETRY_SECONDS", 30)),
            refresh: env.checked_if(from_ssm, refresh_every),
            metrics: MetricsConfig::from_env(env),
            s3_path_style: s3_path_style(env),
        }
    }
}
