//! The SmartLead webhook pipeline's library: every piece of logic the
//! Lambda functions and the developer tools share, in three layers (see
//! ARCHITECTURE.md):
//!
//! - [`domain`]: the event model, normalized view, idempotency keys, event
//!   times and the plan of what an event does. Pure: no SDK types, no I/O.
//! - [`app`]: the use cases: the webhook front door ([`app::ingest`]),
//!   exactly-once processing of a batch ([`app::consumer`]), the effect
//!   rules ([`app::effects`]) and the reconciliation ([`app::reconcile`]).
//!   They talk to the outside through the traits they define (ports).
//! - [`adapters`]: those traits on AWS (`aws/{sqs,s3,dynamodb,eventbridge,sns,ssm}`)
//!   and over HTTPS (`http/{slack,smartlead}`).
//!
//! [`config`] reads each function's settings from its environment;
//! [`metrics`] and [`logging`] are the functions' telemetry.
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod local_stack;
pub mod logging;
pub mod metrics;

pub use domain::event::{EventData, EventError, EventType, Normalized, SmartleadEvent};
pub use domain::key::DedupKey;

// Re-exported so the function crates use the same SDK versions.
pub use aws_sdk_dynamodb;
pub use aws_sdk_eventbridge;
pub use aws_sdk_s3;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;
