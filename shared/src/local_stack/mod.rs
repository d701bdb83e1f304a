//! The local stack's fixed names and default ports (`scripts/local.sh`,
//! `xtask local`), shared by xtask's `pipeline`, which starts it, and the operator CLI
//! (`smartlead ... --local`), which reads it; and [`Follow`], which both
//! use to follow its log files.

mod follow;
pub use follow::Follow;

/// The state table in DynamoDB Local.
pub const TABLE: &str = "smartlead-state";
/// The queue and its DLQ in moto.
pub const QUEUE: &str = "smartlead-webhooks";
pub const DLQ: &str = "smartlead-webhooks-dlq";
/// The effects queue and its DLQ in moto.
pub const EFFECTS_QUEUE: &str = "smartlead-effects";
pub const EFFECTS_DLQ: &str = "smartlead-effects-dlq";
/// Default ports on 127.0.0.1.
/// The local stack's `ClientParameterPath` (SSM in moto).
pub const CLIENT_PARAMETER_PATH: &str = "/smartlead-local/clients";
pub const DYNAMODB_PORT: u16 = 8000;
pub const MOTO_PORT: u16 = 5000;
pub const HTTP_PORT: u16 = 3000;
/// The first ingest emulator's port (further instances take the next
/// ones), how many there are, and the consumer emulator's port.
pub const INGEST_PORT: u16 = 9000;
pub const INGEST_INSTANCES: usize = 2;
pub const CONSUMER_PORT: u16 = 9100;
