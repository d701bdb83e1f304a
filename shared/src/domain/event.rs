//! The SmartLead webhook event model.
//!
//! Parsing is forgiving and never lossy: the original JSON object is kept
//! whole in [`SmartleadEvent::raw`] (serializing an event gives it back), the
//! typed view in [`EventData`] reads fields leniently (see [`crate::domain::field_types`]),
//! and an event type this code does not know parses into
//! [`EventData::Unknown`]. The only errors are a body that is not a JSON
//! object and an object without an event type.

use crate::domain::field_types::{Id, Lenient, Links, Num};
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Keys that carry the event type, in the order they are looked up:
/// `event_type` (the usual one), `eventType` (per-user camelCase payloads),
/// `event` (one docs page's variant, with `EMAIL_OPENED` style names).
/// After them, `type` counts only in SmartLead's envelope (see
/// [`envelope_type`]): it is too generic a name to trust anywhere else.
pub const EVENT_TYPE_KEYS: [&str; 3] = ["event_type", "eventType", "event"];

/// Whether a `type` value names the event: in the envelope shape
/// (`{"id", "type", "created_at", "data": {..}}`) `data` is an object;
/// otherwise only a dotted lower-case name (`email.account.disconnected`)
/// is taken for a type. Any other `type` (a number, `"person"`) is ignored.
pub fn envelope_type(value: &str, data_is_object: bool) -> bool {
    let t = value.trim();
    !t.is_empty()
        && (data_is_object
            || (t.contains('.')
                && t.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_')
                })))
}

/// Why a body is not a SmartLead event. Every variant is permanent: sending
/// the same bytes again can never succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an object (found {0})")]
    NotAnObject(&'static str),
    #[error("body has no event type (looked for `event_type`, `eventType`, `event` and the envelope's `type`)")]
    MissingEventType,
    #[error("event type in `{0}` is not a string")]
    EventTypeNotString(&'static str),
}

impl EventError {
    /// A short, stable reason code for metrics and HTTP answers.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotJson(_) => "malformed_json",
            EventError::NotAnObject(_) => "not_an_object",
            EventError::MissingEventType => "missing_event_type",
            EventError::EventTypeNotString(_) => "event_type_not_string",
        }
    }
}

