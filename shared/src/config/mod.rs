//! Each function's settings, read once at cold start from its environment.
//!
//! A config is plain data (no SDK client, no secret value read from SSM
//! yet): [`IngestConfig`], [`ConsumerConfig`] and [`ReconcileConfig`] are
//! read by `from_env` through an [`Env`], which reads every variable it is
//! asked for whatever the others hold, records its name, and reports the
//! first problem when the reading is done. So the list of variables a
//! function reads is derived from the code that reads them
//! ([`IngestConfig::vars`], ...): the template test checks the template
//! sets each, nothing keeps a second list by hand. `adapters::aws::wire`
//! turns a config into the running service.

pub mod refresh;

use crate::app::effects::{
    AlertRules, HygieneMode, DEFAULT_ALERT_EVENTS, DEFAULT_POSITIVE_CATEGORIES,
};
use crate::app::ingest::{AuthMethods, DEFAULT_MAX_BODY_BYTES, DEFAULT_WEBHOOK_PATH};
use crate::domain::plan::ScoreWeights;
use crate::domain::time::TimeWindow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// Configuration problems found at cold start. Permanent: the function
/// cannot serve until the deployment is fixed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("the secret in SSM parameter {name} is unusable: {reason}")]
    Secret { name: String, reason: String },
    #[error("could not read SSM parameter {name}: {source}")]
    Ssm {
        name: String,
        #[source]
        source: crate::adapters::aws::error::AwsError,
    },
}

/// Where a secret comes from: given directly (local runs) or the name of
/// an SSM SecureString (deployed). Its `Debug` never shows a fixed value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Fixed(String),
    Ssm(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Fixed(_) => f.write_str("Fixed(..)"),
            SecretSource::Ssm(name) => write!(f, "Ssm({name:?})"),
        }
    }
}

/// The variables a config reads: in AWS (the template sets them) and for
/// local runs only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vars {
    pub deployed: Vec<&'static str>,
    pub local_only: Vec<&'static str>,
}

/// Reads variables from the process environment (or given pairs, in tests).
/// A blank value counts as unset (`sam local` declares variables empty).
#[derive(Default)]
pub struct Env {
    pairs: Option<HashMap<String, String>>,
    read: RefCell<Vars>,
    error: RefCell<Option<ConfigError>>,
    /// Reading values that are not used (see [`Env::checked_if`]).
    unused: std::cell::Cell<bool>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env::default()
    }

    /// Only `pairs` (tests, and [`Vars`] derivation with none).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env {
            pairs: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Env::default()
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        let v = match &self.pairs {
            Some(p) => p.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn record(&self, name: &'static str, local: bool) {
        let mut read = self.read.borrow_mut();
        let list = if local {
            &mut read.local_only
        } else {
            &mut read.deployed
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }

    /// Keeps the first problem; reading goes on.
    pub fn fail(&self, e: ConfigError) {
        if !self.unused.get() {
            self.error.borrow_mut().get_or_insert(e);
        }
    }

    /// `read` when its values are used (`on`); otherwise its variables are
    /// still recorded but a problem in them is no problem: a feature that
    /// is off must not keep the function from starting.
    pub fn checked_if<T>(&self, on: bool, read: impl FnOnce(&Env) -> T) -> T {
        let before = self.unused.replace(self.unused.get() || !on);
        let v = read(self);
        self.unused.set(before);
        v
    }

    /// A variable the template sets (or may leave unset).
    pub fn optional_var(&self, name: &'static str) -> Option<String> {
        self.record(name, false);
        self.raw(name)
    }

    /// A variable only local runs set.
    pub fn local_var(&self, name: &'static str) -> Option<String> {
        self.record(name, true);
        self.raw(name)
    }

    /// A variable that must be set (empty, and the problem kept, if not).
    pub fn required_var(&self, name: &'static str) -> String {
        self.optional_var(name).unwrap_or_else(|| {
            self.fail(ConfigError::Missing(name));
            String::new()
        })
    }

    /// `name` parsed with `parse`, `default` when unset (or invalid: the
    /// problem is kept).
    pub fn parsed_var<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.optional_var(name) {
            None => default,
            Some(v) => parse(&v).unwrap_or_else(|reason| {
                self.fail(ConfigError::Invalid { name, reason });
                default
            }),
        }
    }

    /// `name` through [`std::str::FromStr`], `default` when unset.
    pub fn number_var<T: std::str::FromStr>(&self, name: &'static str, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.parsed_var(name, default, |v| {
            v.parse().map_err(|e: T::Err| e.to_string())
        })
    }

    /// A secret given directly in `local` (local runs), else the SSM
    /// parameter named by `param`; `None` when neither is set.
    pub fn secret_var(&self, local: &'static str, param: &'static str) -> Option<SecretSource> {
        let fixed = self.local_var(local).map(SecretSource::Fixed);
        let ssm = self.optional_var(param).map(SecretSource::Ssm);
        fixed.or(ssm)
    }

    /// The config read, or the first problem met.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// The variables `read` asks for (read from an empty environment).
    pub fn vars_of<T>(read: impl FnOnce(&Env) -> T) -> Vars {
        let env = Env::from_pairs(&[]);
        read(&env);
        env.read.into_inner()
    }
}

