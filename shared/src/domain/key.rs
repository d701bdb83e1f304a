//! Idempotency keys.
//!
//! SmartLead retries a webhook that got no timely 2xx, and SQS delivers at
//! least once, so one event can arrive several times. Each event gets a key
//! that is the same for every delivery of that event and different for two
//! different events. The strongest basis the event carries wins:
//!
//! | event type | basis, first that applies |
//! |---|---|
//! | any type | SmartLead's event id: the envelope's `id`, else the request's `X-Request-Id` (basis `event`) |
//! | EMAIL_BOUNCE | `stats_id` (one bounce per sent e-mail); the bounced `message_id`; fields; body |
//! | EMAIL_SENT, FIRST_EMAIL_SENT | `message_id` (or `sent_message.message_id`); `stats_id`; fields; body |
//! | EMAIL_REPLY | the reply's own `reply_message.message_id`; fields; body |
//! | EMAIL_OPEN | fields: campaign + lead e-mail + sequence number + `time_opened` (+ `stats_id`); body |
//! | EMAIL_LINK_CLICK | fields: as opens, with `time_clicked` and the clicked links; body |
//! | LEAD_UNSUBSCRIBED | fields: campaign + lead e-mail (+ time when sent): a lead unsubscribes from a campaign once |
//! | LEAD_CATEGORY_UPDATED | fields: campaign + lead + category + event time; body when there is no time |
//! | account and campaign events | fields: the account or campaign + event time; body when there is no time |
//! | unknown types | body |
//!
//! "fields" is SmartLead's own advice (`campaign_id + to_email + event_type +
//! timestamp`), with the time parsed into one canonical form so spellings of
//! one instant agree. "body" is a SHA-256 of the canonical JSON (keys sorted,
//! no white space), so the key is stable under field reordering and
//! formatting. The key text is `<EVENT_TYPE>:<basis>:<32 hex digits>`: no
//! e-mail address appears in it, so it is safe to log.

use crate::domain::event::{EventData, EventType, Normalized, SmartleadEvent};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DedupKey(String);

