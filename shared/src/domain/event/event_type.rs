//! The event-type catalogue: every type SmartLead sends, the spellings
//! it is read from, and where in a body the type is found.

use super::EventError;
use serde::Serialize;
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
