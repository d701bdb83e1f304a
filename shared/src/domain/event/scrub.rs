//! SmartLead's webhook secret kept out of what the pipeline stores,
//! publishes, alerts and logs: secret fields removed from JSON at any
//! depth, or redacted in text. (The webhook queue's own messages, a
//! redrive's or a webhook sent back, carry the body as SmartLead sent it.)

use serde_json::{Map, Value};
use std::borrow::Cow;

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
