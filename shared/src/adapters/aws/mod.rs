//! AWS adapters: the SDK clients behind the app's traits, one file a
//! service. Each function crate's wiring (`functions/*/src`) builds its
//! service from these and its [`crate::config`] at cold start.
//!
//! Endpoints follow the SDK's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables, which is how the local stack points the functions at DynamoDB
//! Local and moto.

pub mod dynamodb;
pub mod error;
pub mod eventbridge;
pub mod redrive;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod ssm;

pub use aws_config::SdkConfig;
pub use s3::S3Blobs;
pub use sqs::SqsQueue;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use std::time::Duration;

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

/// The IAM actions behind the SDK calls each function makes, and nothing else.
pub const INGEST_IAM_ACTIONS: &[&str] = &[
    "sqs:SendMessage",
    "s3:PutObject",
    "ssm:GetParameter",
    "ssm:GetParametersByPath",
];
pub const CONSUMER_IAM_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "s3:GetObject",
    "s3:ListBucket",
    "events:PutEvents",
    "sns:Publish",
    "ssm:GetParameter",
    "sqs:SendMessage",
    "sqs:ChangeMessageVisibility",
];
