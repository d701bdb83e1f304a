//! The fan-out on EventBridge: `PutEvents` in chunks of at most 10 entries
//! and 256 KB, each entry's answer judged on its own (transient codes are
//! retried, a refused entry is recorded). A chunk refused whole as invalid
//! is sent again entry by entry, so one bad entry holds back no other.

use super::error::AwsError;
use crate::app::effects::{BusEvent, EffectError, Publisher, MAX_PUT_EVENTS_BYTES};
use async_trait::async_trait;

/// One failed request's error, shared by the entries it carried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Shared(#[source] std::sync::Arc<AwsError>);

/// PutEvents per-entry error codes worth a retry; every other code (a
/// validation error, a malformed detail) refuses the entry for good.
fn put_events_code_is_transient(code: &str) -> bool {
    matches!(
        code,
        "InternalFailure" | "InternalException" | "ThrottlingException" | "ServiceUnavailable"
    ) || code.starts_with("Throttl")
}

pub struct EventBridgePublisher {
    pub client: aws_sdk_eventbridge::Client,
    pub bus: String,
}

pub const SOURCE: &str = "smartlead.webhooks";

/// Groups of at most 10 entries and 256 KB, as `PutEvents` takes them.
pub fn put_events_chunks(events: &[BusEvent]) -> Vec<std::ops::Range<usize>> {
    let size = |e: &BusEvent| e.detail.len() + e.detail_type.len() + SOURCE.len() + 64;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        if i > start && (i - start == 10 || bytes + size(e) > MAX_PUT_EVENTS_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size(e);
    }
    if start < events.len() {
        out.push(start..events.len());
    }
    out
}

#[async_trait]
impl Publisher for EventBridgePublisher {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        let mut results = Vec::with_capacity(events.len());
        for range in put_events_chunks(events) {
            let chunk = &events[range];
            match self.put(chunk).await {
                // The request was refused as invalid: one bad entry must not
                // hold its chunk-mates, so each is sent again on its own.
                Err(_) if chunk.len() > 1 => results.extend(self.one_by_one(chunk).await),
                Ok(answers) => results.extend(answers),
                Err(refused) => results.push(Err(refused)),
            }
        }
        results
    }
}

impl EventBridgePublisher {
    /// Each entry of `chunk` in a request of its own. When every one is
    /// refused as invalid, no entry is to blame but the request (a bus name
    /// a deploy got wrong): all are to retry, for the fix.
    async fn one_by_one(&self, chunk: &[BusEvent]) -> Vec<Result<(), EffectError>> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut refused = 0;
        for e in chunk {
            match self.put(std::slice::from_ref(e)).await {
                Ok(one) => out.extend(one),
                Err(e) => {
                    refused += 1;
                    out.push(Err(e));
                }
            }
        }
        if refused == chunk.len() {
            out = out
                .into_iter()
                .map(|r| {
                    r.map_err(|e| match e {
                        EffectError::Permanent(cause) => EffectError::Transient(cause),
                        transient => transient,
                    })
                })
                .collect();
        }
        out
    }

    /// One `PutEvents` of `chunk`: each entry's result, or (`Err`) the
    /// request refused as invalid, for good.
    async fn put(&self, chunk: &[BusEvent]) -> Result<Vec<Result<(), EffectError>>, EffectError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let entries: Vec<PutEventsRequestEntry> = chunk
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .set_time(
                        e.time
                            .map(|t| aws_smithy_types::DateTime::from_millis(t.millis())),
                    )
                    .build()
            })
            .collect();
        let e = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                return Ok((0..chunk.len())
                    .map(|i| judge(out.entries().get(i)))
                    .collect())
            }
            Err(e) => e,
        };
        let invalid = e
            .as_service_error()
            .and_then(|s| aws_sdk_eventbridge::error::ProvideErrorMetadata::code(s))
            .is_some_and(|c| c == "ValidationException");
        // One cause, one entry's error; the others say so.
        let e = std::sync::Arc::new(AwsError::from_sdk("PutEvents", e));
        if invalid {
            return Err(EffectError::Permanent(Shared(e).into()));
        }
        Ok(chunk
            .iter()
            .map(|_| Err(EffectError::Transient(Shared(e.clone()).into())))
            .collect())
    }
}

/// One entry's answer: published, refused for good, or to retry.
fn judge(a: Option<&aws_sdk_eventbridge::types::PutEventsResultEntry>) -> Result<(), EffectError> {
    let Some(a) = a else {
        return Err(EffectError::Transient(
            "PutEvents answered fewer entries".into(),
        ));
    };
    if a.error_code().is_none() && a.event_id().is_some() {
        return Ok(());
    }
    let code = a.error_code().unwrap_or("NoEventId");
    let msg = format!("{code}: {}", a.error_message().unwrap_or_default());
    if a.error_code().is_none() || put_events_code_is_transient(code) {
        Err(EffectError::Transient(msg.into()))
    } else {
        Err(EffectError::Permanent(msg.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_ten_entries_and_256_kb() {
        let small = BusEvent {
            detail_type: "EMAIL_OPEN".into(),
            detail: "{}".into(),
            time: None,
        };
        let big = BusEvent {
            detail: "x".repeat(100 * 1024),
            ..small.clone()
        };
        let v = vec![small.clone(); 23];
        assert_eq!(put_events_chunks(&v), vec![0..10, 10..20, 20..23]);
        let v = vec![big.clone(), big.clone(), big, small];
        assert_eq!(put_events_chunks(&v), vec![0..2, 2..4]);
        assert!(put_events_chunks(&[]).is_empty());
    }
}
