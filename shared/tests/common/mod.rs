//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

pub mod bus;
pub mod http;
pub mod sqs;

// Not every test binary that includes this module uses them.
#[allow(unused_imports)]
pub use test_support::fixtures;
#[allow(unused_imports)]
pub use test_support::store::*;

/// Log lines as a subscriber writes them (`with_writer(move || w.clone())`).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// What was written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// JSON log lines up to `level` for this thread, as the functions write
/// them (`smartlead::logging::init` with AWS_LAMBDA_LOG_FORMAT=JSON: event
/// fields flattened, the current span, no time), captured; `spans` adds
/// every span and the target.
pub fn json_logs(
    level: tracing::Level,
    spans: bool,
) -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(spans)
        .with_target(spans)
        .without_time()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

pub fn payload(name: &str) -> String {
    test_support::fixture("payloads", name)
}

/// `AWS_ENDPOINT_URL_<SERVICE>` as the SDK reads it from a function's
/// environment (in the test process, whose environment is shared).
#[derive(Debug)]
struct ServiceEndpoints(Vec<(&'static str, String)>);

impl aws_types::service_config::LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        self.0
            .iter()
            .find(|(service, _)| service.eq_ignore_ascii_case(key.service_id()))
            .map(|(_, url)| url.clone())
    }
}

/// The SDK configuration of a function whose environment sets
/// `AWS_ENDPOINT_URL=<default>` and `AWS_ENDPOINT_URL_<SERVICE>` for each of
/// `services` (service ids such as `SSM`, `SQS`), as the local stack points
/// the functions at DynamoDB Local and moto.
pub async fn sdk_with_endpoints(
    default: &str,
    services: &[(&'static str, String)],
) -> smartlead::adapters::aws::SdkConfig {
    let mut b = smartlead::adapters::aws::local_sdk_config(default)
        .await
        .into_builder();
    // Set as from the environment, not in code: a service's own wins.
    b.insert_origin(
        "endpoint_url",
        aws_types::origin::Origin::shared_environment_variable(),
    );
    b.set_service_config(Some(ServiceEndpoints(services.to_vec())));
    b.build()
}
