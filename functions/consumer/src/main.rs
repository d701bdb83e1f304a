//! ConsumerFunction: SQS batches in, exactly-once state in DynamoDB, failed
//! record ids out (`ReportBatchItemFailures`). All logic lives in the
//! `smartlead` library; `lib.rs` is the SQS framing, this binary wires
//! them to the Lambda runtime.
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use smartlead::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smartlead::logging::init();
    let config = smartlead::config::ConsumerConfig::from_process()?;
    let sdk = smartlead::adapters::aws::sdk_config().await;
    let consumer = Box::leak(Box::new(
        smartlead_consumer::wire::consumer(&sdk, config).await?,
    ));
    let consumer = &*consumer;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Effects are leased no longer than this invocation may run.
        let deadline_ms = i64::try_from(event.context.deadline).ok();
        Ok::<SqsBatchResponse, Error>(
            smartlead_consumer::handle(consumer, event.payload, deadline_ms).await,
        )
    }))
    .await
}