macro_rules! event_types {
    ($($variant:ident => $wire:literal),* $(,)?) => {
        /// Every SmartLead event type, plus `Unknown` for types added after this code.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)*
            Unknown(String),
        }

        impl EventType {
            /// Every known type, in documentation order.
            pub const KNOWN: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The canonical SmartLead name (`EMAIL_OPEN`, ...); unknown types keep their own.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventType::$variant => $wire,)*
                    EventType::Unknown(s) => s,
                }
            }

            fn from_canonical(s: &str) -> Option<EventType> {
                match s {
                    $($wire => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    EmailSent => "EMAIL_SENT",
    FirstEmailSent => "FIRST_EMAIL_SENT",
    EmailOpen => "EMAIL_OPEN",
    EmailLinkClick => "EMAIL_LINK_CLICK",
    EmailReply => "EMAIL_REPLY",
    EmailBounce => "EMAIL_BOUNCE",
    LeadUnsubscribed => "LEAD_UNSUBSCRIBED",
    LeadCategoryUpdated => "LEAD_CATEGORY_UPDATED",
    CampaignStatusChanged => "CAMPAIGN_STATUS_CHANGED",
    UntrackedReplies => "UNTRACKED_REPLIES",
    ManualStepReached => "MANUAL_STEP_REACHED",
    EmailAccountDisconnected => "EMAIL_ACCOUNT_DISCONNECTED",
    LinkedinDisconnected => "LINKEDIN_DISCONNECTED",
    CampaignBounceBreach => "CAMPAIGN_BOUNCE_BREACH",
}

impl EventType {
    /// Reads a type name as SmartLead may spell it: any case, surrounding
    /// space, dots for underscores (`email.account.disconnected`), and the
    /// documented aliases `EMAIL_OPENED`, `EMAIL_REPLIED`, `EMAIL_BOUNCED`,
    /// `EMAIL_CLICKED`, `EMAIL_UNSUBSCRIBED` (plus `LEAD_UNSUBSCRIBE` seen in
    /// third-party integrations). Anything else is `Unknown`, kept as sent.
    pub fn from_wire(s: &str) -> EventType {
        let t = s.trim();
        let upper: Cow<str> = if t
            .bytes()
            .any(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b' ' | b'.'))
        {
            // `email.account.disconnected` (the envelope's dotted names) too.
            Cow::Owned(t.to_ascii_uppercase().replace(['-', ' ', '.'], "_"))
        } else {
            Cow::Borrowed(t)
        };
        if let Some(k) = EventType::from_canonical(&upper) {
            return k;
        }
        match upper.as_ref() {
            "EMAIL_OPENED" => EventType::EmailOpen,
            "EMAIL_REPLIED" => EventType::EmailReply,
            "EMAIL_BOUNCED" => EventType::EmailBounce,
            "EMAIL_CLICKED" | "EMAIL_LINK_CLICKED" => EventType::EmailLinkClick,
            "LEAD_UNSUBSCRIBE" | "EMAIL_UNSUBSCRIBED" => EventType::LeadUnsubscribed,
            "LINKEDIN_ACCOUNT_DISCONNECTED" => EventType::LinkedinDisconnected,
            "CAMPAIGN_BOUNCE_THRESHOLD" | "CAMPAIGN_BOUNCE_THRESHOLD_BREACHED" => {
                EventType::CampaignBounceBreach
            }
            // Bounded: the name goes into keys, logs and attributes.
            _ => EventType::Unknown(crate::domain::plan::key_part(t).into_owned()),
        }
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, EventType::Unknown(_))
    }

    /// A bounded label for metrics: unknown types all count as `UNKNOWN`, so a
    /// hostile sender cannot create unbounded metric dimensions.
    pub fn metric_name(&self) -> &str {
        match self {
            EventType::Unknown(_) => "UNKNOWN",
            k => k.as_str(),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Finds the event type in a JSON object.
pub fn event_type_of(obj: &Map<String, Value>) -> Result<EventType, EventError> {
    for key in EVENT_TYPE_KEYS {
        match obj.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => return Ok(EventType::from_wire(s)),
            Some(_) => return Err(EventError::EventTypeNotString(key)),
        }
    }
    if let Some(Value::String(s)) = obj.get("type") {
        if envelope_type(s, matches!(obj.get("data"), Some(Value::Object(_)))) {
            return Ok(EventType::from_wire(s));
        }
    }
    Err(EventError::MissingEventType)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The minimal check the ingest function makes: the bytes are one JSON
/// object with an event type. It skips over the rest of the document without
/// building it, so it costs little more than validating the JSON.
pub fn probe(body: &[u8]) -> Result<Probe, EventError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => {}
        Some(_) => {
            // Not an object: say what it is when it is valid JSON at all.
            return match serde_json::from_slice::<Value>(body) {
                Ok(v) => Err(EventError::NotAnObject(json_kind(&v))),
                Err(e) => Err(EventError::NotJson(short_json_error(&e))),
            };
        }
        None => return Err(EventError::NotJson("empty body".into())),
    }
    // The same reading as the consumer's full parse (see `crate::domain::body`).
    let body = crate::domain::body::tolerant(body);
    let f: Fields<'_> =
        serde_json::from_slice(&body).map_err(|e| EventError::NotJson(short_json_error(&e)))?;
    let mut event_type = None;
    for (key, v) in [
        ("event_type", f.event_type),
        ("eventType", f.event_type_camel),
        ("event", f.event),
    ] {
        match v {
            None | Some(ProbeValue::Null) => continue,
            Some(ProbeValue::Str(s)) if s.trim().is_empty() => continue,
            Some(ProbeValue::Str(s)) => {
                event_type = Some(EventType::from_wire(&s));
                break;
            }
            Some(ProbeValue::Other | ProbeValue::Object(_)) => {
                return Err(EventError::EventTypeNotString(key))
            }
        }
    }
    if event_type.is_none() {
        if let Some(ProbeValue::Str(s)) = &f.kind {
            if envelope_type(s, matches!(f.data, Some(ProbeValue::Object(_)))) {
                event_type = Some(EventType::from_wire(s));
            }
        }
    }
    let event_type = event_type.ok_or(EventError::MissingEventType)?;
    // SmartLead's `secret_key`: at the top, or in an envelope's `data` or a
    // nested body's `lead` (the consumer scrubs it at any depth).
    let secret_key = [f.secret_key, f.data, f.lead]
        .into_iter()
        .find_map(|v| match v {
            Some(ProbeValue::Str(s)) | Some(ProbeValue::Object(Some(s))) => Some(s.into_owned()),
            _ => None,
        });
    Ok(Probe {
        event_type,
        secret_key,
    })
}

fn short_json_error(e: &serde_json::Error) -> String {
    // serde_json's messages name the line and column but never echo input.
    let mut s = e.to_string();
    s.truncate(160);
    s
}

/// What [`probe`] found.
#[derive(Debug)]
pub struct Probe {
    pub event_type: EventType,
    /// The `secret_key` body field SmartLead sends on some event types.
    pub secret_key: Option<String>,
}

enum ProbeValue<'a> {
    Null,
    Str(Cow<'a, str>),
    /// An object, with its own `secret_key` when it has a string one.
    Object(Option<Cow<'a, str>>),
    Other,
}

/// The top-level fields the probe reads. A field given twice keeps its last
/// value, as the consumer's full parse does (no "duplicate field" error).
#[derive(Default)]
struct Fields<'a> {
    event_type: Option<ProbeValue<'a>>,
    event_type_camel: Option<ProbeValue<'a>>,
    event: Option<ProbeValue<'a>>,
    secret_key: Option<ProbeValue<'a>>,
    kind: Option<ProbeValue<'a>>,
    data: Option<ProbeValue<'a>>,
    lead: Option<ProbeValue<'a>>,
}

/// An object key, as far as the probe cares.
enum Key {
    EventType,
    EventTypeCamel,
    Event,
    Secret,
    Type,
    Data,
    Lead,
    Other,
}

/// `Deserialize` for a borrowing type `$ty<'a>` through a visitor that
/// expects `$what`, driven by the deserializer's `$how`; the `visit_*`
/// methods are given.
macro_rules! deserialize_via {
    ($ty:ident, $what:literal, $how:ident, $($visit:item)*) => {
        impl<'de: 'a, 'a> Deserialize<'de> for $ty<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($what)
                    }
                    $($visit)*
                }
                d.$how(V)
            }
        }
    };
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "event_type" => Key::EventType,
                    "eventType" => Key::EventTypeCamel,
                    "event" => Key::Event,
                    "secret_key" => Key::Secret,
                    "type" => Key::Type,
                    "data" => Key::Data,
                    "lead" => Key::Lead,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

