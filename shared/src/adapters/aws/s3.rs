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

#[async_trait]
impl BlobReader for aws_sdk_s3::Client {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        match self.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .map_err(|e| BlobError::Transient(e.into())),
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Err(BlobError::NotFound)
                } else {
                    Err(BlobError::Transient(
                        AwsError::from_sdk("GetObject", e).into(),
                    ))
                }
            }
        }
    }
}
