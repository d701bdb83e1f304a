//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

pub mod http;

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
