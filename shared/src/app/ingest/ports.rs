//! What the ingest hands a webhook to: the queue, and the blob store for
//! bodies too large for it (the claim check).

use super::QueueError;
use crate::domain::message::OutgoingMessage;
use async_trait::async_trait;

/// Sends a message; returns the queue's message id once it is stored.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError>;
}

/// Stores a raw body too large for the queue.
#[async_trait]
pub trait BlobStore: Send + Sync {
    fn bucket(&self) -> &str;
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), QueueError>;
}
