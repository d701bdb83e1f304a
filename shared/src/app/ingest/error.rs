//! The ingest's one failure: the queue (or the claim-check bucket) did
//! not take the webhook.

/// Failure to hand a message to the queue or a body to the blob store.
/// Always retryable from SmartLead's point of view: the answer is 503.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue send failed: {0}")]
    Send(#[source] crate::app::store::BoxError),
    #[error("claim-check upload failed: {0}")]
    Upload(#[source] crate::app::store::BoxError),
}
