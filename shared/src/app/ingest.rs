//! The webhook front door: authenticate, check the minimum, queue the raw
//! body, answer. HTTP framing stays in the ingest function; this module sees
//! a plain [`IngestRequest`] and returns an [`IngestResponse`].
//!
//! Its answers, one per situation, are tabled in `docs/ingest.md` ("Ingest answers").
//!
//! A 4xx tells SmartLead not to retry; a 503 tells it to send again. The
//! function answers 200 only after SQS has the message.

mod auth;
mod error;
mod ports;

pub use auth::{
    client_url, parse_keys, percent_decode, webhook_url, AuthMethods, ClientKeys, ClientSecrets,
    Key, Keys, Secret,
};
pub use error::QueueError;
pub use ports::{BlobStore, Queue};

use crate::domain::event::{probe, EventError, EventType};
use crate::domain::message::{
    attr, sha256_hex, ClaimCheck, ClaimCheckMessage, OutgoingMessage, LOCATION_INLINE, LOCATION_S3,
};
use crate::metrics::{Metrics, Unit};

/// Default hard cap on a webhook body: Lambda's synchronous request limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
pub const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/smartlead";

#[derive(Debug, Clone)]
pub struct Settings {
    /// The webhook route, e.g. `/webhooks/smartlead`.
    pub webhook_path: String,
    pub secret: Secret,
    /// An agency's clients' own secrets, for the URLs that name a client.
    pub clients: ClientSecrets,
    pub auth: AuthMethods,
    /// Hard cap; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest message body sent inline; larger ones go by claim check.
    pub max_inline_bytes: usize,
}

/// What the HTTP layer extracted from a request.
#[derive(Debug, Clone)]
pub struct IngestRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query_token: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// SmartLead's `X-Request-Id` (its id of the event) and `X-Webhook-Level`,
    /// passed on to the consumer as message attributes when usable.
    pub smartlead_request_id: Option<&'a str>,
    pub webhook_level: Option<&'a str>,
    /// The body as received, after any base64 transfer encoding was undone.
    pub body: &'a [u8],
    pub request_id: &'a str,
    pub source_ip: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl IngestResponse {
    fn error(status: u16, msg: &str) -> IngestResponse {
        IngestResponse {
            status,
            body: serde_json::json!({ "error": msg }).to_string(),
            headers: vec![("content-type", "application/json")],
        }
    }

    /// 503 with `Retry-After: 5`: SmartLead sends it again.
    fn retry() -> IngestResponse {
        let mut resp = IngestResponse::error(503, "temporarily unavailable, please retry");
        resp.headers.push(("retry-after", "5"));
        resp
    }
}

/// Why a request was turned away (metric dimension `Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NotFound,
    MethodNotAllowed,
    TooLarge,
    Unauthorized,
    InvalidUtf8,
    Invalid(&'static str),
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::TooLarge => "payload_too_large",
            Rejection::Unauthorized => "unauthorized",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::Invalid(code) => code,
        }
    }
}

/// The ingest service: configuration plus the queue and blob store, built
/// once at cold start.
pub struct Ingest<Q, B> {
    pub config: Settings,
    pub queue: Q,
    pub blobs: Option<B>,
    pub metrics: Metrics,
}

enum Route<'a> {
    Webhook {
        /// The client the URL names (`<path>/client/<id>[/<token>]`).
        client: Option<&'a str>,
        path_token: Option<&'a str>,
    },
    Other,
}

/// The webhook and the secret that authenticates it.
struct Caller<'a> {
    client: Option<&'a str>,
    path_token: Option<&'a str>,
    secret: Secret,
}