deserialize_via! {
    Fields, "a JSON object", deserialize_map,
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> Result<Self::Value, A::Error> {
        let mut f = Fields::default();
        while let Some(k) = a.next_key::<Key>()? {
            let slot = match k {
                Key::EventType => &mut f.event_type,
                Key::EventTypeCamel => &mut f.event_type_camel,
                Key::Event => &mut f.event,
                Key::Secret => &mut f.secret_key,
                Key::Type => &mut f.kind,
                Key::Data => &mut f.data,
                Key::Lead => &mut f.lead,
                Key::Other => {
                    a.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(a.next_value()?);
        }
        Ok(f)
    }
}

deserialize_via! {
    ProbeValue, "any JSON value", deserialize_any,
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ProbeValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ProbeValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(ProbeValue::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ProbeValue::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(ProbeValue::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ProbeValue::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ProbeValue::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ProbeValue::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ProbeValue::Other)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut a: A,
    ) -> Result<Self::Value, A::Error> {
        while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(ProbeValue::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> Result<Self::Value, A::Error> {
        let mut secret = None;
        while let Some(k) = a.next_key::<Key>()? {
            if matches!(k, Key::Secret) {
                if let ProbeValue::Str(s) = a.next_value::<ProbeValue<'de>>()? {
                    secret = Some(s);
                }
            } else {
                a.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(ProbeValue::Object(secret))
    }
}

// ---------------------------------------------------------------------------
// Typed payloads
// ---------------------------------------------------------------------------

/// Declares typed payloads: structs whose fields are all public and all
/// optional (`#[serde(default)]`, each [`Lenient`] or a lenient type of its
/// own), so an odd or missing field never fails the event. Fields are
/// written as a table, several to a line.
macro_rules! payload {
    ($($(#[$meta:meta])* $name:ident {
        $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)?
    })*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Default, Deserialize)]
            #[serde(default)]
            pub struct $name {
                $($(#[$fmeta])* pub $field: $ty,)*
            }
        )*
    };
}

/// A lead category: SmartLead sends the name as a string at the top level
/// and as `{name, sentiment_type}` inside `lead_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Category {
    pub name: Option<String>,
    pub sentiment: Option<String>,
    pub id: Option<Id>,
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match &v {
            Value::String(_) => Ok(Category {
                name: text(Some(&v)),
                ..Default::default()
            }),
            Value::Object(m) => Ok(Category {
                name: text(m.get("name")),
                sentiment: text(m.get("sentiment_type").or_else(|| m.get("sentiment"))),
                id: m.get("id").and_then(Id::from_value),
            }),
            _ => Err(serde::de::Error::custom(
                "category must be a string or an object",
            )),
        }
    }
}

payload! {
    /// Fields most SmartLead webhooks share (camelCase spellings accepted).
    Envelope {
        webhook_id: Lenient<Id>, webhook_name: Lenient<String>,
        #[serde(alias = "campaignId")] campaign_id: Lenient<Id>,
        #[serde(alias = "campaignName")] campaign_name: Lenient<String>,
        campaign_status: Lenient<String>,
        #[serde(alias = "clientId")] client_id: Lenient<Id>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        ui_master_inbox_link: Lenient<String>,
        // SmartLead's own ids of the lead, the lead in the campaign (the
        // master inbox's lead map) and the thread.
        sl_email_lead_id: Lenient<Id>, sl_email_lead_map_id: Lenient<Id>,
        stats_thread_id: Lenient<Id>,
        description: Lenient<String>,
        #[serde(alias = "eventTimestamp")] event_timestamp: Lenient<Value>,
        #[serde(alias = "createdAt")] created_at: Lenient<Value>,
        metadata: Lenient<Value>,
    }

    /// A message SmartLead quotes (`sent_message`, `reply_message`,
    /// `bounce_message`); the Link Clicked page writes `id` for `message_id`.
    MessageRef {
        message_id: Lenient<String>, id: Lenient<String>, html: Lenient<String>,
        text: Lenient<String>, time: Lenient<Value>,
    }

    /// Fields of the per-message events (sent, open, click, reply, bounce).
    EmailFields {
        #[serde(flatten)] envelope: Envelope,
        stats_id: Lenient<Id>, lead_id: Lenient<Id>, from_email: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>, sequence_number: Lenient<Num>,
        subject: Lenient<String>, message_id: Lenient<String>,
        sent_message: Lenient<MessageRef>,
    }

    EmailSent {
        #[serde(flatten)] email: EmailFields,
        time_sent: Lenient<Value>, custom_subject: Lenient<String>,
        custom_email_message: Lenient<String>,
    }

    EmailOpen {
        #[serde(flatten)] email: EmailFields,
        time_opened: Lenient<Value>,
    }

    EmailLinkClick {
        #[serde(flatten)] email: EmailFields,
        time_clicked: Lenient<Value>, link_clicked: Links, link_details: Links,
    }

    EmailReply {
        #[serde(flatten)] email: EmailFields,
        time_replied: Lenient<Value>, reply_body: Lenient<String>,
        preview_text: Lenient<String>, reply_message: Lenient<MessageRef>,
        sl_lead_email: Lenient<String>, cc_emails: Lenient<Value>,
        #[serde(rename = "leadCorrespondence")] lead_correspondence: Lenient<Correspondence>,
    }

    /// Who a reply was for and who sent it (api.smartlead.ai
    /// `reference/email-reply-webhooks`): a colleague, an assistant or a
    /// forwarded thread answers for the lead that was e-mailed.
    Correspondence {
        #[serde(rename = "targetLeadEmail")] target_lead_email: Lenient<String>,
        #[serde(rename = "replyReceivedFrom")] reply_received_from: Lenient<String>,
        #[serde(rename = "repliedCompanyDomain")] replied_company_domain: Lenient<String>,
    }

    EmailBounce {
        #[serde(flatten)] email: EmailFields,
        bounce_message: Lenient<Value>, time_sent: Lenient<Value>,
        bounce_reply_email_preview: Lenient<String>, bounce_reply_email: Lenient<String>,
        bounce_reply_message_id: Lenient<String>,
    }

    LeadUnsubscribed {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, lead_name: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>, from_email: Lenient<String>,
        subject: Lenient<String>, sent_message: Lenient<MessageRef>,
        sequence_number: Lenient<Num>, unsubscribed_client_id_map: Lenient<Value>,
    }

    LeadData {
        id: Lenient<Id>, email: Lenient<String>, first_name: Lenient<String>,
        last_name: Lenient<String>, phone_number: Lenient<String>,
        company_name: Lenient<String>, website: Lenient<String>, location: Lenient<String>,
        linkedin_profile: Lenient<String>, company_url: Lenient<String>,
        custom_fields: Lenient<Value>, category: Lenient<Category>,
    }

    HistoryEntry {
        #[serde(rename = "type")] kind: Lenient<String>,
        time: Lenient<Value>, subject: Lenient<String>, email_body: Lenient<String>,
        message_id: Lenient<String>, stats_id: Lenient<Id>,
    }

    /// The current generation's `lead_category` (help center, "Lead
    /// Category Updated"): the category left and the one entered.
    CategoryChange {
        old_id: Lenient<Id>, old_name: Lenient<String>,
        new_id: Lenient<Id>, new_name: Lenient<String>,
    }

    LeadCategoryUpdated {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, lead_name: Lenient<String>,
        lead_data: Lenient<LeadData>, category: Lenient<Category>,
        lead_category_id: Lenient<Id>, lead_category: Lenient<CategoryChange>,
        from: Lenient<String>, to: Lenient<String>, from_email: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>,
        history: Lenient<Vec<HistoryEntry>>,
        // Both spellings may come in one body: two fields, not an alias.
        last_reply: Lenient<HistoryEntry>,
        #[serde(rename = "lastReply")] last_reply_deprecated: Lenient<HistoryEntry>,
    }

    CampaignStatusChanged {
        #[serde(flatten)] envelope: Envelope,
        current_status: Lenient<String>,
        #[serde(alias = "new_status", alias = "newStatus")] status: Lenient<String>,
        previous_status: Lenient<String>,
        #[serde(alias = "oldStatus")] old_status: Lenient<String>,
    }

    /// UNTRACKED_REPLIES as the help center's page sends it
    /// (`sender_detail` is `Name <addr>`), and the flat names read before.
    UntrackedReply {
        #[serde(flatten)] envelope: Envelope,
        reply_message: Lenient<MessageRef>, sender_detail: Lenient<String>,
        recipient_detail: Lenient<String>, cc: Lenient<String>, bcc: Lenient<String>,
        visible_text: Lenient<String>,
        from_email: Lenient<String>, to_email: Lenient<String>, subject: Lenient<String>,
        #[serde(alias = "body", alias = "email_body")] reply_body: Lenient<String>,
        preview_text: Lenient<String>, time_replied: Lenient<Value>,
        message_id: Lenient<String>,
    }

    ManualStepReached {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, to_email: Lenient<String>,
        lead_name: Lenient<String>, to_name: Lenient<String>,
        current_sequence_number: Lenient<Num>, sequence_number: Lenient<Num>,
        sent_message_ids: Lenient<Vec<String>>,
        #[serde(alias = "manual_step_type", alias = "stepType")] step_type: Lenient<String>,
        #[serde(alias = "task", alias = "instructions")] step_description: Lenient<String>,
    }

    /// EMAIL_ACCOUNT_DISCONNECTED and LINKEDIN_DISCONNECTED, sent by the per-user
    /// notification setting in camelCase (`accountId`, `appUrl`); snake_case accepted.
    AccountDisconnected {
        #[serde(alias = "accountId", alias = "email_account_id")] account_id: Lenient<Id>,
        #[serde(alias = "from_email", alias = "accountEmail")] email: Lenient<String>,
        #[serde(alias = "errorMessage", alias = "error_message")] error: Lenient<String>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        title: Lenient<String>, message: Lenient<String>,
        #[serde(alias = "eventTimestamp", alias = "timestamp", alias = "time")]
        event_timestamp: Lenient<Value>,
        #[serde(alias = "linkedinProfile", alias = "profile_url")]
        linkedin_profile: Lenient<String>,
    }

    CampaignBounceBreach {
        #[serde(alias = "campaignId")] campaign_id: Lenient<Id>,
        #[serde(alias = "campaignName")] campaign_name: Lenient<String>,
        #[serde(alias = "bounceRate")] bounce_rate: Lenient<f64>,
        threshold: Lenient<f64>,
        #[serde(alias = "accountId")] account_id: Lenient<Id>,
        email: Lenient<String>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        title: Lenient<String>, message: Lenient<String>,
        #[serde(alias = "eventTimestamp", alias = "timestamp", alias = "time")]
        event_timestamp: Lenient<Value>,
    }
}

impl LeadCategoryUpdated {
    /// The category the lead entered: `lead_category.new_name` / `new_id`
    /// (current generation) over `category` / `lead_category_id`
    /// (deprecated), then `lead_data.category`. The sentiment is that of the
    /// `category` object naming the same category (the current generation
    /// sends none).
    pub fn new_category(&self) -> Category {
        let change = self.lead_category.get();
        let objects = [
            self.category.get(),
            self.lead_data.get().and_then(|d| d.category.get()),
        ];
        let name = change
            .and_then(|c| c.new_name.text().map(str::to_owned))
            .or_else(|| objects.iter().flatten().find_map(|c| c.name.clone()));
        let id = change
            .and_then(|c| c.new_id.get())
            .or(self.lead_category_id.get())
            .or_else(|| objects.iter().flatten().find_map(|c| c.id.as_ref()))
            .cloned();
        let same = |c: &Category| match (&c.name, &name) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        let sentiment = objects
            .iter()
            .flatten()
            .filter(|c| same(c))
            .find_map(|c| c.sentiment.clone());
        Category {
            name,
            sentiment,
            id,
        }
    }

    /// The category the lead left: `lead_category.old_name` / `old_id`
    /// (the deprecated generation does not say).
    pub fn old_category(&self) -> Option<Category> {
        let c = self.lead_category.get()?;
        let old = Category {
            name: c.old_name.text().map(str::to_owned),
            sentiment: None,
            id: c.old_id.get().cloned(),
        };
        (old.name.is_some() || old.id.is_some()).then_some(old)
    }

    /// The conversation's last reply: `last_reply`, else the deprecated
    /// `lastReply`.
    pub fn latest_reply(&self) -> Option<&HistoryEntry> {
        self.last_reply.get().or(self.last_reply_deprecated.get())
    }

    /// What the idempotency key reads as the category, (id, name): the new
    /// generation's, else the deprecated top-level fields (never
    /// `lead_data`, so deprecated bodies keep their keys).
    pub fn key_category(&self) -> (Option<&str>, Option<&str>) {
        let change = self.lead_category.get();
        let id = change
            .and_then(|c| c.new_id.get())
            .or(self.lead_category_id.get())
            .map(Id::as_str);
        let name = change
            .and_then(|c| c.new_name.text())
            .or_else(|| self.category.get().and_then(|c| c.name.as_deref()));
        (id, name)
    }
}

// Where SmartLead's two field generations (help center, "Webhook Guide
// Updated") spell one thing twice, the current spelling wins.

impl MessageRef {
    /// `message_id`, else `id` (the Link Clicked page's spelling).
    pub fn msg_id(&self) -> Option<&str> {
        self.message_id.text().or(self.id.text())
    }
}

/// Text, else HTML made text; blank reads as absent.
fn text_or_html(text: Option<&str>, html: Option<&str>) -> Option<String> {
    let said = |t: &String| !t.trim().is_empty();
    text.map(str::to_owned)
        .filter(said)
        .or_else(|| html.map(crate::domain::plan::strip_html))
        .filter(said)
}

impl EmailLinkClick {
    /// The clicked links: `link_details`, else the deprecated `link_clicked`.
    pub fn links(&self) -> &[String] {
        match self.link_details.0.is_empty() {
            true => &self.link_clicked.0,
            false => &self.link_details.0,
        }
    }
}

impl EmailReply {
    /// The reply's text: `reply_message.text`, else the deprecated
    /// `preview_text`, else the text of `reply_message.html` or `reply_body`.
    pub fn text(&self) -> Option<String> {
        let m = self.reply_message.get();
        let text = m.and_then(|m| m.text.text()).or(self.preview_text.text());
        let html = m.and_then(|m| m.html.text()).or(self.reply_body.text());
        text_or_html(text, html)
    }
}

impl EmailBounce {
    /// Why it bounced: `bounce_message` (its text, else its HTML's, or a
    /// plain string), else the deprecated `bounce_reply_email_preview`,
    /// `bounce_reply_email`.
    pub fn reason(&self) -> Option<String> {
        let m = self.bounce_message.get();
        let field = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str);
        let said = |t: &&str| !t.trim().is_empty();
        let text = field("text")
            .filter(said)
            .or_else(|| m.and_then(Value::as_str).filter(said))
            .or(self.bounce_reply_email_preview.text().filter(said));
        text_or_html(text, field("html").or(self.bounce_reply_email.text()))
    }
}