impl DedupKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Which basis the key was made from: `event`, `stats`, `msg`, `fields` or `body`.
    pub fn basis(&self) -> &str {
        self.0.rsplit(':').nth(1).unwrap_or("")
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn make(kind: &EventType, basis: &str, parts: &[&str]) -> DedupKey {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update([0x1e]);
    h.update(basis.as_bytes());
    for p in parts {
        h.update([0x1f]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    DedupKey(format!(
        "{}:{}:{}",
        kind.as_str(),
        basis,
        hex::encode(&digest[..16])
    ))
}

/// The body basis: a hash of the canonical JSON of the whole event.
pub fn body_key(kind: &EventType, raw: &Map<String, Value>) -> DedupKey {
    let canon = canonical_json(&Value::Object(raw.clone()));
    make(kind, "body", &[&canon])
}

/// JSON with object keys sorted and no insignificant white space; numbers
/// and strings as serde_json writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub(crate) fn dedup_key(ev: &SmartleadEvent, n: &Normalized) -> DedupKey {
    let kind = &ev.event_type;
    let campaign = n.campaign_id.as_ref().map(|c| c.as_str()).unwrap_or("");
    let lead = n
        .lead_email
        .as_deref()
        .or(n.lead_id.as_ref().map(|i| i.as_str()));
    let time = n.event_time.map(|t| t.to_string());
    let seq = n.sequence_number.map(|s| s.to_string()).unwrap_or_default();
    let stats = n.stats_id.as_ref().map(|s| s.as_str());
    let msg = n.message_id.as_deref();
    // Where the event names itself (stats id, message id, lead + time), that
    // is the key, with or without SmartLead's event id: a manual re-send, a
    // proxy that drops `X-Request-Id` or a retry across a deploy stays a
    // duplicate. Only where the body hash would be the basis does SmartLead's
    // own event id (the envelope's `id`, else `X-Request-Id`) take its place:
    // the same on every retry, whatever else the retry changes
    // (`meta.attempt`). Without either, the body hash leaves out what a
    // retry changes (an envelope's `meta` and `links`).
    let body = || match ev.event_id() {
        Some(id) => make(kind, "event", &[&id]),
        None => body_key(kind, &ev.stable_body()),
    };
    match &ev.data {
        EventData::EmailBounce(_) => {
            if let Some(s) = stats {
                return make(kind, "stats", &[s]);
            }
            if let Some(m) = msg {
                return make(kind, "msg", &[m]);
            }
            match (lead, &time) {
                (Some(l), Some(t)) => make(kind, "fields", &[campaign, l, &seq, t]),
                _ => body(),
            }
        }
        EventData::EmailSent(_) | EventData::FirstEmailSent(_) => {
            if let Some(m) = msg {
                return make(kind, "msg", &[m]);
            }
            if let Some(s) = stats {
                return make(kind, "stats", &[s]);
            }
            match (lead, &time) {
                (Some(l), Some(t)) => make(kind, "fields", &[campaign, l, &seq, t]),
                _ => body(),
            }
        }
        EventData::EmailReply(r) => {
            if let Some(m) = r.reply_message.get().and_then(|m| m.message_id.text()) {
                return make(kind, "msg", &[m]);
            }
            match (lead, &time) {
                (Some(l), Some(t)) => make(kind, "fields", &[campaign, l, &seq, t]),
                _ => body(),
            }
        }
        EventData::EmailOpen(_) => match (lead, &time) {
            (Some(l), Some(t)) => {
                make(kind, "fields", &[campaign, l, &seq, t, stats.unwrap_or("")])
            }
            _ => body(),
        },
        EventData::EmailLinkClick(c) => match (lead, &time) {
            (Some(l), Some(t)) => {
                let mut links: Vec<&str> = c.link_clicked.0.iter().map(String::as_str).collect();
                links.sort_unstable();
                links.dedup();
                let links = links.join("\u{1d}");
                make(
                    kind,
                    "fields",
                    &[campaign, l, &seq, t, stats.unwrap_or(""), &links],
                )
            }
            _ => body(),
        },
        EventData::LeadUnsubscribed(_) => match lead {
            Some(l) => make(
                kind,
                "fields",
                &[campaign, l, time.as_deref().unwrap_or("")],
            ),
            None => body(),
        },
        EventData::LeadCategoryUpdated(c) => match (lead, &time) {
            (Some(l), Some(t)) => {
                let cat_id = c.lead_category_id.get().map(|i| i.as_str()).unwrap_or("");
                let cat_name = c
                    .category
                    .get()
                    .and_then(|c| c.name.as_deref())
                    .unwrap_or("");
                make(kind, "fields", &[campaign, l, cat_id, cat_name, t])
            }
            _ => body(),
        },
        EventData::CampaignStatusChanged(s) => match (&n.campaign_id, &time) {
            (Some(c), Some(t)) => make(
                kind,
                "fields",
                &[c.as_str(), s.status.text().unwrap_or(""), t],
            ),
            _ => body(),
        },
        EventData::UntrackedReplies(_) => match (msg, lead, &time) {
            (Some(m), _, _) => make(kind, "msg", &[m]),
            (None, Some(l), Some(t)) => make(
                kind,
                "fields",
                &[l, n.sender_email.as_deref().unwrap_or(""), t],
            ),
            _ => body(),
        },
        EventData::ManualStepReached(_) => match (lead, &time) {
            (Some(l), Some(t)) => make(kind, "fields", &[campaign, l, &seq, t]),
            _ => body(),
        },
        EventData::EmailAccountDisconnected(_) | EventData::LinkedinDisconnected(_) => {
            let account = n
                .account_id
                .as_ref()
                .map(|a| a.as_str())
                .or(n.sender_email.as_deref());
            match (account, &time) {
                (Some(a), Some(t)) => make(kind, "fields", &[a, t]),
                _ => body(),
            }
        }
        EventData::CampaignBounceBreach(_) => match (&n.campaign_id, &time) {
            (Some(c), Some(t)) => make(kind, "fields", &[c.as_str(), t]),
            _ => body(),
        },
        EventData::Unknown => body(),
    }
}
