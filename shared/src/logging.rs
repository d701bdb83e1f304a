//! Function logs: one compact JSON object a line (`level`, `message`, the
//! event's fields and the current span's fields, no span list), because
//! CloudWatch bills every byte and a webhook logs in two functions.
//!
//! The level is Lambda's `AWS_LAMBDA_LOG_LEVEL` (the template's
//! `ApplicationLogLevel`), else `RUST_LOG`, else INFO. With
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (the template sets it) lines are JSON;
//! otherwise readable text.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

fn filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|l| l.to_ascii_lowercase());
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    match level {
        Some(l) => builder.parse_lossy(l),
        None => builder.from_env_lossy(),
    }
}

/// Installs the subscriber (once; later calls do nothing).
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let base = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let _ = if json {
        base.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        base.try_init()
    };
}