/// A config read from the environment through an [`Env`].
pub trait FromEnv: Sized {
    /// Reads every field (problems are kept in `env`).
    fn fields(env: &Env) -> Self;

    /// The settings in `env`, or its first problem.
    fn from_env(env: Env) -> Result<Self, ConfigError> {
        let c = Self::fields(&env);
        env.finish(c)
    }

    /// The process environment's settings.
    fn from_process() -> Result<Self, ConfigError> {
        Self::from_env(Env::process())
    }

    /// The variables read (derived by reading an empty environment).
    fn vars() -> Vars {
        Env::vars_of(Self::fields)
    }
}

/// How often values read from SSM are re-read (`SECRET_REFRESH_SECONDS`,
/// default 300).
fn refresh_every(env: &Env) -> Duration {
    Duration::from_secs(
        env.number_var("SECRET_REFRESH_SECONDS", refresh::DEFAULT_REFRESH.as_secs()),
    )
}

/// `METRICS_NAMESPACE` (the template sets the stack's own,
/// [`crate::metrics::stack_namespace`]; default `SmartleadWebhooks`); `METRICS_DISABLED`
/// (`1`/`true`, local runs) writes no metric lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub namespace: String,
    pub disabled: bool,
}

impl MetricsConfig {
    pub fn from_env(env: &Env) -> MetricsConfig {
        MetricsConfig {
            namespace: env
                .optional_var("METRICS_NAMESPACE")
                .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned()),
            disabled: env
                .local_var("METRICS_DISABLED")
                .is_some_and(|v| v == "1" || v == "true"),
        }
    }
}

/// `S3_FORCE_PATH_STYLE=true` (moto): path-style S3 addressing.
fn s3_path_style(env: &Env) -> bool {
    env.local_var("S3_FORCE_PATH_STYLE")
        .is_some_and(|v| v == "true" || v == "1")
}

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
        let from_ssm = matches!(secret, Some(SecretSource::Ssm(_)));
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
            refresh: env.checked_if(from_ssm, refresh_every),
            metrics: MetricsConfig::from_env(env),
            s3_path_style: s3_path_style(env),
        }
    }
}

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

/// `SMARTLEAD_REQUESTS_PER_MINUTE`: the plan's limit (see
/// [`crate::adapters::http::smartlead::DEFAULT_PER_MINUTE`]).
fn smartlead_per_minute(env: &Env) -> u32 {
    env.number_var(
        "SMARTLEAD_REQUESTS_PER_MINUTE",
        crate::adapters::http::smartlead::DEFAULT_PER_MINUTE,
    )
}

