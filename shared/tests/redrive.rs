//! The DLQ redrive against moto: per-entry failures of `DeleteMessageBatch`
//! are counted, not taken for success.

use smartlead::adapters::aws::redrive::{redrive, Options, Redriven};
use smartlead::aws_sdk_sqs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use test_support::store::moto;

/// Spoils the receipt handles of the first `n` entries `DeleteMessageBatch`
/// is asked to delete, so that SQS refuses those entries (and only those).
#[derive(Debug)]
struct SpoilDeletes(Arc<AtomicUsize>);

impl aws_sdk_sqs::config::Intercept for SpoilDeletes {
    fn name(&self) -> &'static str {
        "SpoilDeletes"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _: &aws_sdk_sqs::config::RuntimeComponents,
        _: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchInput;
        if let Some(input) = ctx.input_mut().downcast_mut::<DeleteMessageBatchInput>() {
            for e in input.entries.iter_mut().flatten() {
                let left = self.0.load(Ordering::SeqCst);
                if left > 0 {
                    self.0.store(left - 1, Ordering::SeqCst);
                    e.receipt_handle = format!("not-a-receipt-handle-{left}");
                }
            }
        }
        Ok(())
    }
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    test_support::store::new_queue(sqs, name).await
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    a[&A::ApproximateNumberOfMessages].parse::<usize>().unwrap()
        + a[&A::ApproximateNumberOfMessagesNotVisible]
            .parse::<usize>()
            .unwrap()
}

#[tokio::test]
async fn refused_deletes_are_reported_and_the_rest_counted_once() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let spoil = Arc::new(AtomicUsize::new(0));
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&cfg)
            .interceptor(SpoilDeletes(spoil.clone()))
            .build(),
    );
    let (q, dlq) = (queue(&sqs, "rd-queue").await, queue(&sqs, "rd-dlq").await);
    for i in 0..13 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .unwrap();
    }
    spoil.store(3, Ordering::SeqCst);
    let mut calls = 0;
    let done = redrive(&sqs, &dlq, &q, &Options::default(), |_| calls += 1)
        .await
        .unwrap();
    assert_eq!(
        done,
        Redriven {
            moved: 10,
            not_deleted: 3,
            ..Redriven::default()
        }
    );
    assert!(calls >= 2);
    // Every message was copied once; the three refused deletes are still in the DLQ.
    assert_eq!(depth(&sqs, &q).await, 13);
    assert_eq!(depth(&sqs, &dlq).await, 3);

    // A second run deletes them (and copies them again: the consumer
    // deduplicates); nothing is counted twice within a run.
    let again = redrive(&sqs, &dlq, &q, &Options::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        again,
        Redriven {
            moved: 3,
            ..Redriven::default()
        }
    );
    assert_eq!(depth(&sqs, &dlq).await, 0);
    assert_eq!(depth(&sqs, &q).await, 16);
}
