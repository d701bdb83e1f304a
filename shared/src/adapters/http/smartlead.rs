//! SmartLead's REST API, for webhook registration (the operator CLI) and
//! list hygiene (the consumer). The API key travels as the `api_key` query
//! parameter, as SmartLead requires; it never appears in an error or a log.
//!
//! Calls stay inside SmartLead's standard-tier limits (10 requests/s, 60 a
//! minute) per process, honour `429 Retry-After`, and retry 5xx and network
//! errors with backoff, all within a caller-given deadline.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const DEFAULT_BASE: &str = "https://server.smartlead.ai/api/v1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// SmartLead refused the request (4xx other than 429): retrying cannot help.
    #[error("SmartLead API answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    /// Rate limited, 5xx or unreachable, and out of time to retry.
    #[error("SmartLead API unavailable for {what}: {reason}")]
    Unavailable { what: String, reason: String },
    /// SmartLead answered 2xx in a shape this code does not know: reading
    /// it as "nothing" would hide campaigns, so it is an error (permanent).
    #[error("SmartLead API answered {what} in an unknown shape ({shape})")]
    Unexpected { what: String, shape: String },
    /// The input cannot go into a request (an id that is not a number, an
    /// address that is not an address): nothing was sent.
    #[error("refused to call the SmartLead API: {0}")]
    Invalid(String),
}

/// An id as it may appear in a URL path: digits only, so `../` or `?` in an
/// event or a flag can never reach another API path with the key attached.
pub fn path_id<'a>(what: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ApiError::Invalid(format!("{what} must be a number")))
    }
}

/// The campaigns of a `/campaigns` answer: a list, or a list under `data`
/// or `campaigns`; anything else is [`ApiError::Unexpected`].
fn campaign_list(v: Value) -> Result<Vec<Value>, ApiError> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let shape = match v {
        Value::Array(a) => return Ok(a),
        Value::Object(mut o) => match o.remove("data").or_else(|| o.remove("campaigns")) {
            Some(Value::Array(a)) => return Ok(a),
            Some(other) => format!("`data` is {}", kind(&other)),
            None => "an object without `data` or `campaigns`".to_owned(),
        },
        other => kind(&other).to_owned(),
    };
    Err(ApiError::Unexpected {
        what: "the campaign list".to_owned(),
        shape,
    })
}

/// A single mailbox `local@domain`: one `@`, a non-empty local part, a
/// domain of dot-separated labels (letters, digits, `-`) with at least one
/// dot, no white space or control characters. (`@gmail.com` is a domain,
/// not an address, and must not reach the block list.)
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[]\\,;:\"".contains(c))
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. })
    }
}

/// A client-side limit: at most `per_second` and `per_minute` requests.
#[derive(Debug)]
struct Limiter {
    per_second: usize,
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl Limiter {
    /// How long to wait before the next request may go.
    fn wait(&mut self, now: Instant) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        if self.sent.len() >= self.per_minute {
            if let Some(t) = self.sent.get(self.sent.len() - self.per_minute) {
                wait = wait.max(Duration::from_secs(60).saturating_sub(now.duration_since(*t)));
            }
        }
        if self.sent.len() >= self.per_second {
            if let Some(t) = self.sent.get(self.sent.len() - self.per_second) {
                wait = wait.max(Duration::from_secs(1).saturating_sub(now.duration_since(*t)));
            }
        }
        wait
    }
}

pub struct Api {
    http: reqwest::Client,
    /// Per request, lowered to what is left before the caller's deadline.
    timeout: Duration,
    base: String,
    key: crate::config::refresh::Refreshing<String>,
    limiter: Mutex<Limiter>,
}

/// What a webhook is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Association {
    Campaign(String),
    Client(String),
    User,
}

#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub name: String,
    pub url: String,
    pub association: Association,
    pub event_types: Vec<String>,
    pub category_ids: Vec<String>,
}

