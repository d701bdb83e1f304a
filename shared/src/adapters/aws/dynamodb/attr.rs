//! JSON and DynamoDB attribute values, both ways, and an item's size as
//! DynamoDB meters it.

use crate::domain::plan::Val;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

/// Levels of nesting a JSON value may use inside an item (DynamoDB allows
/// 32, the item itself being one).
const MAX_ATTR_DEPTH: usize = 30;

/// JSON -> DynamoDB attribute (maps and lists kept as such). What DynamoDB
/// cannot hold is kept as text: numbers out of its range, values nested
/// deeper than it allows; an empty map key becomes `"(empty)"`.
pub fn json_to_attr(v: &Value) -> AttributeValue {
    json_to_attr_at(v, 0)
}

fn json_to_attr_at(v: &Value, depth: usize) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !crate::domain::plan::dynamo_number_ok(f) => {
                AttributeValue::S(n.to_string())
            }
            _ => AttributeValue::N(n.to_string()),
        },
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(_) | Value::Object(_) if depth >= MAX_ATTR_DEPTH => {
            AttributeValue::S(v.to_string())
        }
        Value::Array(a) => {
            AttributeValue::L(a.iter().map(|x| json_to_attr_at(x, depth + 1)).collect())
        }
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| {
                    let k = if k.is_empty() { "(empty)" } else { k.as_str() };
                    (k.to_owned(), json_to_attr_at(v, depth + 1))
                })
                .collect(),
        ),
    }
}

/// DynamoDB attribute -> JSON (sets become sorted arrays).
pub fn attr_to_json(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_to_json).collect()),
        AttributeValue::M(m) => {
            let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), attr_to_json(v)))
                    .collect(),
            )
        }
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            Value::from(s)
        }
        AttributeValue::Ns(ns) => {
            let mut v: Vec<f64> = ns.iter().filter_map(|n| n.parse().ok()).collect();
            v.sort_by(f64::total_cmp);
            Value::Array(
                v.into_iter()
                    .map(|f| {
                        if f.fract() == 0.0 {
                            Value::from(f as i64)
                        } else {
                            Value::from(f)
                        }
                    })
                    .collect(),
            )
        }
        AttributeValue::Bs(b) => {
            let mut v: Vec<String> = b.iter().map(|b| hex::encode(b.as_ref())).collect();
            v.sort();
            Value::from(v)
        }
        _ => Value::Null,
    }
}

/// An item as JSON (for views and tools).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    attr_to_json(&AttributeValue::M(item.clone()))
}

/// Write units a write of an item this size is billed (outside a
/// transaction): one a started KB, at least one.
pub fn write_units(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// An item's size as DynamoDB meters it (attribute names plus values; numbers
/// by significant digits), in bytes: a write costs one unit per started KB,
/// two in a transaction.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn number(n: &str) -> usize {
        let digits = n
            .trim_start_matches('-')
            .replace('.', "")
            .split(['e', 'E'])
            .next()
            .unwrap_or_default()
            .trim_matches('0')
            .len();
        digits.div_ceil(2) + 1
    }
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number(n),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(|n| number(n)).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else if f.abs() >= 1e15 || f.abs() < 1e-15 {
        // DynamoDB reads exponents; Rust would spell out every digit.
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

/// A plan's value as the store writes it (numbers DynamoDB cannot hold as
/// text, JSON as maps and lists).
pub fn to_attr(v: &Val) -> AttributeValue {
    match v {
        Val::S(s) => AttributeValue::S(s.clone()),
        Val::N(n) if !crate::domain::plan::dynamo_number_ok(*n) => AttributeValue::S(n.to_string()),
        Val::N(n) => AttributeValue::N(num(*n)),
        Val::Ss(s) => AttributeValue::Ss(s.clone()),
        Val::Ns(n) => AttributeValue::Ns(n.iter().map(|f| num(*f)).collect()),
        Val::Json(j) => json_to_attr(j),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_size_follows_dynamodb_rules() {
        let item: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), AttributeValue::S("LEAD#a@b.c".into())), // 2 + 10
            ("opens".to_owned(), AttributeValue::N("12".into())),      // 5 + 2
            ("score".to_owned(), AttributeValue::N("-1.50".into())),   // 5 + 2
            (
                "flags".to_owned(),
                AttributeValue::Ss(vec!["engaged".into(), "replied".into()]),
            ), // 5 + 14
            (
                "m".to_owned(),
                AttributeValue::M([("k".to_owned(), AttributeValue::Bool(true))].into()),
            ), // 1 + 3 + 1 + 1 + 1
        ]
        .into();
        assert_eq!(item_size(&item), 12 + 7 + 7 + 19 + 7);
    }
}
