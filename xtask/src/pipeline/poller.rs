//! The poller: what the SQS event source mapping does for the consumer.

use crate::pipeline::{Pool, Stack, EFFECTS_QUEUE, QUEUE};
use anyhow::Result;
use serde_json::{json, Value};
use smartlead::aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

/// What one poll did.
#[derive(Debug, Default)]
pub struct Poll {
    pub received: usize,
    /// Message ids the consumer finished (processed, duplicate or rejected):
    /// deleted from the queue.
    pub done: Vec<String>,
    /// When the consumer's answer came back (the records' state is stored).
    pub answered_at: Option<std::time::Instant>,
    /// The invoke failed as a whole: nothing deleted, all come back.
    pub invoke_failed: bool,
}

/// An SQS event record of queue `name` as the Lambda event source mapping builds it.
fn sqs_event_record(name: &str, m: &smartlead::aws_sdk_sqs::types::Message) -> Value {
    let arn = format!("arn:aws:sqs:us-east-1:000000000000:{name}");
    test_support::event_json(&test_support::sqs_message_from(&arn, m))
}

/// One poll, as the SQS event source mapping does it: receive up to `batch`
/// messages, invoke the consumer, delete the successes (all but
/// `batchItemFailures`; none if the invoke failed as a whole).
pub async fn poll_once(stack: &Stack, consumer: &Pool, batch: i32, wait_secs: i32) -> Result<Poll> {
    poll_queue(
        &stack.sqs,
        consumer,
        (&stack.queue_url, QUEUE),
        batch,
        wait_secs,
    )
    .await
}

/// [`poll_once`] of the effects queue: the consumer's second event source.
pub async fn poll_effects(
    stack: &Stack,
    consumer: &Pool,
    batch: i32,
    wait_secs: i32,
) -> Result<Poll> {
    let queue = (stack.effects_queue_url.as_str(), EFFECTS_QUEUE);
    poll_queue(&stack.sqs, consumer, queue, batch, wait_secs).await
}

/// One poll of the queue (URL, name) through `sqs`.
pub async fn poll_queue(
    sqs: &smartlead::aws_sdk_sqs::Client,
    consumer: &Pool,
    (queue_url, name): (&str, &str),
    batch: i32,
    wait_secs: i32,
) -> Result<Poll> {
    let r = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(batch)
        .wait_time_seconds(wait_secs)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let msgs = r.messages.unwrap_or_default();
    if msgs.is_empty() {
        return Ok(Poll::default());
    }
    let records: Vec<Value> = msgs.iter().map(|m| sqs_event_record(name, m)).collect();
    let out = consumer.invoke(&json!({"Records": records})).await;
    let answered_at = Some(std::time::Instant::now());
    let Some(failures) = out
        .as_ref()
        .and_then(|o| o.get("batchItemFailures"))
        .and_then(Value::as_array)
    else {
        return Ok(Poll {
            received: msgs.len(),
            done: Vec::new(),
            answered_at,
            invoke_failed: true,
        });
    };
    let failed: Vec<&str> = failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    let done: Vec<&smartlead::aws_sdk_sqs::types::Message> = msgs
        .iter()
        .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
        .collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = done
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(Poll {
        received: msgs.len(),
        done: done
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect(),
        answered_at,
        invoke_failed: false,
    })
}

/// The queue's visible and in-flight messages; a delayed one (a webhook
/// the consumer sent back) counts as in flight.
pub async fn depth(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> Result<(String, String)> {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let g = |k: QueueAttributeName| a.get(&k).cloned().unwrap_or_else(|| "?".into());
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok());
    let not_visible = match (
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    ) {
        (Some(f), Some(d)) => (f + d).to_string(),
        _ => g(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    };
    Ok((
        g(QueueAttributeName::ApproximateNumberOfMessages),
        not_visible,
    ))
}
