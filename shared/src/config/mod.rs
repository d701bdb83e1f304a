//! Each function's settings, read once at cold start from its environment.
//!
//! A config is plain data (no SDK client, no secret value read from SSM
//! yet): [`IngestConfig`], [`ConsumerConfig`] and [`ReconcileConfig`] are
//! read by `from_env` through an [`Env`], which reads every variable it is
//! asked for whatever the others hold, records its name, and reports the
//! first problem when the reading is done. So the list of variables a
//! function reads is derived from the code that reads them
//! ([`IngestConfig::vars`], ...): the template test checks the template
//! sets each, nothing keeps a second list by hand. Each function crate's
//! wiring turns its config into the running service.

mod consumer;
mod env;
mod error;
mod ingest;
mod reconcile;
pub mod refresh;

pub use consumer::{ConsumerConfig, HygieneConfig};
pub use env::{Env, FromEnv, SecretSource, Vars};
pub use error::ConfigError;
pub use ingest::IngestConfig;
pub use reconcile::ReconcileConfig;

use std::time::Duration;

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
