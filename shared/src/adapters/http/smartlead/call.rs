//! One call to SmartLead's API: its slot in the key's rate budget, what
//! an answer says about the budget, retries of 5xx and network errors,
//! all within the caller's deadline.

use super::{Api, ApiError};
use crate::app::budget::Destination;
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

impl Api {
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        self.call_with(method, path, &[], body, deadline).await
    }

    pub(super) async fn get(&self, path: &str, deadline: Instant) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None, deadline).await
    }

    /// `call` with query parameters besides the key (encoded by reqwest).
    pub(super) async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let what = format!("{method} {path}");
        let unavailable = |reason: String| ApiError::Unavailable {
            what: what.clone(),
            reason,
        };
        let Some(key) = self.key.get().await else {
            return Err(unavailable(
                "the API key parameter could not be read yet".into(),
            ));
        };
        let dest = Destination::smartlead(&key, self.per_minute);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.budget
                .acquire(&dest, crate::adapters::http::latest_slot(deadline))
                .await
                .map_err(|e| match e.retry_after() {
                    Some(after) => ApiError::Throttled {
                        what: what.clone(),
                        after,
                    },
                    None => unavailable(crate::adapters::aws::error::error_chain(&e)),
                })?;
            let Some(timeout) = crate::adapters::http::timeout_until(self.timeout, deadline) else {
                return Err(unavailable("no time left before the deadline".into()));
            };
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .timeout(timeout)
                .query(&[("api_key", key.as_str())])
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            // A 429 paused the budget (`heed`): the next slot waits for it.
            let (retry_in, throttled) = match req.send().await {
                Ok(r) => {
                    self.heed(&dest, r.status().as_u16(), r.headers()).await;
                    match answer(r, &what, attempt).await {
                        Attempt::Done(result) => return result,
                        Attempt::Retry(after) => (after, None),
                        Attempt::Throttled(after) => (Duration::ZERO, Some(after)),
                    }
                }
                // reqwest's error text holds the URL, and so the key: error_text drops it.
                Err(e) if attempt >= 4 => {
                    return Err(unavailable(crate::adapters::http::error_text(e)))
                }
                Err(_) => (backoff(attempt), None),
            };
            if let (true, Some(after)) = (attempt >= 6, throttled) {
                return Err(ApiError::Throttled { what, after });
            }
            if attempt >= 6 || !crate::adapters::http::fits(retry_in, Duration::ZERO, deadline) {
                return Err(unavailable(format!(
                    "still failing after {attempt} attempts"
                )));
            }
            tokio::time::sleep(retry_in).await;
        }
    }

    /// What an answer says about the key's budget, for every process: the
    /// limit SmartLead states (`x-ratelimit-limit`, a 60-second window), a
    /// window used up (`x-ratelimit-remaining: 0` until
    /// `x-ratelimit-reset`), a 429's `Retry-After`. A budget that cannot
    /// be told is logged: the next slot fails closed if it is down.
    async fn heed(&self, dest: &Destination, status: u16, headers: &reqwest::header::HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let stated = number("x-ratelimit-limit").and_then(|l| u32::try_from(l).ok());
        if let Some(limit) = stated.filter(|l| *l > 0) {
            if let Err(e) = self.budget.stated_limit(dest, limit).await {
                tracing::warn!(error = %e, "SmartLead's stated rate limit not recorded");
            }
        }
        let now = crate::app::budget::now_ms();
        let reset = number("x-ratelimit-reset").map(|r| reset_ms(r, now));
        let until = match status {
            429 => Some(match crate::adapters::http::retry_after(headers) {
                Some(after) => now.saturating_add(after.as_millis() as i64),
                None => reset.unwrap_or(now + 2_000),
            }),
            _ if number("x-ratelimit-remaining") == Some(0) => reset,
            _ => None,
        };
        let latest = now.saturating_add(crate::adapters::http::MAX_RETRY_AFTER.as_millis() as i64);
        if let Some(until) = until.map(|u| u.min(latest)) {
            if let Err(e) = self.budget.pause(dest, until).await {
                tracing::warn!(error = %e, "SmartLead's pause not recorded in the rate budget");
            }
        }
    }
}

