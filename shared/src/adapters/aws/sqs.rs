//! SQS: the ingest's [`Queue`] and the consumer's [`EffectQueue`].

use super::error::AwsError;
use crate::app::ingest::{Queue, QueueError};
use crate::app::worker::EffectQueue;
use crate::domain::message::OutgoingMessage;
use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};

/// SQS behind [`Queue`].
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
        within_attribute_limit(&msg)?;
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(msg.body);
        for (name, value) in msg.attributes {
            let v = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| QueueError::Send(e.into()))?;
            req = req.message_attributes(name, v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| QueueError::Send(AwsError::from_sdk("SendMessage", e).into()))?;
        out.message_id()
            .map(str::to_owned)
            .ok_or_else(|| QueueError::Send("SQS answered without a message id".into()))
    }
}

/// Groups of message indexes that fit one `SendMessageBatch` each
/// ([`super::redrive::pack`]: 10 entries, 256 KiB in all).
fn batches(msgs: &[OutgoingMessage]) -> Vec<Vec<usize>> {
    let sizes: Vec<usize> = msgs
        .iter()
        .map(|m| {
            m.body.len()
                + m.attributes
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + "String".len())
                    .sum::<usize>()
        })
        .collect();
    super::redrive::pack(&sizes)
}

/// SQS's limit of message attributes, kept here so that every test
/// through moto (which has no limit) meets it.
fn within_attribute_limit(m: &OutgoingMessage) -> Result<(), QueueError> {
    if m.attributes.len() > crate::domain::message::attr::MAX {
        return Err(QueueError::Send(
            format!(
                "{} message attributes, SQS takes at most {}",
                m.attributes.len(),
                crate::domain::message::attr::MAX
            )
            .into(),
        ));
    }
    Ok(())
}

/// One batch entry, invisible for `delay` (whole seconds, at most SQS's 15 minutes).
fn entry(
    id: usize,
    m: &OutgoingMessage,
    delay: std::time::Duration,
) -> Result<SendMessageBatchRequestEntry, QueueError> {
    within_attribute_limit(m)?;
    let delay = delay.min(crate::app::worker::MAX_SEND_DELAY).as_secs();
    let mut e = SendMessageBatchRequestEntry::builder()
        .id(id.to_string())
        .message_body(&m.body);
    if delay > 0 {
        e = e.delay_seconds(i32::try_from(delay).unwrap_or(i32::MAX));
    }
    for (name, value) in &m.attributes {
        let v = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| QueueError::Send(e.into()))?;
        e = e.message_attributes(*name, v);
    }
    e.build().map_err(|e| QueueError::Send(e.into()))
}

impl SqsQueue {
    /// One `SendMessageBatch`: the result of each of `ids` (indexes into `msgs`).
    async fn send_batch(
        &self,
        msgs: &[OutgoingMessage],
        ids: &[usize],
        delay: std::time::Duration,
    ) -> Vec<Result<(), QueueError>> {
        let entries: Result<Vec<_>, _> = ids.iter().map(|&i| entry(i, &msgs[i], delay)).collect();
        let failed = |e: &str| {
            ids.iter()
                .map(|_| Err(QueueError::Send(e.to_owned().into())))
                .collect()
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => return failed(&e.to_string()),
        };
        let out = match self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => return failed(&AwsError::from_sdk("SendMessageBatch", e).to_string()),
        };
        ids.iter()
            .map(|i| {
                let id = i.to_string();
                match out.failed().iter().find(|f| f.id() == id) {
                    Some(f) => Err(QueueError::Send(
                        format!(
                            "SendMessageBatch refused an entry: {} {}",
                            f.code(),
                            f.message().unwrap_or("")
                        )
                        .into(),
                    )),
                    None if out.successful().iter().any(|s| s.id() == id) => Ok(()),
                    None => Err(QueueError::Send(
                        "SendMessageBatch did not answer for an entry".into(),
                    )),
                }
            })
            .collect()
    }
}

#[async_trait]
impl EffectQueue for SqsQueue {
    async fn send_delayed(
        &self,
        msgs: &[OutgoingMessage],
        delay: std::time::Duration,
    ) -> Vec<Result<(), QueueError>> {
        let groups = batches(msgs);
        let sent: Vec<Vec<Result<(), QueueError>>> =
            futures::future::join_all(groups.iter().map(|ids| self.send_batch(msgs, ids, delay)))
                .await;
        let mut out: Vec<Option<Result<(), QueueError>>> = msgs.iter().map(|_| None).collect();
        for (ids, results) in groups.iter().zip(sent) {
            for (i, r) in ids.iter().zip(results) {
                out[*i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(QueueError::Send("not sent".into()))))
            .collect()
    }

    async fn delay(&self, receipts: &[(String, std::time::Duration)]) {
        for chunk in receipts.chunks(super::redrive::MAX_BATCH_ENTRIES) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (handle, d))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
                        .build()
                        .ok()
                })
                .collect();
            let r = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match r {
                Ok(o) if o.failed().is_empty() => {}
                Ok(o) => tracing::warn!(
                    failed = o.failed().len(),
                    "some effect retries keep the queue's visibility timeout"
                ),
                Err(e) => {
                    tracing::warn!(error = %AwsError::from_sdk("ChangeMessageVisibilityBatch", e), "effect retries keep the queue's visibility timeout")
                }
            }
        }
    }
}
