//! The fan-out on EventBridge: `PutEvents` in chunks of at most 10 entries
//! and 256 KB, each entry's answer judged on its own (transient codes are
//! retried, a refused entry is recorded).

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
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let mut results = Vec::with_capacity(events.len());
        for range in put_events_chunks(events) {
            let chunk = &events[range];
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
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let answers = out.entries();
                    for i in 0..chunk.len() {
                        results.push(match answers.get(i) {
                            Some(a) if a.error_code().is_none() && a.event_id().is_some() => Ok(()),
                            Some(a) => {
                                let code = a.error_code().unwrap_or("NoEventId");
                                let msg =
                                    format!("{code}: {}", a.error_message().unwrap_or_default());
                                if a.error_code().is_none() || put_events_code_is_transient(code) {
                                    Err(EffectError::Transient(msg.into()))
                                } else {
                                    Err(EffectError::Permanent(msg.into()))
                                }
                            }
                            None => Err(EffectError::Transient(
                                "PutEvents answered fewer entries".into(),
                            )),
                        });
                    }
                }
                Err(e) => {
                    // A request refused as invalid (its size, an entry) is
                    // refused for good when it held one entry: retrying the
                    // same entry cannot help. With several, each is sent
                    // again and judged on its own.
                    let invalid = e
                        .as_service_error()
                        .and_then(|s| aws_sdk_eventbridge::error::ProvideErrorMetadata::code(s))
                        .is_some_and(|c| c == "ValidationException");
                    // One cause, one entry's error; the others say so.
                    let e = std::sync::Arc::new(AwsError::from_sdk("PutEvents", e));
                    results.extend(chunk.iter().map(|_| {
                        let cause = Shared(e.clone()).into();
                        if invalid && chunk.len() == 1 {
                            Err(EffectError::Permanent(cause))
                        } else {
                            Err(EffectError::Transient(cause))
                        }
                    }));
                }
            }
        }
        results
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