impl CampaignStatusChanged {
    /// The status entered: `current_status`, else `status` (`new_status`),
    /// else the event's `campaign_status`.
    pub fn status(&self) -> Option<&str> {
        self.current_status
            .text()
            .or(self.status.text())
            .or(self.envelope.campaign_status.text())
    }

    /// The status left: `previous_status`, else `old_status`.
    pub fn previous(&self) -> Option<&str> {
        self.previous_status.text().or(self.old_status.text())
    }
}

impl UntrackedReply {
    /// The reply's text: `visible_text` (without the quoted thread), else
    /// `reply_message.text`, else `preview_text`, else its HTML made text.
    pub fn text(&self) -> Option<String> {
        let m = self.reply_message.get();
        let text = self
            .visible_text
            .text()
            .or_else(|| m.and_then(|m| m.text.text()))
            .or(self.preview_text.text());
        let html = m.and_then(|m| m.html.text()).or(self.reply_body.text());
        text_or_html(text, html)
    }
}

/// The typed view of one event.
#[derive(Debug, Clone)]
pub enum EventData {
    EmailSent(EmailSent),
    FirstEmailSent(EmailSent),
    EmailOpen(EmailOpen),
    EmailLinkClick(EmailLinkClick),
    EmailReply(Box<EmailReply>),
    EmailBounce(EmailBounce),
    LeadUnsubscribed(LeadUnsubscribed),
    LeadCategoryUpdated(Box<LeadCategoryUpdated>),
    CampaignStatusChanged(CampaignStatusChanged),
    UntrackedReplies(UntrackedReply),
    ManualStepReached(ManualStepReached),
    EmailAccountDisconnected(AccountDisconnected),
    LinkedinDisconnected(AccountDisconnected),
    CampaignBounceBreach(CampaignBounceBreach),
    /// A type this code does not know; the whole event stays in `raw`.
    Unknown,
}

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

