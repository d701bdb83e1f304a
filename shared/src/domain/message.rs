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
    /// A webhook message the consumer sent back to its queue (its state
    /// applied, its effects not queued): how many times it has been; on a
    /// webhook from a client's URL (nine attributes already), then after a
    /// space the effects earlier deliveries queued (`2 fanout,slack`; see
    /// [`requeued`]), which `queued` holds otherwise.
    pub const REQUEUED: &str = "requeued";
    /// The client the webhook's URL named (set by the ingest); on an
    /// alert's or hygiene call's message, the event's resolved client.
    pub const CLIENT_ID: &str = "client_id";
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
    /// A webhook the consumer sent back: the effects earlier deliveries
    /// queued (comma-separated), which its delivery does not queue again.
    pub const QUEUED: &str = "queued";
    /// What a webhook message carries besides its body (a copy the
    /// consumer sends back keeps them, and adds `requeued` and `queued`, or
    /// with `client_id` `requeued` alone: 10 at most, SQS's most).
    pub const WEBHOOK: [&str; 9] = [
        EVENT_TYPE,
        RECEIVED_AT,
        REQUEST_ID,
        BODY_SHA256,
        SOURCE_IP,
        SMARTLEAD_REQUEST_ID,
        WEBHOOK_LEVEL,
        BODY_LOCATION,
        CLIENT_ID,
    ];
    /// `requeued`'s value: the copy count and the effects queued so far.
    pub fn requeued(count: u32, queued: &[&str]) -> String {
        if queued.is_empty() {
            count.to_string()
        } else {
            format!("{count} {}", queued.join(","))
        }
    }
    /// `requeued` read back: the count (0 when absent or unreadable) and
    /// the effects it or `queued` names.
    pub fn read_requeued<'a>(
        requeued: Option<&'a str>,
        legacy_queued: Option<&'a str>,
    ) -> (u32, Vec<&'a str>) {
        let (count, queued) = requeued
            .unwrap_or_default()
            .split_once(' ')
            .map_or((requeued.unwrap_or_default(), ""), |(c, q)| (c, q));
        let names = queued
            .split(',')
            .chain(legacy_queued.unwrap_or_default().split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        (count.trim().parse().unwrap_or(0), names)
    }
    /// What an alert's or a hygiene call's effect message keeps of them:
    /// what the worker reads (the body's location, SmartLead's delivery
    /// headers), and the type and time for whoever reads the effects DLQ.
    /// With `effect`, `dedup_key`, `claim` and `client_id`, 9 of SQS's 10.
    pub const EFFECT_KEEPS: [&str; 5] = [
        EVENT_TYPE,
        RECEIVED_AT,
        SMARTLEAD_REQUEST_ID,
        WEBHOOK_LEVEL,
        BODY_LOCATION,
    ];
    /// SQS refuses a message with more message attributes than this
    /// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html>:
    /// "Each message can have up to 10 attributes"); moto does not.
    pub const MAX: usize = 10;
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

/// `text` with every character SQS refuses written as a JSON `\uXXXX`
/// escape: for JSON text (a bus event's detail), where such a character
/// can only sit inside a string, so the value is the same. Valid JSON can
/// hold U+FFFE or U+FFFF raw (serde_json writes them so).
pub fn sqs_safe_json(text: String) -> String {
    if sqs_accepts(&text) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 12);
    for c in text.chars() {
        if sqs_accepts(c.encode_utf8(&mut [0; 4])) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    out
}

/// An attribute value SQS takes: characters it refuses become U+FFFD.
pub fn sqs_safe_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if sqs_accepts(c.encode_utf8(&mut [0; 4])) {
                c
            } else {
                '\u{FFFD}'
            }
        })
        .collect()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod safe_tests {
    use super::*;

    /// SQS refuses a body or attribute with characters outside XML 1.0's
    /// set (InvalidMessageContents,
    /// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>);
    /// serde_json writes U+FFFF raw, so a bus detail can hold one.
    #[test]
    fn what_the_consumer_queues_is_what_sqs_takes_and_means_the_same() {
        let v = serde_json::json!({"preview": "odd \u{FFFF} char \u{FFFE}", "n": 1});
        let raw = v.to_string();
        assert!(!sqs_accepts(&raw), "serde_json writes it raw");
        let safe = sqs_safe_json(raw);
        assert!(sqs_accepts(&safe));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
        let key = sqs_safe_text("UNKNOWN_X\u{1}:body:abc");
        assert!(sqs_accepts(&key) && key.contains('\u{FFFD}'));
    }
}

#[cfg(test)]
mod tests {
    use super::attr;

    #[test]
    fn requeued_carries_the_count_and_the_effects_queued() {
        assert_eq!(attr::requeued(1, &[]), "1");
        let v = attr::requeued(2, &["fanout", "slack"]);
        assert_eq!(v, "2 fanout,slack");
        assert_eq!(
            attr::read_requeued(Some(&v), None),
            (2, vec!["fanout", "slack"])
        );
        // Without a client: the count alone, `queued` beside it.
        assert_eq!(
            attr::read_requeued(Some("3"), Some("sns")),
            (3, vec!["sns"])
        );
        assert_eq!(attr::read_requeued(None, None), (0, vec![]));
        assert_eq!(attr::read_requeued(Some("x y"), None), (0, vec!["y"]));
        assert!(attr::WEBHOOK.len() < attr::MAX, "a copy adds `requeued`");
    }
}
