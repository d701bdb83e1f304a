//! The SmartLead webhook event model.
//!
//! Parsing is forgiving and never lossy: the original JSON object is kept
//! whole in [`SmartleadEvent::raw`] (serializing an event gives it back), the
//! typed view in [`EventData`] reads fields leniently (see [`crate::domain::field_types`]),
//! and an event type this code does not know parses into
//! [`EventData::Unknown`]. The only errors are a body that is not a JSON
//! object and an object without an event type.

mod error;
mod event_type;
mod payload;
mod probe;
mod scrub;
mod typed;

pub use error::EventError;
pub use event_type::{envelope_type, event_type_of, EventType, EVENT_TYPE_KEYS};
pub use payload::*;
pub use probe::{probe, Probe};
pub use scrub::{is_secret_field, scrub_body, scrub_secrets, scrub_secrets_in_text};
pub use typed::EventData;

use crate::domain::field_types::Id;
use crate::domain::time::EventTime;
use error::{json_kind, short_json_error};
use serde::Serialize;
use serde_json::{Map, Value};
use typed::typed;

/// One SmartLead webhook event: the original object plus its typed view.
#[derive(Debug, Clone)]
pub struct SmartleadEvent {
    pub event_type: EventType,
    pub data: EventData,
    /// The event exactly as received (every field, known or not).
    pub raw: Map<String, Value>,
    /// Set when a field collision (for example both `campaign_id` and
    /// `campaignId`) kept the typed view from reading; the event still
    /// parses, with an empty typed view and the normalized view read from `raw`.
    pub typed_view_warning: Option<String>,
    /// Which documented body shape it came in (see [`crate::domain::shape`]).
    pub shape: crate::domain::shape::Shape,
    /// A nested or envelope body read as the flat shape (what the typed
    /// view and the normalized view read); `None` when `raw` is flat.
    view: Option<Map<String, Value>>,
    /// SmartLead's id of this event from the request (`X-Request-Id`): the
    /// idempotency key's basis when set (see [`SmartleadEvent::with_delivery`]).
    pub delivery_id: Option<String>,
    /// `X-Webhook-Level` of the request (`user`, `client`, `campaign`).
    pub webhook_level: Option<String>,
    /// The event's client as an agency's deployment resolved it (see
    /// [`crate::domain::client`]); `None` in a deployment without clients.
    pub client: Option<String>,
    /// Read by an agency's deployment (`ClientParameterPath` set), where an
    /// unsubscribe applies to the clients SmartLead names; `false` keeps
    /// every unsubscribe everywhere, as a deployment without clients does.
    pub agency: bool,
}

impl Serialize for SmartleadEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl SmartleadEvent {
    /// Parses a body as both functions read it ([`crate::domain::body`]): lone
    /// surrogates, numbers past `f64` and over-deep values are tolerated.
    pub fn from_slice(body: &[u8]) -> Result<SmartleadEvent, EventError> {
        let v: Value = serde_json::from_slice(&crate::domain::body::tolerant(body))
            .map_err(|e| EventError::NotJson(short_json_error(&e)))?;
        SmartleadEvent::from_value(v)
    }

    pub fn from_value(v: Value) -> Result<SmartleadEvent, EventError> {
        let mut raw = match v {
            Value::Object(m) => m,
            other => return Err(EventError::NotAnObject(json_kind(&other))),
        };
        // The webhook secret travels in the body; no copy the pipeline makes
        // (state items, bus events, alerts, logs) may carry it.
        scrub_secrets(&mut raw);
        let event_type = event_type_of(&raw)?;
        let shape = crate::domain::shape::detect(&raw);
        let view = crate::domain::shape::flat_view(&event_type, shape, &raw);
        let (data, typed_view_warning) = typed(&event_type, view.as_ref().unwrap_or(&raw));
        Ok(SmartleadEvent {
            event_type,
            data,
            raw,
            typed_view_warning,
            shape,
            view,
            delivery_id: None,
            webhook_level: None,
            client: None,
            agency: false,
        })
    }

    /// The event as the request delivered it: SmartLead's event id
    /// (`X-Request-Id`) and webhook level (`X-Webhook-Level`), as the ingest
    /// passed them on. A blank or unusable value is ignored.
    pub fn with_delivery(
        mut self,
        request_id: Option<&str>,
        level: Option<&str>,
    ) -> SmartleadEvent {
        self.delivery_id = request_id.and_then(delivery_id);
        self.webhook_level = level.and_then(webhook_level);
        self
    }

