//! Moving messages from the dead-letter queue back to the queue, with their
//! bodies and attributes unchanged (the consumer deduplicates, so a message
//! that was in fact processed is harmless).
//!
//! Each message is deleted from the DLQ only after `SendMessageBatch`
//! accepted its copy: a crash in between leaves a duplicate, never a loss.

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("SQS request failed: {0}")]
    Sqs(String),
}

fn sqs_err<E: std::error::Error + 'static>(e: E) -> RedriveError {
    RedriveError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Copied to the queue and deleted from the DLQ.
    pub moved: usize,
    /// Refused by `SendMessageBatch`: left in the DLQ (visible again after
    /// its visibility timeout).
    pub failed: usize,
}

/// Moves up to `limit` messages (all, if `None`) from `dlq_url` to
/// `queue_url`; `progress` is called with the running count.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    limit: Option<usize>,
    mut progress: impl FnMut(&Redriven),
) -> Result<Redriven, RedriveError> {
    let mut done = Redriven::default();
    loop {
        let left = limit.map_or(10, |l| l.saturating_sub(done.moved + done.failed).min(10));
        if left == 0 {
            return Ok(done);
        }
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(left as i32)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(sqs_err)?;
        let msgs = received.messages.unwrap_or_default();
        if msgs.is_empty() {
            return Ok(done);
        }
        let mut entries = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let attrs: HashMap<String, MessageAttributeValue> =
                m.message_attributes.clone().unwrap_or_default();
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body().unwrap_or_default())
                .set_message_attributes((!attrs.is_empty()).then_some(attrs))
                .build()
                .map_err(sqs_err)?;
            entries.push(entry);
        }
        let sent = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sqs_err)?;
        let ok: Vec<usize> = sent
            .successful
            .iter()
            .filter_map(|s| s.id.parse().ok())
            .collect();
        done.failed += msgs.len() - ok.len();
        let deletes: Vec<DeleteMessageBatchRequestEntry> = ok
            .iter()
            .filter_map(|&i| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(msgs[i].receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if !deletes.is_empty() {
            sqs.delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(sqs_err)?;
        }
        done.moved += ok.len();
        progress(&done);
    }
}
