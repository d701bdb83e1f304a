//! List hygiene: what it does on a bounce or an unsubscribe, and what a
//! bounce says about the address (hard or soft).

use crate::domain::event::SmartleadEvent;
use serde_json::Value;

/// What list hygiene does on a bounce or unsubscribe (`HYGIENE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HygieneMode {
    /// SmartLead's global unsubscribe of the lead (every campaign).
    Unsubscribe,
    /// The lead's address on the account's block list.
    Block,
}

/// What a bounce says about the address. SmartLead's payload has no
/// hard/soft flag, so it is read from the bounce message's SMTP status:
/// an enhanced code `5.x.x` (or a reply code `5xx`) is hard, `4.x.x` /
/// `4xx` soft; an explicit `bounce_type` of `hard`/`soft` wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    Hard,
    Soft,
    /// No status code found: treated as hard (SmartLead counts it as a bounce).
    Unknown,
}

pub fn bounce_kind(ev: &SmartleadEvent) -> BounceKind {
    for field in ["bounce_type", "bounce_category"] {
        match ev
            .view()
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some(t) if t.contains("soft") => return BounceKind::Soft,
            Some(t) if t.contains("hard") => return BounceKind::Hard,
            _ => {}
        }
    }
    let mut texts = Vec::new();
    match ev.view().get("bounce_message") {
        Some(Value::String(t)) => texts.push(t.clone()),
        Some(m) => {
            texts.extend(m.get("text").and_then(Value::as_str).map(str::to_owned));
            texts.extend(
                m.get("html")
                    .and_then(Value::as_str)
                    .map(crate::domain::plan::strip_html),
            );
        }
        None => {}
    }
    // The deprecated generation's spellings, and the nested shapes'.
    for field in [
        "bounce_reason",
        "bounce_reply_email_preview",
        "bounce_reply_email",
    ] {
        texts.extend(
            ev.view()
                .get(field)
                .and_then(Value::as_str)
                .map(crate::domain::plan::strip_html),
        );
    }
    let tokens: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.split(|c: char| !(c.is_ascii_digit() || c == '.')))
        .map(|t| t.trim_end_matches('.'))
        .collect();
    let class = |t: &str| match t.as_bytes().first() {
        Some(b'5') => Some(BounceKind::Hard),
        Some(b'4') => Some(BounceKind::Soft),
        _ => None,
    };
    let enhanced = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() == 3
            && parts[0].len() == 1
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let reply = |t: &str| t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit());
    tokens
        .iter()
        .find(|t| enhanced(t))
        .or_else(|| tokens.iter().find(|t| reply(t)))
        .and_then(|t| class(t))
        .unwrap_or(BounceKind::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::effects::test_event as ev;
    use serde_json::json;

    #[test]
    fn bounces_are_hard_or_soft_by_their_smtp_status() {
        let b = |extra: Value| {
            let mut v = json!({"event_type": "EMAIL_BOUNCE", "to_email": "a@b.c"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            bounce_kind(&ev(v))
        };
        let fixture = SmartleadEvent::from_slice(include_bytes!(
            "../../../../events/payloads/email_bounce.json"
        ))
        .unwrap();
        assert_eq!(bounce_kind(&fixture), BounceKind::Hard);
        assert_eq!(
            b(json!({"bounce_message": {"text": "452 4.2.2 Mailbox full, try again later"}})),
            BounceKind::Soft
        );
        assert_eq!(
            b(json!({"bounce_message": {"html": "<p>421 Service not available</p>"}})),
            BounceKind::Soft
        );
        assert_eq!(
            b(json!({"bounce_message": "550 User unknown"})),
            BounceKind::Hard
        );
        assert_eq!(b(json!({"bounce_type": "SOFT"})), BounceKind::Soft);
        // The deprecated generation's spellings.
        assert_eq!(
            b(json!({"bounce_reply_email_preview": "452 4.2.2 Mailbox full"})),
            BounceKind::Soft
        );
        assert_eq!(
            b(json!({"bounce_reply_email": "<p>421 Try later</p>"})),
            BounceKind::Soft
        );
        assert_eq!(b(json!({})), BounceKind::Unknown);
    }
}
