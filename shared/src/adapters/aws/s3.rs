//! S3: the claim check. The ingest writes a body too large for an SQS
//! message ([`S3Blobs`]); the consumer reads it back ([`BlobReader`] on the
//! SDK client).

use super::error::AwsError;
use crate::app::consumer::{BlobError, BlobReader};
use crate::app::ingest::{BlobStore, QueueError};
use async_trait::async_trait;

/// S3 client; path-style addressing when `path_style` (moto).
pub fn client(cfg: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(cfg)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// S3 behind [`BlobStore`], for claim-checked bodies.
pub struct S3Blobs {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

#[async_trait]
impl BlobStore for S3Blobs {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), QueueError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Upload(AwsError::from_sdk("PutObject", e).into()))
    }
}

/// Reads a claim-checked body. A missing object is [`BlobError::NotFound`]
/// (recorded, never retried). S3 answers a missing key with 404 only to a
/// caller that may list the bucket; to others it answers 403 AccessDenied
/// (GetObject, "Permissions":
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>).
/// So a 403 is checked by listing the key: absent from the listing, it is
/// missing; present, or the listing denied too, the 403 is a real denial
/// (transient: a permissions fix and a redrive bring the body back).
#[async_trait]
impl BlobReader for aws_sdk_s3::Client {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        let e = match self.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await;
                return bytes
                    .map(|b| b.into_bytes().to_vec())
                    .map_err(|e| BlobError::Transient(e.into()));
            }
            Err(e) => e,
        };
        let status = e.raw_response().map(|r| r.status().as_u16());
        if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
            return Err(BlobError::NotFound);
        }
        let denied = AwsError::from_sdk("GetObject", e);
        if status == Some(403) && listed(self, bucket, key).await == Some(false) {
            return Err(BlobError::NotFound);
        }
        Err(BlobError::Transient(denied.into()))
    }
}

/// Whether `key` is in `bucket`, by a listing; `None` if it failed.
async fn listed(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<bool> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(key)
        .max_keys(1)
        .send()
        .await
        .ok()?;
    Some(out.contents().iter().any(|o| o.key() == Some(key)))
}
