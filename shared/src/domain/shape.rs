//! The body shapes SmartLead documents, read as one flat view.
//!
//! SmartLead's pages describe four shapes of the same events. The flat one
//! (`event_type` + `to_email`, the per-user camelCase account events) is
//! what the typed view reads; the others are translated into it, field by
//! field, before the typed view is read. The original object stays
//! untouched in [`crate::domain::event::SmartleadEvent::raw`].
//!
//! Which fields each shape is read from: `docs/events.md` (the shape table of "The event model").
//!
//! Values already present are never overwritten, and a field is only added
//! when none of its spellings is there (the typed view refuses a field given
//! twice under two aliases).

use crate::domain::event::EventType;
use serde::Serialize;
use serde_json::{Map, Value};

/// Which documented shape a body has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `event_type` (or `event`, `eventType`) with flat fields.
    Flat,
    /// The lead nested under `lead` (api.smartlead.ai `core/webhooks`,
    /// `api-reference/webhooks/events`, `guides/webhook-integration`).
    Nested,
    /// `{"id", "type", "created_at", "data", "links", "meta"}` (help center,
    /// "Quick tips for testing with sample webhook payloads").
    Envelope,
}

fn is_object(m: &Map<String, Value>, k: &str) -> bool {
    matches!(m.get(k), Some(Value::Object(_)))
}

fn present(m: &Map<String, Value>, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| !matches!(m.get(*k), None | Some(Value::Null)))
}

/// Where an envelope's `created_at` goes in its flat view: a name of ours,
/// read after `data`'s own times.
pub const ENVELOPE_TIME: &str = "envelope_created_at";

fn put(m: &mut Map<String, Value>, aliases: &[&str], v: Option<Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        if !present(m, aliases) {
            m.insert(aliases[0].to_owned(), v);
        }
    }
}

fn field<'a>(m: &'a Map<String, Value>, obj: &str, key: &str) -> Option<&'a Value> {
    m.get(obj)
        .and_then(Value::as_object)
        .and_then(|o| o.get(key))
        .filter(|v| !v.is_null())
}

/// The shape of a body whose type was found.
pub fn detect(raw: &Map<String, Value>) -> Shape {
    // As `event_type_of` reads them: null and blank type keys are absent.
    let typed_key = crate::domain::event::EVENT_TYPE_KEYS
        .iter()
        .any(|k| match raw.get(*k) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        });
    if !typed_key && is_object(raw, "data") {
        return Shape::Envelope;
    }
    // A flat body that names its lead stays flat, whatever objects it has.
    if !present(raw, &["to_email", "lead_email", "toEmail", "leadEmail"])
        && ["lead", "email", "reply", "link"]
            .iter()
            .any(|k| is_object(raw, k))
    {
        return Shape::Nested;
    }
    Shape::Flat
}

/// The flat view of a nested or envelope body (`None` for a flat one).
pub fn flat_view(
    kind: &EventType,
    shape: Shape,
    raw: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    match shape {
        Shape::Flat => None,
        Shape::Nested => Some(nested(kind, raw.clone())),
        Shape::Envelope => {
            let mut m = raw
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            // The envelope's own time is the event's when `data` names none
            // (its `created_at` may be the lead's or account's): read after
            // every time of `data`'s own, nested ones included
            // (`ENVELOPE_TIME` in the normalizer's fallbacks).
            put(&mut m, &[ENVELOPE_TIME], raw.get("created_at").cloned());
            put(
                &mut m,
                &["app_url", "appUrl"],
                field(raw, "links", "app").cloned(),
            );
            if let Some(reason) = m.get("reason").cloned() {
                match kind {
                    EventType::EmailBounce => put(&mut m, &["bounce_message"], Some(reason)),
                    EventType::CampaignBounceBreach => put(&mut m, &["message"], Some(reason)),
                    _ => put(
                        &mut m,
                        &["error", "errorMessage", "error_message"],
                        Some(reason),
                    ),
                }
            }
            Some(nested(kind, m))
        }
    }
}

/// The nested-lead translation (also applied to an envelope's `data`).
fn nested(kind: &EventType, mut m: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(lead)) = m.get("lead").cloned() {
        nested_lead(kind, &mut m, lead);
    }
    nested_message(kind, &mut m);
    nested_link(&mut m);
    nested_times(kind, &mut m);
    m
}

