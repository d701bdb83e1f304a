//! How an effect failed: transient (tried again, after a wait when one
//! was said) or permanent.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// Worth retrying (the record goes back to SQS).
    #[error("{0}")]
    Transient(#[source] crate::app::store::BoxError),
    /// Retrying cannot help (the API refused it): logged, counted, not retried.
    #[error("{0}")]
    Permanent(#[source] crate::app::store::BoxError),
}

/// "Not before `after`": the API throttled, or the destination's rate
/// budget has no slot before the deadline. Carried as the cause of
/// [`EffectError::Transient`] ([`EffectError::later`]), read back by
/// [`EffectError::retry_after`] (the delay before the record is tried again).
#[derive(Debug, thiserror::Error)]
#[error("{reason} (retry in {}s)", after.as_secs_f64().ceil())]
pub struct RetryLater {
    pub after: Duration,
    pub reason: String,
}

impl EffectError {
    /// A transient failure that should be tried again no sooner than `after`.
    pub fn later(after: Duration, reason: impl Into<String>) -> EffectError {
        EffectError::Transient(Box::new(RetryLater {
            after,
            reason: reason.into(),
        }))
    }

    /// How long to wait before trying again, when the failure said (a
    /// [`RetryLater`] anywhere in a transient error's causes).
    pub fn retry_after(&self) -> Option<Duration> {
        let EffectError::Transient(e) = self else {
            return None;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(cause) = next {
            if let Some(later) = cause.downcast_ref::<RetryLater>() {
                return Some(later.after);
            }
            next = cause.source();
        }
        None
    }
}

impl EffectError {
    /// The same outcome again, for each effect a shared call stood for.
    pub fn copied(&self) -> EffectError {
        match self {
            EffectError::Permanent(e) => EffectError::Permanent(e.to_string().into()),
            e => match e.retry_after() {
                Some(after) => EffectError::later(after, e.to_string()),
                None => EffectError::Transient(e.to_string().into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_later_is_found_among_a_transient_errors_causes() {
        let after = Duration::from_millis(1500);
        let e = EffectError::later(after, "Slack rate limit");
        assert_eq!(e.retry_after(), Some(after));
        assert_eq!(e.to_string(), "Slack rate limit (retry in 2s)");
        #[derive(Debug, thiserror::Error)]
        #[error("hygiene")]
        struct Wrapper(#[source] RetryLater);
        let wrapped = Wrapper(RetryLater {
            after,
            reason: "budget".into(),
        });
        assert_eq!(
            EffectError::Transient(wrapped.into()).retry_after(),
            Some(after)
        );
        assert_eq!(EffectError::Transient("down".into()).retry_after(), None);
        let refused = EffectError::Permanent(Box::new(RetryLater {
            after,
            reason: "x".into(),
        }));
        assert_eq!(refused.retry_after(), None);
    }
}