fn api_base(env: &Env) -> String {
    env.local_var("SMARTLEAD_API_BASE")
        .unwrap_or_else(|| crate::adapters::http::smartlead::DEFAULT_BASE.to_owned())
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
    /// `HYGIENE` (`off`, `unsubscribe`, `block`) and its settings.
    pub hygiene: Option<HygieneConfig>,
    /// `EFFECTS_QUEUE_URL`: where effects wait to run (needed when any is on).
    pub effects_queue: Option<String>,
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
        let from_ssm = ssm(slack.as_ref()) || ssm(hygiene.as_ref().map(|h| &h.api_key));
        let bus = env.optional_var("EVENT_BUS_NAME");
        let topic_arn = env.optional_var("ALERT_TOPIC_ARN");
        let effects_queue = env.optional_var("EFFECTS_QUEUE_URL");
        let any_effect =
            bus.is_some() || slack.is_some() || topic_arn.is_some() || hygiene.is_some();
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
            hygiene,
            effects_queue,
            effect_retry_base: Duration::from_secs(env.number_var("EFFECT_RETRY_SECONDS", 30)),
            refresh: env.checked_if(from_ssm, refresh_every),
            metrics: MetricsConfig::from_env(env),
            s3_path_style: s3_path_style(env),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sam local` declares `WEBHOOK_SECRET` empty unless `--env-vars` sets
    /// it: an empty one is no secret at all (the parameter is then needed),
    /// never an invalid or accept-anything secret.
    #[test]
    fn an_empty_local_secret_counts_as_unset() {
        let env = Env::from_pairs(&[("WEBHOOK_SECRET", ""), ("QUEUE_URL", "q")]);
        let got = IngestConfig::from_env(env);
        assert_eq!(
            got.err().map(|e| e.to_string()).as_deref(),
            Some("environment variable WEBHOOK_SECRET_PARAM is required")
        );
    }

    #[test]
    fn every_variable_is_read_whatever_the_others_hold() {
        let v = ConsumerConfig::vars();
        for name in [
            "TABLE_NAME",
            "SMARTLEAD_REQUESTS_PER_MINUTE",
            "SMARTLEAD_API_KEY_PARAM",
            "SLACK_WEBHOOK_PARAM",
            "METRICS_NAMESPACE",
        ] {
            assert!(v.deployed.contains(&name), "{name} not derived: {v:?}");
        }
        for name in ["SLACK_WEBHOOK_URL", "SMARTLEAD_API_KEY", "METRICS_DISABLED"] {
            assert!(v.local_only.contains(&name), "{name} not local: {v:?}");
        }
        assert!(IngestConfig::vars()
            .deployed
            .contains(&"CLAIM_CHECK_BUCKET"));
        assert!(ReconcileConfig::vars().deployed.contains(&"LOOKBACK_HOURS"));
    }

    /// A value only a switched-off feature uses (a CloudFormation `Number`
    /// such as `1.5` for `SmartleadRequestsPerMinute`) keeps no function from starting.
    #[test]
    fn a_feature_that_is_off_does_not_check_its_values() {
        let off = [
            ("TABLE_NAME", "t"),
            ("HYGIENE", "off"),
            ("SMARTLEAD_REQUESTS_PER_MINUTE", "1.5"),
            ("HYGIENE_SOFT_BOUNCES", "maybe"),
            ("SECRET_REFRESH_SECONDS", "soon"),
        ];
        assert!(ConsumerConfig::from_env(Env::from_pairs(&off)).is_ok());
        let mut on = off.to_vec();
        on[1] = ("HYGIENE", "block");
        on.push(("SMARTLEAD_API_KEY_PARAM", "/p"));
        let err = ConsumerConfig::from_env(Env::from_pairs(&on)).unwrap_err();
        assert!(
            err.to_string().contains("SMARTLEAD_REQUESTS_PER_MINUTE"),
            "{err}"
        );
        // A secret given directly is never re-read: its refresh is unused.
        let local = [
            ("QUEUE_URL", "q"),
            ("WEBHOOK_SECRET", "s3cret"),
            ("SECRET_REFRESH_SECONDS", "soon"),
        ];
        assert!(IngestConfig::from_env(Env::from_pairs(&local)).is_ok());
        let deployed = [
            ("QUEUE_URL", "q"),
            ("WEBHOOK_SECRET_PARAM", "/p"),
            ("SECRET_REFRESH_SECONDS", "soon"),
        ];
        assert!(IngestConfig::from_env(Env::from_pairs(&deployed)).is_err());
        // Whatever is on, every variable is still listed.
        assert!(ConsumerConfig::vars()
            .deployed
            .contains(&"SMARTLEAD_REQUESTS_PER_MINUTE"));
    }

    #[test]
    fn problems_are_reported_and_a_fixed_secret_is_never_printed() {
        let env = Env::from_pairs(&[("TABLE_NAME", "t"), ("HYGIENE", "sometimes")]);
        let got = ConsumerConfig::from_env(env);
        assert!(got.unwrap_err().to_string().contains("HYGIENE"));
        let s = format!("{:?}", SecretSource::Fixed("hunter2".into()));
        assert!(!s.contains("hunter2"));
    }
}
