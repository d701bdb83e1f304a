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

mod call;
mod error;
mod input;
mod webhook;

pub use error::ApiError;
pub use input::{is_valid_email, path_id};
pub use webhook::{Association, WebhookSpec};

use crate::app::budget::RateBudget;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook::numeric;

pub const DEFAULT_BASE: &str = "https://server.smartlead.ai/api/v1";

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

    /// An agency's clients (`GET /client/`): `id`, `name`, `email`, ...
    pub async fn clients(&self, deadline: Instant) -> Result<Vec<Value>, ApiError> {
        let v = self.get("/client/", deadline).await?;
        match v {
            Value::Array(a) => Ok(a),
            Value::Object(mut o) => match o.remove("data").or_else(|| o.remove("clients")) {
                Some(Value::Array(a)) => Ok(a),
                _ => Err(ApiError::Unexpected {
                    what: "the client list".to_owned(),
                    shape: "an object without a `data` or `clients` list".to_owned(),
                }),
            },
            _ => Err(ApiError::Unexpected {
                what: "the client list".to_owned(),
                shape: "neither a list nor an object".to_owned(),
            }),
        }
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
}
