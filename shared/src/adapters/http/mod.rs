//! HTTPS clients for the third-party APIs (Slack, SmartLead) and the local
//! tools: reqwest on rustls with the aws-lc-rs provider the AWS SDK already
//! uses, so the binaries carry one TLS stack.

pub mod hygiene;
pub mod slack;
pub mod smartlead;

/// A client builder with the process's rustls provider installed.
pub fn builder() -> reqwest::ClientBuilder {
    // Installing twice is harmless: the second attempt reports the first.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
}

/// A client with defaults.
pub fn client() -> reqwest::Client {
    builder().build().unwrap_or_default()
}

/// The longest `Retry-After` taken at its word; larger values are capped
/// (they only mean "not in this invocation").
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A `Retry-After` given in seconds (what Slack and SmartLead send), capped
/// at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| std::time::Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// What a rate budget's slot must leave of a call's time: a later slot is
/// not taken (the call is put off, not started to be cut short).
pub const MIN_REQUEST_TIME: std::time::Duration = std::time::Duration::from_millis(200);

/// The latest slot a call ending by `deadline` takes ([`MIN_REQUEST_TIME`]).
pub fn latest_slot(deadline: std::time::Instant) -> std::time::Instant {
    deadline.checked_sub(MIN_REQUEST_TIME).unwrap_or(deadline)
}

/// Whether waiting `wait` (plus `margin`) from now still ends before
/// `deadline`; never overflows.
pub fn fits(
    wait: std::time::Duration,
    margin: std::time::Duration,
    deadline: std::time::Instant,
) -> bool {
    wait.checked_add(margin)
        .and_then(|w| std::time::Instant::now().checked_add(w))
        .is_some_and(|end| end < deadline)
}

/// The timeout for one request: the configured one, or less when the
/// deadline is nearer; `None` once the deadline has passed.
pub fn timeout_until(
    configured: std::time::Duration,
    deadline: std::time::Instant,
) -> Option<std::time::Duration> {
    let left = deadline.checked_duration_since(std::time::Instant::now())?;
    (!left.is_zero()).then(|| configured.min(left))
}

/// What went wrong with a request, without the URL it was for: a Slack
/// incoming-webhook URL is a credential and SmartLead's API key travels in
/// the query, and reqwest's error text says `for url (...)`. Every reqwest
/// error goes through here before it is formatted.
pub fn error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else if e.is_request() {
        "sending the request failed"
    } else {
        "request failed"
    };
    let mut text = format!("{kind} ({e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text.push(')');
    text
}

/// HTTP stand-ins for the unit tests of the HTTPS adapters, on `wiremock`.
#[cfg(test)]
pub(crate) mod stand_in {
    use std::time::Duration;
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A server answering every request 200 `{"ok":true}`.
    pub async fn ok() -> MockServer {
        let s = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"ok":true}"#))
            .mount(&s)
            .await;
        s
    }

    /// A server whose first answer takes 8 s and whose later ones are 429
    /// with `Retry-After: u64::MAX` (it must neither wait nor overflow).
    pub async fn slow_then_throttled() -> MockServer {
        let s = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string(r#"{"ok":true}"#)
                    .set_delay(Duration::from_secs(8)),
            )
            .up_to_n_times(1)
            .expect(1)
            .with_priority(1)
            .mount(&s)
            .await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", u64::MAX.to_string().as_str()),
            )
            .with_priority(2)
            .mount(&s)
            .await;
        s
    }
}