impl<Q: Queue, B: BlobStore> Ingest<Q, B> {
    fn route<'a>(&self, path: &'a str) -> Route<'a> {
        let base = self.config.webhook_path.trim_end_matches('/');
        if path.trim_end_matches('/') == base {
            return Route::Webhook {
                client: None,
                path_token: None,
            };
        }
        // The token is everything after the base: API Gateway's HTTP API
        // decodes the path before the function sees it, so a secret's `/`
        // (sent as `%2F`) arrives as a `/`.
        let token = match path
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(token) if !token.trim_end_matches('/').is_empty() => token,
            _ => return Route::Other,
        };
        // A client's URL in an agency's stack; the shared secret in the
        // path wins over it (a secret could begin with `client/`).
        let client_route = token.strip_prefix("client/").filter(|_| {
            self.config.clients.enabled()
                && !(self.config.auth.path && self.config.secret.matches_path_token(token))
        });
        match client_route {
            Some(rest) => {
                let (id, token) = rest.split_once('/').unwrap_or((rest, ""));
                if !crate::domain::client::valid_client_id(id) {
                    return Route::Other;
                }
                let token = Some(token).filter(|t| !t.trim_end_matches('/').is_empty());
                Route::Webhook {
                    client: Some(id),
                    path_token: token,
                }
            }
            _ => Route::Webhook {
                client: None,
                path_token: Some(token),
            },
        }
    }

    fn reject(
        &self,
        r: Rejection,
        event_type: Option<&EventType>,
        request_id: &str,
    ) -> IngestResponse {
        let (status, msg): (u16, String) = match r {
            Rejection::NotFound => (404, "not found".into()),
            Rejection::MethodNotAllowed => (405, "method not allowed".into()),
            Rejection::TooLarge => (413, "payload too large".into()),
            Rejection::Unauthorized => (401, "unauthorized".into()),
            Rejection::InvalidUtf8 => (400, "body is not valid UTF-8".into()),
            Rejection::Invalid(_) => unreachable!("invalid bodies carry their own message"),
        };
        self.rejected(r, status, &msg, event_type, request_id)
    }

    fn rejected(
        &self,
        r: Rejection,
        status: u16,
        msg: &str,
        event_type: Option<&EventType>,
        request_id: &str,
    ) -> IngestResponse {
        let et = event_type.map(EventType::metric_name).unwrap_or("NONE");
        tracing::warn!(
            request_id,
            status,
            reason = r.code(),
            event_type = et,
            outcome = "rejected",
            "webhook rejected"
        );
        self.metrics.count("Rejected", &[("Reason", r.code())]);
        let mut resp = IngestResponse::error(status, msg);
        if status == 405 {
            resp.headers.push(("allow", "POST"));
        }
        resp
    }

    fn authorized_without_body(&self, req: &IngestRequest<'_>, c: &Caller<'_>) -> bool {
        let a = self.config.auth;
        let s = &c.secret;
        (a.path && c.path_token.is_some_and(|t| s.matches_path_token(t)))
            || (a.query && req.query_token.is_some_and(|t| s.matches_query_token(t)))
            || (a.signature
                && req
                    .signature
                    .is_some_and(|h| s.matches_signature(h, req.body)))
    }

    pub async fn handle(&self, req: IngestRequest<'_>) -> IngestResponse {
        self.config.secret.refresh_if_due().await;
        let caller = match self.caller(&req).await {
            Ok(c) => c,
            Err(refused) => return refused,
        };
        let (text, et) = match self.admit(&req, &caller) {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        match self.enqueue(&req, caller.client, text, &et).await {
            Ok((id, location)) => self.queued(&req, &id, location, &et),
            Err(e) => self.unavailable(&req, &et, &e),
        }
    }

    /// The route and the secret that authenticates it: at a client's URL,
    /// the client's own secret, else the shared one.
    async fn caller<'r>(&self, req: &IngestRequest<'r>) -> Result<Caller<'r>, IngestResponse> {
        let (client, path_token) = match self.route(req.path) {
            Route::Webhook { client, path_token } => (client, path_token),
            Route::Other => return Err(self.reject(Rejection::NotFound, None, req.request_id)),
        };
        let shared = &self.config.secret;
        let secret = match client {
            None => shared.clone(),
            Some(id) => match self.config.clients.for_client(id, shared).await {
                Some(s) => s,
                None => {
                    tracing::error!(
                        request_id = req.request_id,
                        client_id = id,
                        outcome = "unavailable",
                        "the client's secret is not readable (not read yet, or malformed); answering 503 so SmartLead retries"
                    );
                    self.metrics.count("ClientSecretsUnread", &[]);
                    return Err(IngestResponse::retry());
                }
            },
        };
        Ok(Caller {
            client,
            path_token,
            secret,
        })
    }

    /// The checks before a webhook is queued: route, method, size, secret,
    /// UTF-8, a JSON object with an event type. The body as text and its
    /// type, or the answer that refuses it.
    fn admit<'r>(
        &self,
        req: &IngestRequest<'r>,
        c: &Caller<'_>,
    ) -> Result<(&'r str, EventType), IngestResponse> {
        let path_token = c.path_token;
        // A path below the webhook path with several segments is only the
        // webhook when it is the secret (decoded `%2F`); otherwise not found.
        if path_token.is_some_and(|t| {
            t.trim_end_matches('/').contains('/')
                && !(self.config.auth.path && c.secret.matches_path_token(t))
        }) {
            return Err(self.reject(Rejection::NotFound, None, req.request_id));
        }
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(self.reject(Rejection::MethodNotAllowed, None, req.request_id));
        }
        if req.body.len() > self.config.max_body_bytes {
            return Err(self.reject(Rejection::TooLarge, None, req.request_id));
        }
        let pre_authorized = self.authorized_without_body(req, c);
        // Without body auth nothing in the body can authorize: answer before
        // reading it (no UTF-8 check, no JSON scan for strangers).
        if !pre_authorized && !self.config.auth.body {
            return Err(self.reject(Rejection::Unauthorized, None, req.request_id));
        }
        // Until the caller is known, a bad body gets the same 401 as a bad secret.
        let text = match std::str::from_utf8(req.body) {
            Ok(t) => t,
            Err(_) if pre_authorized => {
                return Err(self.reject(Rejection::InvalidUtf8, None, req.request_id))
            }
            Err(_) => return Err(self.reject(Rejection::Unauthorized, None, req.request_id)),
        };
        #[cfg(test)]
        tests::PROBES.with(|p| p.set(p.get() + 1));
        let probe = match probe(req.body) {
            Ok(p) => p,
            Err(e) if pre_authorized => return Err(self.invalid(&e, req.request_id)),
            Err(_) => return Err(self.reject(Rejection::Unauthorized, None, req.request_id)),
        };
        if !pre_authorized {
            let ok = self.config.auth.body
                && probe
                    .secret_key
                    .as_deref()
                    .is_some_and(|k| c.secret.matches(k));
            if !ok {
                return Err(self.reject(
                    Rejection::Unauthorized,
                    Some(&probe.event_type),
                    req.request_id,
                ));
            }
        }
        Ok((text, probe.event_type))
    }

    /// 200 once SQS has it: one short line a webhook, no EMF.
    fn queued(
        &self,
        req: &IngestRequest<'_>,
        id: &str,
        location: &'static str,
        et: &EventType,
    ) -> IngestResponse {
        // One short line a webhook, no EMF: the template's metric
        // filters count it (`Received`, `Queued` by `EventType`);
        // the latency is the function's `Duration`.
        let mut props = vec![
            ("outcome", "queued".into()),
            ("message_id", id.to_string().into()),
            ("EventType", et.metric_name().into()),
        ];
        // Inline is the rule: only the exception is written.
        if location != "inline" {
            props.push(("body_location", location.into()));
        }
        let logged = self.metrics.record(&props);
        if !logged {
            tracing::info!(
                request_id = req.request_id,
                event_type = et.as_str(),
                message_id = %id,
                body_location = location,
                bytes = req.body.len(),
                outcome = "queued",
                "webhook queued"
            );
        }
        IngestResponse {
            status: 200,
            body: serde_json::json!({ "status": "received", "id": id }).to_string(),
            headers: vec![("content-type", "application/json")],
        }
    }

    /// 503, so SmartLead retries: the queue did not take it.
    fn unavailable(
        &self,
        req: &IngestRequest<'_>,
        et: &EventType,
        e: &QueueError,
    ) -> IngestResponse {
        tracing::error!(request_id = req.request_id, event_type = et.as_str(), error = %e, outcome = "unavailable", "webhook not queued; answering 503 so SmartLead retries");
        self.metrics.emit(
            &[("EventType", et.metric_name())],
            &[
                ("Received", 1.0, Unit::Count),
                ("QueueFailures", 1.0, Unit::Count),
            ],
        );
        IngestResponse::retry()
    }

    fn invalid(&self, e: &EventError, request_id: &str) -> IngestResponse {
        let msg = match e {
            EventError::NotJson(_) => "body is not valid JSON".to_owned(),
            other => other.to_string(),
        };
        self.rejected(Rejection::Invalid(e.code()), 400, &msg, None, request_id)
    }

    async fn enqueue(
        &self,
        req: &IngestRequest<'_>,
        client: Option<&str>,
        text: &str,
        et: &EventType,
    ) -> Result<(String, &'static str), QueueError> {
        let sha = sha256_hex(req.body);
        let received_at = crate::domain::time::EventTime::now().to_string();
        let mut attributes = vec![
            (attr::EVENT_TYPE, attr_value(et.as_str())),
            (attr::RECEIVED_AT, received_at),
            (attr::REQUEST_ID, attr_value(req.request_id)),
            (attr::BODY_SHA256, sha.clone()),
            (attr::SOURCE_IP, attr_value(req.source_ip)),
        ];
        if let Some(id) = req
            .smartlead_request_id
            .and_then(crate::domain::event::delivery_id)
        {
            attributes.push((attr::SMARTLEAD_REQUEST_ID, id));
        }
        if let Some(level) = req
            .webhook_level
            .and_then(crate::domain::event::webhook_level)
        {
            attributes.push((attr::WEBHOOK_LEVEL, level));
        }
        if let Some(c) = client {
            attributes.push((attr::CLIENT_ID, c.to_owned()));
        }
        let attr_bytes: usize = attributes.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
        let inline = text.len() + attr_bytes <= self.config.max_inline_bytes
            && crate::domain::message::sqs_accepts(text);
        if inline {
            attributes.push((attr::BODY_LOCATION, LOCATION_INLINE.to_owned()));
            let id = self
                .queue
                .send(OutgoingMessage {
                    body: text.to_owned(),
                    attributes,
                })
                .await?;
            return Ok((id, LOCATION_INLINE));
        }
        let Some(blobs) = &self.blobs else {
            return Err(QueueError::Upload(
                "body too large for the queue and no claim-check bucket is configured".into(),
            ));
        };
        let day = &attributes[1].1[..10];
        let key = format!("raw/{day}/{sha}.json");
        blobs.put(&key, req.body).await?;
        let pointer = ClaimCheckMessage {
            claim_check: ClaimCheck {
                bucket: blobs.bucket().to_owned(),
                key,
                size: req.body.len() as u64,
                sha256: sha,
            },
        };
        let body = serde_json::to_string(&pointer).map_err(|e| QueueError::Send(e.into()))?;
        attributes.push((attr::BODY_LOCATION, LOCATION_S3.to_owned()));
        let id = self
            .queue
            .send(OutgoingMessage { body, attributes })
            .await?;
        Ok((id, LOCATION_S3))
    }
}

/// Attribute values must be non-empty, SQS-safe and short.
fn attr_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .filter(|c| crate::domain::message::sqs_accepts(c.encode_utf8(&mut [0; 4])))
        .take(256)
        .collect();
    if v.trim().is_empty() {
        v = "-".into();
    }
    v
}

#[cfg(test)]
mod tests;
