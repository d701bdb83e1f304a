//! SQS: the ingest's [`Queue`].

use super::error::AwsError;
use crate::app::ingest::{Queue, QueueError};
use crate::domain::message::OutgoingMessage;
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;

/// SQS behind [`Queue`].
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
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
