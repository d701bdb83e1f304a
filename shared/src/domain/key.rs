//! Idempotency keys.
//!
//! SmartLead retries a webhook that got no timely 2xx, and SQS delivers at
//! least once, so one event can arrive several times. Each event gets a key
//! that is the same for every delivery of that event and different for two
//! different events. The strongest basis the event carries wins.
//!
//! The bases, first that applies, by event type: `docs/events.md` ("Idempotency keys").
//!
//! SmartLead's own ids (`sl_email_lead_id`, `sl_email_lead_map_id`,
//! `stats_thread_id`) are no key part: a lead, a lead in a campaign and a
//! thread each hold many events, which those bases already tell apart,
//! so they would split no two events the bases join (and a delivery with
//! them and one without stay one event). `sl_email_lead_id` stands in for
//! the lead only where the body names no e-mail address (as `lead_id`).
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
    /// A key as it was stored or sent (an effect message's `dedup_key`).
    pub fn from_stored(key: impl Into<String>) -> DedupKey {
        DedupKey(key.into())
    }

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

/// What the key of an event may be built from: its normalized fields.
struct Basis<'a> {
    kind: &'a EventType,
    campaign: &'a str,
    lead: Option<&'a str>,
    time: Option<String>,
    seq: String,
    stats: Option<&'a str>,
    msg: Option<&'a str>,
}

impl<'a> Basis<'a> {
    fn new(ev: &'a SmartleadEvent, n: &'a Normalized) -> Self {
        Basis {
            kind: &ev.event_type,
            campaign: n.campaign_id.as_ref().map(|c| c.as_str()).unwrap_or(""),
            lead: n
                .lead_email
                .as_deref()
                .or(n.lead_id.as_ref().map(|i| i.as_str())),
            time: n.event_time.map(|t| t.to_string()),
            seq: n.sequence_number.map(|s| s.to_string()).unwrap_or_default(),
            stats: n.stats_id.as_ref().map(|s| s.as_str()),
            msg: n.message_id.as_deref(),
        }
    }

    fn make(&self, basis: &str, parts: &[&str]) -> DedupKey {
        make(self.kind, basis, parts)
    }

    fn stats_key(&self) -> Option<DedupKey> {
        self.stats.map(|s| self.make("stats", &[s]))
    }

    fn msg_key(&self) -> Option<DedupKey> {
        self.msg.map(|m| self.make("msg", &[m]))
    }

    /// A key that needs the lead and the time: `key(lead, time)`, if both
    /// are known.
    fn lead_at(&self, key: impl FnOnce(&str, &str) -> DedupKey) -> Option<DedupKey> {
        Some(key(self.lead?, self.time.as_deref()?))
    }

    /// Campaign, lead, sequence step and time: a step's e-mail event.
    fn step_fields(&self) -> Option<DedupKey> {
        self.lead_at(|l, t| self.make("fields", &[self.campaign, l, &self.seq, t]))
    }

    /// The fields basis from one named thing (`who`) and the time.
    fn who_at(&self, who: Option<&str>) -> Option<DedupKey> {
        Some(self.make("fields", &[who?, self.time.as_deref()?]))
    }
}

pub(crate) fn dedup_key(ev: &SmartleadEvent, n: &Normalized) -> DedupKey {
    // Where the event names itself (stats id, message id, lead + time), that
    // is the key, with or without SmartLead's event id: a manual re-send, a
    // proxy that drops `X-Request-Id` or a retry across a deploy stays a
    // duplicate. Only where the body hash would be the basis does SmartLead's
    // own event id (the envelope's `id`, else `X-Request-Id`) take its place:
    // the same on every retry, whatever else the retry changes
    // (`meta.attempt`). Without either, the body hash leaves out what a
    // retry changes (an envelope's `meta` and `links`).
    let b = Basis::new(ev, n);
    named_key(&b, ev, n).unwrap_or_else(|| match ev.event_id() {
        Some(id) => b.make("event", &[&id]),
        None => body_key(b.kind, &ev.stable_body()),
    })
}

/// The key from what the event names itself by, if it names itself.
fn named_key(b: &Basis, ev: &SmartleadEvent, n: &Normalized) -> Option<DedupKey> {
    let stats = b.stats.unwrap_or("");
    match &ev.data {
        EventData::EmailBounce(_) => b
            .stats_key()
            .or_else(|| b.msg_key())
            .or_else(|| b.step_fields()),
        EventData::EmailSent(_) | EventData::FirstEmailSent(_) => b
            .msg_key()
            .or_else(|| b.stats_key())
            .or_else(|| b.step_fields()),
        EventData::EmailReply(r) => r
            .reply_message
            .get()
            .and_then(|m| m.message_id.text())
            .map(|m| b.make("msg", &[m]))
            .or_else(|| match n.replied_by.as_deref() {
                // A colleague's reply and the lead's own in the same second
                // are two replies.
                Some(by) => b.lead_at(|l, t| b.make("fields", &[b.campaign, l, &b.seq, t, by])),
                None => b.step_fields(),
            }),
        EventData::EmailOpen(_) => {
            b.lead_at(|l, t| b.make("fields", &[b.campaign, l, &b.seq, t, stats]))
        }
        EventData::EmailLinkClick(c) => b.lead_at(|l, t| {
            b.make(
                "fields",
                &[b.campaign, l, &b.seq, t, stats, &clicked(c.links())],
            )
        }),
        EventData::LeadUnsubscribed(_) => b
            .lead
            .map(|l| b.make("fields", &[b.campaign, l, b.time.as_deref().unwrap_or("")])),
        EventData::LeadCategoryUpdated(c) => b.lead_at(|l, t| {
            let (cat_id, cat_name) = c.key_category();
            let (cat_id, cat_name) = (cat_id.unwrap_or(""), cat_name.unwrap_or(""));
            b.make("fields", &[b.campaign, l, cat_id, cat_name, t])
        }),
        EventData::CampaignStatusChanged(s) => {
            let c = n.campaign_id.as_ref()?;
            let t = b.time.as_deref()?;
            Some(b.make("fields", &[c.as_str(), s.status().unwrap_or(""), t]))
        }
        EventData::UntrackedReplies(_) => b.msg_key().or_else(|| {
            b.lead_at(|l, t| b.make("fields", &[l, n.sender_email.as_deref().unwrap_or(""), t]))
        }),
        EventData::ManualStepReached(_) => b.step_fields(),
        EventData::EmailAccountDisconnected(_) | EventData::LinkedinDisconnected(_) => {
            let account = n.account_id.as_ref().map(|a| a.as_str());
            b.who_at(account.or(n.sender_email.as_deref()))
        }
        EventData::CampaignBounceBreach(_) => b.who_at(n.campaign_id.as_ref().map(|c| c.as_str())),
        EventData::Unknown => None,
    }
}

/// The clicked links, sorted and deduplicated, as one key part.
fn clicked(links: &[String]) -> String {
    let mut links: Vec<&str> = links.iter().map(String::as_str).collect();
    links.sort_unstable();
    links.dedup();
    links.join("\u{1d}")
}