/// What one answer means for the call.
enum Attempt {
    /// The call is over: SmartLead's answer, or its refusal.
    Done(Result<Value, ApiError>),
    /// Try again after this long (5xx).
    Retry(Duration),
    /// Rate limited (429): try again after this long (the budget is paused).
    Throttled(Duration),
}

/// `x-ratelimit-reset` as epoch ms: SmartLead documents a Unix timestamp
/// (<https://api.smartlead.ai/guides/rate-limits>); one in milliseconds, or
/// a small number (seconds from now, as some APIs send), is read as such.
fn reset_ms(reset: i64, now_ms: i64) -> i64 {
    match reset {
        r if r >= 100_000_000_000 => r,
        r if r >= 1_000_000_000 => r.saturating_mul(1000),
        r => now_ms.saturating_add(r.max(0).saturating_mul(1000)),
    }
}

/// Reads one answer of the call `what`, its `attempt`th.
async fn answer(r: reqwest::Response, what: &str, attempt: u32) -> Attempt {
    let status = r.status().as_u16();
    let retry_after = crate::adapters::http::retry_after(r.headers());
    let text = r.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Attempt::Done(Ok(value));
    }
    match status {
        429 => Attempt::Throttled(retry_after.unwrap_or(Duration::from_secs(2))),
        500.. => Attempt::Retry(backoff(attempt)),
        _ => Attempt::Done(Err(ApiError::Refused {
            what: what.to_owned(),
            status,
            body: text.chars().take(300).collect(),
        })),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::budget::RateBudget;
    use std::sync::Arc;

    /// SmartLead states its limit and what is left of the window on its
    /// answers (`x-ratelimit-limit`, `-remaining`, `-reset`, a Unix time),
    /// and sends `Retry-After` with a 429
    /// (<https://api.smartlead.ai/reference/rate-limits>,
    /// <https://api.smartlead.ai/guides/rate-limits>).
    async fn smartlead_answering(status: u16, headers: &[(&str, String)]) -> wiremock::MockServer {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let s = MockServer::start().await;
        let mut answer = ResponseTemplate::new(status).set_body_string(r#"{"ok":true}"#);
        for (name, value) in headers {
            answer = answer.insert_header(*name, value.as_str());
        }
        Mock::given(any()).respond_with(answer).mount(&s).await;
        s
    }

    #[tokio::test]
    async fn a_used_up_window_pauses_and_a_lower_stated_limit_slows_the_budget() {
        let reset = (crate::app::budget::now_ms() / 1000 + 3).to_string();
        let headers = [
            ("x-ratelimit-limit", "30".to_owned()),
            ("x-ratelimit-remaining", "0".to_owned()),
            ("x-ratelimit-reset", reset),
        ];
        let stand_in = smartlead_answering(200, &headers).await;
        let budget = Arc::new(crate::app::budget::InProcess::default());
        let api =
            Api::new(&format!("{}/api/v1", stand_in.uri()), "k").with_budget(budget.clone(), 60);
        let far = Instant::now() + Duration::from_secs(60);
        api.get_webhook("1", far).await.expect("ok");
        // Another user of the key: nothing before the window resets (2 to
        // 3 s from now), then one call every 2078 ms (30 a minute).
        let dest = Destination::smartlead("k", 60);
        let first = budget.reserve(&dest, far).await.expect("slot");
        let second = budget.reserve(&dest, far).await.expect("slot");
        assert!(first > Duration::from_millis(1_900), "{first:?}");
        assert!(
            second >= first + Duration::from_millis(1_990),
            "{first:?} {second:?}"
        );
    }

    #[tokio::test]
    async fn a_429_past_the_deadline_is_throttled_with_its_wait_and_not_waited_for() {
        let stand_in = smartlead_answering(429, &[("retry-after", "30".to_owned())]).await;
        let api = Api::new(&format!("{}/api/v1", stand_in.uri()), "k");
        let started = Instant::now();
        let e = api
            .get_webhook("1", started + Duration::from_secs(5))
            .await
            .expect_err("throttled");
        assert!(e.is_retryable(), "{e}");
        let after = e.retry_after().expect("a wait");
        assert!(
            after > Duration::from_secs(29) && after <= Duration::from_secs(30),
            "{after:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let sent = stand_in.received_requests().await.unwrap_or_default();
        assert_eq!(sent.len(), 1, "sent again inside the pause");
    }

    #[tokio::test]
    async fn calls_stay_inside_the_deadline_and_survive_an_absurd_retry_after() {
        let stand_in = crate::adapters::http::stand_in::slow_then_throttled().await;
        let api = Api::new(&format!("{}/api/v1", stand_in.uri()), "k");
        let started = Instant::now();
        let r = api
            .get_webhook("7", started + Duration::from_millis(500))
            .await;
        assert!(r.as_ref().is_err_and(ApiError::is_retryable), "{r:?}");
        // Far sooner than the stand-in answers (8 s), however busy the machine.
        assert!(started.elapsed() < Duration::from_secs(5));
        let r = api
            .get_webhook("7", Instant::now() + Duration::from_secs(10))
            .await;
        assert!(r.as_ref().is_err_and(ApiError::is_retryable), "{r:?}");
        stand_in.verify().await;
    }

    #[test]
    fn retry_after_is_capped_and_deadlines_never_overflow() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            "18446744073709551615".parse().unwrap(),
        );
        assert_eq!(
            crate::adapters::http::retry_after(&h),
            Some(crate::adapters::http::MAX_RETRY_AFTER)
        );
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(!crate::adapters::http::fits(
            Duration::MAX,
            Duration::MAX,
            soon
        ));
        assert!(crate::adapters::http::fits(
            Duration::ZERO,
            Duration::ZERO,
            soon
        ));
        assert_eq!(
            crate::adapters::http::timeout_until(Duration::from_secs(10), Instant::now()),
            None
        );
        assert!(
            crate::adapters::http::timeout_until(Duration::from_secs(10), soon).unwrap()
                <= Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn a_rotated_api_key_is_picked_up_without_a_restart() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let stand_in = crate::adapters::http::stand_in::ok().await;
        let reads = std::sync::Arc::new(AtomicUsize::new(0));
        let r = reads.clone();
        let load: crate::config::refresh::Loader<String> = std::sync::Arc::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok("key-2".to_owned()) })
        });
        let key = crate::config::refresh::Refreshing::new(
            "SmartLead API key",
            "key-1".to_owned(),
            Duration::from_millis(100),
            load,
        );
        let api = Api::new(&format!("{}/api/v1", stand_in.uri()), "").with_key(key);
        let d = || Instant::now() + Duration::from_secs(5);
        api.get_webhook("1", d()).await.expect("ok");
        tokio::time::sleep(Duration::from_millis(150)).await;
        api.get_webhook("2", d()).await.expect("ok");
        api.get_webhook("3", d()).await.expect("ok");
        let keys: Vec<String> = stand_in
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r.url
                    .query()
                    .unwrap_or_default()
                    .rsplit('=')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(keys, ["key-1", "key-2", "key-2"]);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unreachable_api_errors_carry_neither_url_nor_key() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr").to_string();
        drop(closed);
        let api = Api::new(&format!("http://{addr}/api/v1"), "KEY-abc123");
        let err = api
            .get_webhook("7", Instant::now() + Duration::from_secs(30))
            .await
            .expect_err("nothing listens")
            .to_string();
        assert!(err.contains("connection failed"), "{err}");
        for leak in ["KEY-abc123", "api_key", addr.as_str(), "http://"] {
            assert!(!err.contains(leak), "{leak} in {err}");
        }
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_so_the_key_stays_home() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let elsewhere = crate::adapters::http::stand_in::ok().await;
        let api_host = MockServer::start().await;
        let steal = format!("{}/steal", elsewhere.uri());
        Mock::given(any())
            .respond_with(ResponseTemplate::new(302).insert_header("location", steal.as_str()))
            .mount(&api_host)
            .await;
        let api = Api::new(&format!("{}/api/v1", api_host.uri()), "KEY-abc123");
        let err = api
            .get_webhook("7", Instant::now() + Duration::from_secs(10))
            .await
            .expect_err("a redirect is refused");
        assert!(
            matches!(err, ApiError::Refused { status: 302, .. }),
            "{err}"
        );
        assert!(
            elsewhere
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "the key went to another host"
        );
    }
}
