//! How a SmartLead call failed, and whether trying again can help.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// SmartLead refused the request (4xx other than 429): retrying cannot help.
    #[error("SmartLead API answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    /// 5xx or unreachable, and out of time to retry.
    #[error("SmartLead API unavailable for {what}: {reason}")]
    Unavailable { what: String, reason: String },
    /// Rate limited (by SmartLead, or the key's budget has no slot before
    /// the deadline): nothing more was sent; try again after `after`.
    #[error("SmartLead API rate limit for {what}: retry in {}s", after.as_secs_f64().ceil())]
    Throttled { what: String, after: Duration },
    /// SmartLead answered 2xx in a shape this code does not know: reading
    /// it as "nothing" would hide campaigns, so it is an error (permanent).
    #[error("SmartLead API answered {what} in an unknown shape ({shape})")]
    Unexpected { what: String, shape: String },
    /// The input cannot go into a request (an id that is not a number, an
    /// address that is not an address): nothing was sent.
    #[error("refused to call the SmartLead API: {0}")]
    Invalid(String),
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::Throttled { .. }
        )
    }

    /// How long to wait before trying again, when SmartLead or the budget said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Throttled { after, .. } => Some(*after),
            _ => None,
        }
    }
}
