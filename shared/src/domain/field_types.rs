//! Forgiving field types for SmartLead payloads.
//!
//! SmartLead's documentation and its real payloads disagree about types: ids
//! arrive as numbers or as numeric strings, optional fields are missing or
//! `null`, and an undocumented variant may put an object where a string was
//! expected. A field of one of these types never makes a whole event fail to
//! parse: a value of the wrong shape reads as absent in the typed view, and
//! the untouched original stays in [`crate::domain::event::SmartleadEvent::raw`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::fmt;

/// An optional field that reads as `None` when missing, `null`, or of the
/// wrong type, instead of failing the parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl Lenient<String> {
    /// The value as `&str`, with surrounding white space removed; blank reads as absent.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Lenient(None));
        }
        Ok(Lenient(T::deserialize(v).ok()))
    }
}

/// An identifier that SmartLead sends as a number (`123`) or a string (`"123"`).
/// Both spellings give the same canonical text, so keys and table entries agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn new(s: impl Into<String>) -> Option<Id> {
        let s = s.into();
        let t = s.trim();
        if t.is_empty() {
            None
        } else if t.len() == s.len() {
            Some(Id(s))
        } else {
            Some(Id(t.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Reads an id from any JSON value: integers, integral floats and non-blank strings.
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::String(s) => Id::new(s.as_str()),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(Id(i.to_string()))
                } else if let Some(u) = n.as_u64() {
                    Some(Id(u.to_string()))
                } else {
                    let f = n.as_f64()?;
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        Some(Id(format!("{}", f as i64)))
                    } else {
                        Some(Id(n.to_string()))
                    }
                }
            }
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Id::from_value(&v)
            .ok_or_else(|| serde::de::Error::custom("id must be a number or a non-blank string"))
    }
}

/// A small non-negative integer (sequence numbers) sent as `1` or `"1"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Num(pub u32);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        n.and_then(|n| u32::try_from(n).ok())
            .map(Num)
            .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer"))
    }
}

/// `link_clicked` is documented as an array of URLs; a single string is
/// accepted too, and (for `link_details`, whose shape SmartLead's page
/// leaves blank) objects naming a `url`, `link` or `href`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Links(pub Vec<String>);

impl<'de> Deserialize<'de> for Links {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn url(v: &Value) -> Option<String> {
            let s = match v {
                Value::String(s) => s.as_str(),
                Value::Object(o) => ["url", "link", "href"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_str))?,
                _ => return None,
            };
            Some(s.trim().to_owned()).filter(|s| !s.is_empty())
        }
        let v = Value::deserialize(d)?;
        let out = match &v {
            Value::Array(items) => items.iter().filter_map(url).collect(),
            other => url(other).into_iter().collect(),
        };
        Ok(Links(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_from_numbers_and_strings_agree() {
        assert_eq!(Id::from_value(&json!(123)), Id::from_value(&json!("123")));
        assert_eq!(Id::from_value(&json!(" 123 ")).unwrap().as_str(), "123");
        assert_eq!(Id::from_value(&json!(123.0)).unwrap().as_str(), "123");
        assert_eq!(Id::from_value(&json!("")), None);
        assert_eq!(Id::from_value(&json!({"a": 1})), None);
        assert_eq!(Id::from_value(&json!(null)), None);
    }

    #[test]
    fn lenient_reads_wrong_types_as_absent() {
        let v: Lenient<String> = serde_json::from_value(json!(42)).unwrap();
        assert_eq!(v.0, None);
        let v: Lenient<Num> = serde_json::from_value(json!("3")).unwrap();
        assert_eq!(v.0, Some(Num(3)));
        let v: Lenient<Num> = serde_json::from_value(json!(-3)).unwrap();
        assert_eq!(v.0, None);
        let v: Lenient<Id> = serde_json::from_value(json!(true)).unwrap();
        assert_eq!(v.0, None);
    }

    #[test]
    fn links_accept_string_or_array() {
        let l: Links = serde_json::from_value(json!("https://a")).unwrap();
        assert_eq!(l.0, vec!["https://a"]);
        let l: Links = serde_json::from_value(json!(["https://a", 3, "", "https://b"])).unwrap();
        assert_eq!(l.0, vec!["https://a", "https://b"]);
        let l: Links = serde_json::from_value(json!({"url": " https://c "})).unwrap();
        assert_eq!(l.0, vec!["https://c"]);
        let l: Links = serde_json::from_value(json!([{"href": "https://d"}, {"x": 1}])).unwrap();
        assert_eq!(l.0, vec!["https://d"]);
    }
}
