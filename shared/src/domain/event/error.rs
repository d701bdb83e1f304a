//! Why a body is not a SmartLead event, and how that is put in words.

use serde_json::Value;

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

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn short_json_error(e: &serde_json::Error) -> String {
    // serde_json's messages name the line and column but never echo input.
    let mut s = e.to_string();
    s.truncate(160);
    s
}
