//! The ingest's minimal check of a body ([`probe`]): one JSON object with
//! an event type (and its `secret_key`), read without building the document.

use super::error::{json_kind, short_json_error};
use super::{envelope_type, EventError, EventType};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

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
