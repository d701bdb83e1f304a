//! The SmartLead webhook pipeline's library: every piece of logic the two
//! Lambda functions and the developer tools share.
//!
//! - [`event`]: the forgiving, lossless event model, the normalized view
//!   ([`normalize`]) and idempotency keys ([`key`]).
//! - [`ingest`]: the webhook front door (auth, minimal checks, queueing).
//! - [`consumer`]: exactly-once processing of queued events into DynamoDB.

pub mod event;
pub mod key;
pub mod lenient;
pub mod message;
pub mod normalize;
pub mod time;
pub mod tolerant;

pub use event::{EventData, EventError, EventType, Normalized, SmartleadEvent};
pub use key::DedupKey;

pub mod absorbed;
pub mod api;
pub mod aws;
pub mod consumer;
pub mod effects;
pub mod http;
pub mod ingest;
pub mod local_stack;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod redrive;
pub mod refresh;
pub mod shape;
pub mod store;

// Re-exported so the function crates use the same SDK versions.
pub use aws_sdk_dynamodb;
pub use aws_sdk_s3;
pub use aws_sdk_sqs;
