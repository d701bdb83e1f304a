//! IngestFunction: SmartLead webhooks in, SQS messages out. All logic lives
//! in the `smartlead` library; this binary wires it to the Lambda runtime.
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    smartlead::logging::init();
    let svc: &'static smartlead_ingest::AwsIngest =
        Box::leak(Box::new(smartlead_ingest::from_env().await?));
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(smartlead_ingest::respond(svc, req).await)
    }))
    .await
}