impl WebhookSpec {
    /// The body of SmartLead's create and update calls.
    pub fn body(&self) -> Value {
        let events: serde_json::Map<String, Value> = self
            .event_types
            .iter()
            .map(|e| (e.clone(), Value::Bool(true)))
            .collect();
        let mut b = json!({
            "name": self.name,
            "webhook_url": self.url,
            "event_type_map": events,
        });
        match &self.association {
            Association::Campaign(id) => {
                b["association_type"] = json!("campaign");
                b["email_campaign_id"] = json!(numeric(id));
            }
            Association::Client(id) => {
                b["association_type"] = json!("client");
                b["client_id"] = json!(numeric(id));
            }
            Association::User => b["association_type"] = json!("user"),
        }
        if !self.category_ids.is_empty() {
            let cats: serde_json::Map<String, Value> = self
                .category_ids
                .iter()
                .map(|c| (c.clone(), Value::Bool(true)))
                .collect();
            b["category_id_map"] = Value::Object(cats);
        }
        b
    }
}

impl WebhookSpec {
    /// The ids it names must be numbers.
    fn check(&self) -> Result<(), ApiError> {
        match &self.association {
            Association::Campaign(id) => path_id("the campaign id", id).map(|_| ()),
            Association::Client(id) => path_id("the client id", id).map(|_| ()),
            Association::User => Ok(()),
        }?;
        for c in &self.category_ids {
            path_id("a category id", c)?;
        }
        Ok(())
    }
}

