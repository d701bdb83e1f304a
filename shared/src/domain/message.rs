//! The queue message contract between the ingest and consumer functions.
//!
//! The SQS message body is the webhook body byte for byte. When the body is
//! too large for SQS (or holds characters SQS refuses), the raw body is put in
//! S3 and the message body is a small [`ClaimCheck`] pointer instead, marked
//! by the attribute [`attr::BODY_LOCATION`] = `s3`.

use serde::{Deserialize, Serialize};

/// Message attribute names.
pub mod attr {
    /// Canonical SmartLead event type (as found by the ingest probe).
    pub const EVENT_TYPE: &str = "event_type";
    /// When the ingest function accepted the webhook (RFC 3339, UTC).
    pub const RECEIVED_AT: &str = "received_at";
    /// API Gateway / Function URL request id.
    pub const REQUEST_ID: &str = "request_id";
    /// Lower-case hex SHA-256 of the raw webhook body.
    pub const BODY_SHA256: &str = "body_sha256";
    /// The caller's IP address as API Gateway saw it.
    pub const SOURCE_IP: &str = "source_ip";
    /// SmartLead's id of the event, from its `X-Request-Id` header (the same
    /// on every retry of one event): the consumer's idempotency key basis.
    pub const SMARTLEAD_REQUEST_ID: &str = "smartlead_request_id";
    /// SmartLead's `X-Webhook-Level` header: `user`, `client` or `campaign`.
    pub const WEBHOOK_LEVEL: &str = "webhook_level";
    /// `inline` (the message body is the webhook) or `s3` (a claim check).
    pub const BODY_LOCATION: &str = "body_location";
    /// Effect messages only (the effects queue, set by the consumer): the
    /// effect to run (`fanout`, `slack`, `sns`, `hygiene`).
    pub const EFFECT: &str = "effect";
    /// Effect messages: the event's dedup key.
    pub const DEDUP_KEY: &str = "dedup_key";
    /// Effect messages: `true` when the worker claims the effect in the
    /// ledger first (a fan-out whose mark could not ride on its item).
    pub const CLAIM: &str = "claim";
    /// Fan-out messages: the bus event's detail-type and time.
    pub const DETAIL_TYPE: &str = "detail_type";
    pub const EVENT_TIME: &str = "event_time";
    /// What a webhook message carries besides its body: an alert's effect
    /// message keeps them.
    pub const WEBHOOK: [&str; 8] = [
        EVENT_TYPE,
        RECEIVED_AT,
        REQUEST_ID,
        BODY_SHA256,
        SOURCE_IP,
        SMARTLEAD_REQUEST_ID,
        WEBHOOK_LEVEL,
        BODY_LOCATION,
    ];
}

pub const LOCATION_INLINE: &str = "inline";
pub const LOCATION_S3: &str = "s3";

/// SQS's limit on a message (body plus attributes) that this pipeline plans for.
/// SQS accepts up to 1 MiB in current regions; 256 KiB is the limit everywhere,
/// including older stand-ins, and is the default.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 256 * 1024 - 2 * 1024;

/// A pointer to a raw body stored in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCheck {
    pub bucket: String,
    pub key: String,
    /// Byte length of the stored body.
    pub size: u64,
    /// Hex SHA-256 of the stored body; the consumer verifies it.
    pub sha256: String,
}

/// The body of a claim-check message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCheckMessage {
    pub claim_check: ClaimCheck,
}

/// A message as the ingest function hands it to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The SQS message body: the raw webhook, or a claim-check pointer.
    pub body: String,
    /// String attributes, name and value.
    pub attributes: Vec<(&'static str, String)>,
}

/// SQS accepts only these characters in a message body (XML 1.0's set):
/// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
/// Valid JSON can still hold U+FFFE or U+FFFF unescaped; such bodies go by
/// claim check rather than being refused.
pub fn sqs_accepts(body: &str) -> bool {
    body.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    })
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
