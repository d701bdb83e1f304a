//! An AWS call's failure, whole: which call, what AWS answered, whether a
//! retry can help, and the SDK's error as its [`std::error::Error::source`]
//! (so nothing of it is flattened to a string on the way up).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use crate::app::store::BoxError;

/// Whether a retry can help is the caller's call (the store, the queue,
/// the effects each say it in their own error); this says what failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {summary}")]
pub struct AwsError {
    /// The API call, e.g. `UpdateItem`.
    pub operation: &'static str,
    /// AWS's error code, for a service error.
    pub code: Option<String>,
    /// The code and message, or what went wrong on the way (timeout,
    /// connection).
    pub summary: String,
    /// The SDK's error without the raw HTTP response (whose body, printed
    /// with `{:?}`, could hold a secret an answer carried).
    #[source]
    pub source: BoxError,
}

impl AwsError {
    pub fn from_sdk<E, R>(operation: &'static str, e: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let (code, summary) = match &e {
            SdkError::ServiceError(s) => {
                let err = s.err();
                let summary = format!(
                    "{}: {}",
                    err.code().unwrap_or("service error"),
                    err.message().unwrap_or_default()
                );
                (err.code().map(str::to_owned), summary)
            }
            SdkError::TimeoutError(_) => (None, "timed out".to_owned()),
            SdkError::DispatchFailure(d) => {
                let why = d.as_connector_error().map(|c| c.to_string());
                let summary = format!("could not send the request: {}", why.unwrap_or_default());
                (None, summary)
            }
            SdkError::ResponseError(_) => (None, "the answer was lost or unreadable".to_owned()),
            _ => (None, "could not build the request".to_owned()),
        };
        let source: BoxError = match e.into_source() {
            Ok(source) => source,
            Err(e) => e.to_string().into(),
        };
        AwsError {
            operation,
            code,
            summary,
            source,
        }
    }

    /// AWS's message for a service error (`None` otherwise).
    pub fn message(&self) -> Option<&str> {
        self.code
            .as_ref()
            .and_then(|_| self.summary.split_once(": ").map(|(_, m)| m))
    }
}

/// An error and its causes, by their `Display` only (`a: b: c`): unlike
/// the SDK's `DisplayErrorContext`, never the `Debug` of a raw response,
/// whose body may hold what an answer carried (message bodies, log lines).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        // Wrappers often repeat their source's text: say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_chain_is_every_cause_by_display() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner");
    }
}