/// Whether a field carries SmartLead's webhook secret, in any spelling:
/// the secret itself (`secret_key`, `SECRET_KEY`, `secretKey`,
/// `secret-key`) or the URL SmartLead posts to (`webhook_url`,
/// `webhookUrl`), which holds it as its last path segment or `?token=`.
pub fn is_secret_field(name: &str) -> bool {
    let spelled = |target: &[u8]| {
        name.bytes()
            .filter(|b| !matches!(b, b'_' | b'-'))
            .map(|b| b.to_ascii_lowercase())
            .eq(target.iter().copied())
    };
    name.len() <= 12 && (spelled(b"secretkey") || spelled(b"webhookurl"))
}

/// Whether text may hold a secret field's name (a quick test first).
fn names_a_secret(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(6).any(|w| w.eq_ignore_ascii_case(b"secret"))
        || b.windows(7).any(|w| w.eq_ignore_ascii_case(b"webhook"))
}

/// Removes every secret field, at any depth (objects inside arrays too).
pub fn scrub_secrets(obj: &mut Map<String, Value>) {
    obj.retain(|k, _| !is_secret_field(k));
    for v in obj.values_mut() {
        scrub_value(v);
    }
}

fn scrub_value(v: &mut Value) {
    match v {
        Value::Object(m) => scrub_secrets(m),
        Value::Array(a) => a.iter_mut().for_each(scrub_value),
        _ => {}
    }
}