/// Ids go out as numbers when they are numbers, as SmartLead's examples do.
fn numeric(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(id))
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api {
            // The key is in the query string: a redirect (to another host)
            // would carry it along, so none is followed (a 3xx is refused).
            http: crate::adapters::http::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            timeout: Duration::from_secs(10),
            base: base.trim_end_matches('/').to_owned(),
            key: crate::config::refresh::Refreshing::fixed(key.to_owned()),
            limiter: Mutex::new(Limiter {
                per_second: 10,
                per_minute: 60,
                sent: VecDeque::new(),
            }),
        }
    }

    /// With a key re-read from SSM now and then.
    pub fn with_key(self, key: crate::config::refresh::Refreshing<String>) -> Api {
        Api { key, ..self }
    }

    /// Lowers the client-side limits (e.g. to share the account's budget
    /// between several consumer instances).
    pub fn with_limits(self, per_second: usize, per_minute: usize) -> Api {
        Api {
            limiter: Mutex::new(Limiter {
                per_second: per_second.max(1),
                per_minute: per_minute.max(1),
                sent: VecDeque::new(),
            }),
            ..self
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        self.call_with(method, path, &[], body, deadline).await
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None, deadline).await
    }

    /// `call` with query parameters besides the key (encoded by reqwest).
    async fn call_with(
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
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if !self.pace(deadline).await {
                return Err(unavailable(
                    "client-side rate limit past the deadline".into(),
                ));
            }
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
            let retry_in = match req.send().await {
                Ok(r) => match answer(r, &what, attempt).await {
                    Attempt::Done(result) => return result,
                    Attempt::Retry(after) => after,
                },
                // reqwest's error text holds the URL, and so the key: error_text drops it.
                Err(e) if attempt >= 4 => {
                    return Err(unavailable(crate::adapters::http::error_text(e)))
                }
                Err(_) => backoff(attempt),
            };
            if attempt >= 6 || !crate::adapters::http::fits(retry_in, Duration::ZERO, deadline) {
                return Err(unavailable(format!(
                    "still failing after {attempt} attempts"
                )));
            }
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Waits for the client-side rate limit; false (without waiting) if the
    /// wait would pass the deadline.
    async fn pace(&self, deadline: Instant) -> bool {
        let wait = {
            let mut l = self.limiter.lock().await;
            let w = l.wait(Instant::now());
            l.sent.push_back(Instant::now() + w);
            w
        };
        if !crate::adapters::http::fits(wait, Duration::ZERO, deadline) {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    pub async fn create_webhook(
        &self,
        spec: &WebhookSpec,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        spec.check()?;
        let mut body = spec.body();
        body["force_create"] = json!(true);
        self.call(Method::POST, "/webhook/create", Some(&body), deadline)
            .await
    }

    pub async fn update_webhook(
        &self,
        id: &str,
        spec: &WebhookSpec,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let id = path_id("the webhook id", id)?;
        spec.check()?;
        let path = format!("/webhook/update/{id}");
        self.call(Method::PUT, &path, Some(&spec.body()), deadline)
            .await
    }

    pub async fn get_webhook(&self, id: &str, deadline: Instant) -> Result<Value, ApiError> {
        let id = path_id("the webhook id", id)?;
        self.get(&format!("/webhook/{id}"), deadline).await
    }

    /// A campaign's webhooks.
    pub async fn campaign_webhooks(
        &self,
        campaign_id: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, ApiError> {
        let campaign_id = path_id("the campaign id", campaign_id)?;
        let path = format!("/campaigns/{campaign_id}/webhooks");
        let v = self.get(&path, deadline).await?;
        Ok(match v {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("data").or_else(|| o.remove("webhooks")) {
                Some(Value::Array(a)) => a,
                _ => vec![Value::Object(o)],
            },
            _ => Vec::new(),
        })
    }

    /// The account's campaigns (`GET /campaigns`): `id`, `name`, `status`,
    /// `client_id`, ...
    pub async fn campaigns(&self, deadline: Instant) -> Result<Vec<Value>, ApiError> {
        let v = self.get("/campaigns", deadline).await?;
        campaign_list(v)
    }

    pub async fn delete_webhook(&self, id: &str, deadline: Instant) -> Result<Value, ApiError> {
        let id = path_id("the webhook id", id)?;
        let body = json!({"id": numeric(id)});
        self.call(Method::DELETE, "/webhook/delete", Some(&body), deadline)
            .await
    }

    /// One page of a campaign's statistics (`GET /campaigns/{id}/statistics`
    /// with `offset` and `limit`; SmartLead allows at most 100 a page). The
    /// answer as SmartLead gives it: [`crate::app::reconcile`] reads its shapes.
    pub async fn campaign_statistics(
        &self,
        campaign_id: &str,
        offset: usize,
        limit: usize,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let campaign_id = path_id("the campaign id", campaign_id)?;
        let (offset, limit) = (offset.to_string(), limit.clamp(1, 100).to_string());
        self.call_with(
            Method::GET,
            &format!("/campaigns/{campaign_id}/statistics"),
            &[("offset", &offset), ("limit", &limit)],
            None,
            deadline,
        )
        .await
    }

    /// A lead's message history in a campaign
    /// (`GET /campaigns/{cid}/leads/{lid}/message-history`).
    pub async fn message_history(
        &self,
        campaign_id: &str,
        lead_id: &str,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let campaign_id = path_id("the campaign id", campaign_id)?;
        let lead_id = path_id("the lead id", lead_id)?;
        let path = format!("/campaigns/{campaign_id}/leads/{lead_id}/message-history");
        self.get(&path, deadline).await
    }

    /// Unsubscribes a lead from every campaign (SmartLead's global unsubscribe).
    pub async fn unsubscribe_lead(
        &self,
        lead_id: &str,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let lead_id = path_id("the lead id", lead_id)?;
        let path = format!("/leads/{lead_id}/unsubscribe");
        self.call(Method::POST, &path, None, deadline).await
    }

    /// The SmartLead lead id of an address (`GET /leads/?email=`, which
    /// answers `{}` when there is none).
    pub async fn lead_by_email(
        &self,
        email: &str,
        deadline: Instant,
    ) -> Result<Option<String>, ApiError> {
        if !is_valid_email(email) {
            return Err(ApiError::Invalid("not a valid e-mail address".into()));
        }
        let v = self
            .call_with(Method::GET, "/leads/", &[("email", email)], None, deadline)
            .await?;
        let id = match v.get("id") {
            Some(Value::Number(n)) => n.as_u64().map(|n| n.to_string()),
            Some(Value::String(s)) => path_id("the lead id", s).ok().map(str::to_owned),
            _ => None,
        };
        Ok(id)
    }

    /// Adds e-mail addresses to the account's block list (only whole,
    /// valid addresses: the same list takes domains, which would block
    /// everyone at them).
    pub async fn block(&self, entries: &[String], deadline: Instant) -> Result<Value, ApiError> {
        if entries.is_empty() || !entries.iter().all(|e| is_valid_email(e)) {
            return Err(ApiError::Invalid(
                "the block list takes only valid e-mail addresses here".into(),
            ));
        }
        let body = json!({"domain_block_list": entries});
        let path = "/leads/add-domain-block-list";
        self.call(Method::POST, path, Some(&body), deadline).await
    }
}

/// What one answer means for the call.
enum Attempt {
    /// The call is over: SmartLead's answer, or its refusal.
    Done(Result<Value, ApiError>),
    /// Try again after this long (429, 5xx).
    Retry(Duration),
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
        429 => Attempt::Retry(retry_after.unwrap_or(Duration::from_secs(2))),
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

    #[test]
    fn a_campaign_list_in_an_unknown_shape_is_an_error_not_nothing() {
        for ok in [
            json!([{"id": 1}]),
            json!({"data": [{"id": 1}]}),
            json!({"campaigns": [{"id": 1}]}),
        ] {
            assert_eq!(campaign_list(ok).unwrap().len(), 1);
        }
        assert!(campaign_list(json!([])).unwrap().is_empty());
        for bad in [
            json!({"items": []}),
            json!({"data": {"id": 1}}),
            json!("ok"),
            json!(null),
        ] {
            let e = campaign_list(bad.clone()).unwrap_err();
            assert!(matches!(e, ApiError::Unexpected { .. }), "{bad}: {e}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn the_limiter_keeps_ten_a_second_and_sixty_a_minute() {
        let t0 = Instant::now();
        let mut l = Limiter {
            per_second: 10,
            per_minute: 60,
            sent: VecDeque::new(),
        };
        for i in 0..10 {
            assert_eq!(l.wait(t0), Duration::ZERO, "{i}");
            l.sent.push_back(t0);
        }
        assert_eq!(l.wait(t0), Duration::from_secs(1));
        // 60 spread over the minute: the 61st waits for the first to age out.
        l.sent.clear();
        for i in 0..60 {
            l.sent.push_back(t0 + Duration::from_secs(i));
        }
        let now = t0 + Duration::from_secs(60) - Duration::from_millis(1);
        assert!(l.wait(now) >= Duration::from_millis(1));
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

    #[test]
    fn ids_and_addresses_are_checked_before_they_reach_a_request() {
        assert!(path_id("x", "4711").is_ok());
        for bad in [
            "",
            "../webhook/delete",
            "1/../../x",
            "12?a=b",
            "-1",
            "1 2",
            "１２",
        ] {
            assert!(path_id("x", bad).is_err(), "{bad:?}");
        }
        for good in ["jane@acme.example", "a.b+tag@mail.acme-corp.com", "x@b.co"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "@gmail.com",
            "gmail.com",
            "a b@c.com",
            "a@b",
            "a@@b.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com ",
            "a@-b.com",
            "a\n@b.com",
            "",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn nothing_is_sent_for_a_path_built_from_bad_input() {
        let stand_in = crate::adapters::http::stand_in::ok().await;
        let api = Api::new(&format!("{}/api/v1", stand_in.uri()), "k");
        let d = Instant::now() + Duration::from_secs(5);
        let r = api.unsubscribe_lead("../webhook/delete", d).await;
        assert!(matches!(r, Err(ApiError::Invalid(_))), "{r:?}");
        assert!(api.get_webhook("1/../../leads", d).await.is_err());
        assert!(api.campaign_webhooks("1?x=", d).await.is_err());
        assert!(api.delete_webhook("abc", d).await.is_err());
        assert!(api.block(&["@gmail.com".into()], d).await.is_err());
        assert!(stand_in
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty());
        assert!(!ApiError::Invalid("x".into()).is_retryable());
    }

    #[test]
    fn webhook_bodies_follow_smartleads_examples() {
        let spec = WebhookSpec {
            name: "aws".into(),
            url: "https://x.example/webhooks/smartlead/s".into(),
            association: Association::Campaign("123".into()),
            event_types: vec!["EMAIL_REPLY".into(), "LEAD_CATEGORY_UPDATED".into()],
            category_ids: vec!["5".into()],
        };
        let b = spec.body();
        assert_eq!(b["association_type"], "campaign");
        assert_eq!(b["email_campaign_id"], 123);
        assert_eq!(b["event_type_map"]["EMAIL_REPLY"], true);
        assert_eq!(b["category_id_map"]["5"], true);
        let user = WebhookSpec {
            association: Association::User,
            category_ids: vec![],
            ..spec
        };
        assert!(user.body().get("category_id_map").is_none());
        assert_eq!(user.body()["association_type"], "user");
    }
}
