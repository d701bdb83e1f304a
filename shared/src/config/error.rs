//! What keeps a function from starting: a variable missing or invalid, a
//! secret unusable or unreadable.

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