/// Text that may not be JSON (a rejected body): the value of every
/// `"secret_key": "..."` pair, in any spelling, replaced by `"[redacted]"`.
/// JSON bodies are scrubbed structurally by [`scrub_secrets`]; this is for
/// the rest.
pub fn scrub_secrets_in_text(text: &str) -> Cow<'_, str> {
    if !names_a_secret(text) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    // Every quote that opens a secret field's name, wherever the pairing
    // of quotes in broken text stands.
    while let Some(pos) = text[i..].find('"') {
        let start = i + pos;
        i = start + 1;
        let Some(len) = text[start + 1..].find('"').filter(|l| *l <= 12) else {
            continue;
        };
        if !is_secret_field(&text[start + 1..start + 1 + len]) {
            continue;
        }
        let mut j = start + 2 + len;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        // The value: a string (escapes skipped) or a bare token.
        let value_start = j;
        if b.get(j) == Some(&b'"') {
            j += 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(b.len());
        } else {
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
        }
        out.push_str(&text[copied..value_start]);
        out.push_str("\"[redacted]\"");
        copied = j;
        i = j;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// A body kept for people to read (a rejected event) without its secret:
/// scrubbed as JSON when it is JSON, as text otherwise.
pub fn scrub_body(text: &str) -> Cow<'_, str> {
    // A JSON body is read whatever it spells (`"secret\u005fkey"` is the
    // same field); other text is searched for the name as written.
    let json_like = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if !json_like && !names_a_secret(text) {
        return Cow::Borrowed(text);
    }
    match serde_json::from_slice::<Value>(&crate::domain::body::tolerant(text.as_bytes())) {
        Ok(mut v) => {
            let before = v.clone();
            scrub_value(&mut v);
            if v == before {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(v.to_string())
            }
        }
        Err(_) => scrub_secrets_in_text(text),
    }
}