/// The nested `lead`: its e-mail, name and id, and its profile.
fn nested_lead(kind: &EventType, m: &mut Map<String, Value>, lead: Map<String, Value>) {
    if !present(m, &["to_email", "lead_email"]) {
        put(m, &["to_email"], lead.get("email").cloned());
    }
    let name = ["first_name", "last_name"]
        .iter()
        .filter_map(|k| lead.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() && !present(m, &["to_name", "lead_name"]) {
        // Where each typed view reads the lead's name.
        let key = match kind {
            EventType::LeadUnsubscribed | EventType::LeadCategoryUpdated => "lead_name",
            _ => "to_name",
        };
        put(m, &[key], Some(Value::String(name)));
    }
    put(m, &["lead_id"], lead.get("id").cloned());
    // The lead's profile, as LEAD_CATEGORY_UPDATED's `lead_data`.
    put(m, &["lead_data"], Some(Value::Object(lead)));
}

/// The nested `email` and `reply`: message id, reply and subject.
fn nested_message(kind: &EventType, m: &mut Map<String, Value>) {
    if let Some(id) = field(m, "email", "message_id").cloned() {
        if *kind == EventType::EmailReply {
            // The e-mail replied to, not the reply.
            if !present(m, &["sent_message"]) {
                let mut sent = Map::new();
                sent.insert("message_id".into(), id);
                m.insert("sent_message".into(), Value::Object(sent));
            }
        } else {
            put(m, &["message_id"], Some(id));
        }
    }
    if let Some(Value::Object(reply)) = m.get("reply").cloned() {
        put(m, &["time_replied"], reply.get("received_at").cloned());
        put(m, &["reply_body"], reply.get("body").cloned());
        put(m, &["subject"], reply.get("subject").cloned());
    }
    let subject = field(m, "email", "subject").cloned();
    put(m, &["subject"], subject);
}

/// The nested `link` (an object, or the URL alone).
fn nested_link(m: &mut Map<String, Value>) {
    let (url, clicked_at) = match m.get("link").cloned() {
        Some(Value::Object(link)) => (link.get("url").cloned(), link.get("clicked_at").cloned()),
        Some(url @ Value::String(_)) => (Some(url), None),
        _ => return,
    };
    put(m, &["time_clicked"], clicked_at);
    put(m, &["link_clicked"], url.map(|u| Value::Array(vec![u])));
}

/// Each type's own time (and a bounce's reason) from the nested spelling.
fn nested_times(kind: &EventType, m: &mut Map<String, Value>) {
    let timestamp = m.get("timestamp").cloned();
    match kind {
        EventType::EmailOpen => {
            let t = timestamp
                .or_else(|| m.get("last_opened_at").cloned())
                .or_else(|| m.get("first_opened_at").cloned());
            put(m, &["time_opened"], t);
        }
        EventType::EmailLinkClick => put(m, &["time_clicked"], timestamp),
        EventType::EmailReply => put(m, &["time_replied"], timestamp),
        EventType::EmailSent | EventType::FirstEmailSent => put(m, &["time_sent"], timestamp),
        EventType::LeadUnsubscribed => {
            let t = m.get("unsubscribed_at").cloned();
            put(m, &["event_timestamp", "eventTimestamp"], t);
        }
        EventType::EmailBounce => {
            let reason = m
                .get("bounce_reason")
                .cloned()
                .or_else(|| field(m, "bounce", "reason").cloned())
                .or_else(|| m.get("reason").cloned());
            put(m, &["bounce_message"], reason);
            let t = m.get("bounced_at").cloned();
            put(m, &["event_timestamp", "eventTimestamp"], t);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn shapes_are_told_apart() {
        assert_eq!(
            detect(&obj(
                json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.c"})
            )),
            Shape::Flat
        );
        assert_eq!(
            detect(&obj(
                json!({"event": "EMAIL_OPENED", "lead": {"email": "a@b.c"}})
            )),
            Shape::Nested
        );
        assert_eq!(
            detect(&obj(
                json!({"type": "email.account.disconnected", "data": {}})
            )),
            Shape::Envelope
        );
        // `data` beside a real type key is just a field.
        assert_eq!(
            detect(&obj(json!({"event_type": "X", "data": {}}))),
            Shape::Flat
        );
    }

    #[test]
    fn existing_fields_win_and_aliases_are_not_doubled() {
        let m = nested(
            &EventType::ManualStepReached,
            obj(json!({"lead_email": "x@y.z", "lead": {"email": "a@b.c"}})),
        );
        assert_eq!(m["lead_email"], "x@y.z");
        assert!(
            m.get("to_email").is_none(),
            "`to_email` is an alias of `lead_email` here"
        );
    }
}
