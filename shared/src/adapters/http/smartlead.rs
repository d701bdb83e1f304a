//! SmartLead's REST API, for webhook registration (the operator CLI) and
//! list hygiene (the consumer). The API key travels as the `api_key` query
//! parameter, as SmartLead requires; it never appears in an error or a log.
//!
//! Every call takes its slot in the key's rate budget
//! ([`crate::app::budget`]), shared by every process using the key (the
//! plan's limit a minute, lowered by SmartLead's `x-ratelimit-limit`); a
//! window SmartLead says is used up (`x-ratelimit-remaining: 0`) or a
//! `429 Retry-After` pauses the budget for every process. 5xx and network
//! errors are retried with backoff. All within a caller-given deadline:
//! a slot past it is [`ApiError::Throttled`], with the wait.

use crate::app::budget::{Destination, RateBudget};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The standard plan's limit: 60 requests a minute per API key, across
/// every endpoint (<https://api.smartlead.ai/reference/rate-limits>).
pub const DEFAULT_PER_MINUTE: u32 = 60;

pub struct Api {
    http: reqwest::Client,
    /// Per request, lowered to what is left before the caller's deadline.
    timeout: Duration,
    base: String,
    key: crate::config::refresh::Refreshing<String>,
    /// The key's rate budget, shared with the other processes using it.
    budget: Arc<dyn RateBudget>,
    /// The plan's limit, requests a minute.
    per_minute: u32,
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
            budget: Arc::new(crate::app::budget::InProcess::default()),
            per_minute: DEFAULT_PER_MINUTE,
        }
    }

    /// With a key re-read from SSM now and then.
    pub fn with_key(self, key: crate::config::refresh::Refreshing<String>) -> Api {
        Api { key, ..self }
    }

    /// Paced by `budget` (shared with the other processes calling with
    /// the key) at the plan's `per_minute`, instead of alone at 60.
    pub fn with_budget(self, budget: Arc<dyn RateBudget>, per_minute: u32) -> Api {
        Api {
            budget,
            per_minute,
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