    /// The event with its resolved client (see [`SmartleadEvent::client`]).
    pub fn with_client(mut self, client: Option<&str>) -> SmartleadEvent {
        self.client = client
            .filter(|c| crate::domain::client::valid_client_id(c))
            .map(str::to_owned);
        self
    }

    /// The flat reading of the body: `raw` itself for a flat body, else the
    /// translation [`crate::domain::shape`] makes of it.
    pub fn view(&self) -> &Map<String, Value> {
        self.view.as_ref().unwrap_or(&self.raw)
    }

    /// SmartLead's own id of the event: the envelope's `id`, else the
    /// request's `X-Request-Id`. Either is the same on every retry.
    pub fn event_id(&self) -> Option<String> {
        let body_id = (self.shape == crate::domain::shape::Shape::Envelope)
            .then(|| match self.raw.get("id") {
                Some(Value::String(s)) => delivery_id(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .flatten();
        body_id.or_else(|| self.delivery_id.clone())
    }

    /// The body without what a retry of the same event changes: an
    /// envelope's `meta` (`attempt`) and `links`.
    pub fn stable_body(&self) -> std::borrow::Cow<'_, Map<String, Value>> {
        if self.shape != crate::domain::shape::Shape::Envelope {
            return std::borrow::Cow::Borrowed(&self.raw);
        }
        let mut m = self.raw.clone();
        m.remove("meta");
        m.remove("links");
        std::borrow::Cow::Owned(m)
    }

    /// The view every processor uses: who, which campaign, when, which message.
    pub fn normalized(&self) -> Normalized {
        crate::domain::normalize::normalize(self)
    }

    /// The idempotency key: equal for two deliveries of one event, different
    /// for two events. See [`crate::domain::key`].
    pub fn dedup_key(&self) -> crate::domain::key::DedupKey {
        crate::domain::key::dedup_key(self, &self.normalized())
    }
}

/// An `X-Request-Id` as a key basis: trimmed, 1 to 256 visible ASCII
/// characters; anything else is not taken for SmartLead's event id.
pub fn delivery_id(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.len() <= 256 && t.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| t.to_owned())
}

/// An `X-Webhook-Level`: `user`, `client` or `campaign` (any case).
pub fn webhook_level(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    matches!(t.as_str(), "user" | "client" | "campaign").then_some(t)
}

/// The normalized view of an event (see [`SmartleadEvent::normalized`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Normalized {
    pub event_type: String,
    /// The lead's e-mail address, trimmed and lower-cased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u32>,
    /// The event's own time, from the field its type uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<EventTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_id: Option<Id>,
    /// The sending mailbox (`from_email`), or the account of an account event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Id>,
    /// `app_url`, else the deprecated `ui_master_inbox_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_url: Option<String>,
    /// SmartLead's ids: the lead (`sl_email_lead_id`, also the lead id when
    /// the body has no other), the lead in the campaign
    /// (`sl_email_lead_map_id`, the master inbox's `leadMap`), the thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl_email_lead_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl_email_lead_map_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_thread_id: Option<Id>,
    /// `ACTIVE`, `PAUSED`, `COMPLETED`: the campaign's status as the event
    /// names it (`campaign_status`; a status change's new status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_status: Option<String>,
    /// The reply's text (replies), the clicked link (clicks), the bounce
    /// reason or the account's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who actually replied, when it was not the lead that was e-mailed (a
    /// colleague, an assistant): `leadCorrespondence.replyReceivedFrom`,
    /// else `to_email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replied_by: Option<String>,
    /// The addresses a reply was copied to (`cc_emails`; empty when the
    /// list is, absent when the body has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cc_emails: Option<Vec<String>>,
    /// A category update's category (name) and the one it replaced, in
    /// either generation: what a bus rule matches on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    /// SmartLead's event id (the envelope's `id` or `X-Request-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `user`, `client` or `campaign`: `X-Webhook-Level` or the envelope's `meta.level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_level: Option<String>,
    /// The body's shape, when it is not the flat one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<crate::domain::shape::Shape>,
}