fn typed(kind: &EventType, raw: &Map<String, Value>) -> (EventData, Option<String>) {
    fn read<T: serde::de::DeserializeOwned + Default>(
        raw: &Map<String, Value>,
        warn: &mut Option<String>,
    ) -> T {
        // Deserializing from a borrowed map clones only the fields it reads.
        match T::deserialize(MapRef(raw)) {
            Ok(t) => t,
            Err(e) => {
                *warn = Some(e.to_string());
                T::default()
            }
        }
    }
    let mut w = None;
    let data = match kind {
        EventType::EmailSent => EventData::EmailSent(read(raw, &mut w)),
        EventType::FirstEmailSent => EventData::FirstEmailSent(read(raw, &mut w)),
        EventType::EmailOpen => EventData::EmailOpen(read(raw, &mut w)),
        EventType::EmailLinkClick => EventData::EmailLinkClick(read(raw, &mut w)),
        EventType::EmailReply => EventData::EmailReply(Box::new(read(raw, &mut w))),
        EventType::EmailBounce => EventData::EmailBounce(read(raw, &mut w)),
        EventType::LeadUnsubscribed => EventData::LeadUnsubscribed(read(raw, &mut w)),
        EventType::LeadCategoryUpdated => {
            EventData::LeadCategoryUpdated(Box::new(read(raw, &mut w)))
        }
        EventType::CampaignStatusChanged => EventData::CampaignStatusChanged(read(raw, &mut w)),
        EventType::UntrackedReplies => EventData::UntrackedReplies(read(raw, &mut w)),
        EventType::ManualStepReached => EventData::ManualStepReached(read(raw, &mut w)),
        EventType::EmailAccountDisconnected => {
            EventData::EmailAccountDisconnected(read(raw, &mut w))
        }
        EventType::LinkedinDisconnected => EventData::LinkedinDisconnected(read(raw, &mut w)),
        EventType::CampaignBounceBreach => EventData::CampaignBounceBreach(read(raw, &mut w)),
        EventType::Unknown(_) => EventData::Unknown,
    };
    (data, w)
}

/// Lets a typed struct deserialize from a borrowed `serde_json::Map`.
struct MapRef<'de>(&'de Map<String, Value>);

impl<'de> serde::Deserializer<'de> for MapRef<'de> {
    type Error = serde_json::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::value::MapDeserializer;
        let iter = self.0.iter().map(|(k, v)| (k.as_str(), v));
        let mut de = MapDeserializer::new(iter);
        let out = visitor.visit_map(&mut de)?;
        de.end()?;
        Ok(out)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
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
