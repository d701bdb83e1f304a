//! HTTPS clients for the third-party APIs (Slack, SmartLead) and the local
//! tools: reqwest on rustls with the aws-lc-rs provider the AWS SDK already
//! uses, so the binaries carry one TLS stack.

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

/// A `Retry-After` given in seconds (what Slack and SmartLead send).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}
