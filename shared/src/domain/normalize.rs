//! The normalized view: the same questions answered for every event type.
//!
//! | field | read from, first found wins |
//! |---|---|
//! | lead e-mail | `to_email`; `lead_email` (manual steps: `lead_email` first, their page's name); `lead_data.email`; `to` (category events); `email` (lead events); a reply's `leadCorrespondence.targetLeadEmail`, `sl_lead_email` first; an untracked reply's `sender_detail` (`Name <addr>`), then `from_email` |
//! | who replied, copies | a reply's `leadCorrespondence.replyReceivedFrom`, else `to_email` when it is not the lead; `cc_emails` |
//! | campaign id | `campaign_id` / `campaignId` |
//! | event time | `event_timestamp` (current generation), then per type the deprecated `time_sent` (sends, bounces), `time_opened`, `time_clicked`, `time_replied`, then the message's `time`, then `timestamp`, `time`, `created_at` |
//! | message id | replies: `reply_message.message_id`, then `message_id`; others: `sent_message.message_id` (or its `id`), then `message_id` |
//! | reply text, link, reason | `reply_message.text` / `preview_text` / the text of `reply_message.html` or `reply_body` (untracked: `visible_text` first); the last of `link_details`, else of `link_clicked`; `bounce_message`, else `bounce_reply_email_preview` / `bounce_reply_email`, the account's `error` |
//! | campaign status | a status change's new status, else `campaign_status` |
//! | category, previous category | `lead_category.new_name` / `old_name`; `category`, `lead_data.category.name` |
//! | event id, webhook level | the envelope's `id`, else `X-Request-Id`; `X-Webhook-Level`, else `meta.level` |
//!
//! Nested and envelope bodies are read through their flat translation
//! ([`crate::domain::shape`]), so every field above is found in every shape.

use crate::domain::event::{
    EmailFields, EmailReply, EventData, LeadCategoryUpdated, MessageRef, Normalized,
    SmartleadEvent, UntrackedReply,
};
use crate::domain::field_types::{Id, Lenient, Num};
use crate::domain::time::EventTime;
use serde_json::{Map, Value};

fn email(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| s.contains('@'))
        .map(str::to_ascii_lowercase)
}

fn text(l: &Lenient<String>) -> Option<String> {
    l.text().map(str::to_owned)
}

fn time(v: &Lenient<Value>) -> Option<EventTime> {
    v.get().and_then(EventTime::from_value)
}

fn msg_time(m: &Lenient<MessageRef>) -> Option<EventTime> {
    m.get().and_then(|m| time(&m.time))
}

fn msg_id(m: &Lenient<MessageRef>) -> Option<String> {
    m.get().and_then(MessageRef::msg_id).map(str::to_owned)
}

/// Generic fallbacks read straight from the raw object.
const TIME_KEYS: [&str; 7] = [
    "event_timestamp",
    "eventTimestamp",
    "timestamp",
    "time",
    crate::domain::shape::ENVELOPE_TIME,
    "created_at",
    "createdAt",
];
const EMAIL_KEYS: [&str; 3] = ["to_email", "lead_email", "email"];

fn raw_str<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    raw.get(key).and_then(Value::as_str)
}

pub(crate) fn normalize(ev: &SmartleadEvent) -> Normalized {
    let mut n = Normalized {
        event_type: ev.event_type.as_str().to_owned(),
        ..Default::default()
    };
    if let Some(f) = fill_typed(&mut n, &ev.data) {
        fill_email(&mut n, f);
    }
    if let EventData::EmailReply(r) = &ev.data {
        fill_correspondence(&mut n, r);
    }
    fill_common(&mut n, ev);
    // The client the consumer resolved (an agency's deployment: the
    // payload's, unless the authenticated URL names another).
    if let Some(c) = ev.client.as_deref().and_then(Id::new) {
        n.client_id = Some(c);
    }
    n
}

/// What the typed view gives; returns the shared fields of the per-message
/// events (sent, open, click, reply, bounce), read after it. The event's
/// time is `event_timestamp` (current generation), else the type's
/// deprecated `time_*` field, else its message's time.
fn fill_typed<'a>(n: &mut Normalized, data: &'a EventData) -> Option<&'a EmailFields> {
    let (fields, event_time) = match data {
        EventData::EmailSent(e) | EventData::FirstEmailSent(e) => (
            &e.email,
            time(&e.time_sent).or_else(|| msg_time(&e.email.sent_message)),
        ),
        EventData::EmailOpen(e) => (&e.email, time(&e.time_opened)),
        EventData::EmailLinkClick(e) => (&e.email, time(&e.time_clicked)),
        EventData::EmailReply(e) => {
            // The reply's own id; `message_id` is its deprecated spelling.
            n.message_id = msg_id(&e.reply_message).or_else(|| text(&e.email.message_id));
            let t = time(&e.time_replied).or_else(|| msg_time(&e.reply_message));
            (&e.email, t)
        }
        EventData::EmailBounce(e) => (&e.email, time(&e.time_sent)),
        other => {
            fill_other(n, other);
            return None;
        }
    };
    n.event_time = time(&fields.envelope.event_timestamp).or(event_time);
    Some(fields)
}

/// The lead, campaign and account events.
fn fill_other(n: &mut Normalized, data: &EventData) {
    match data {
        EventData::LeadUnsubscribed(e) => {
            n.lead_email = email(e.to_email.text()).or_else(|| email(e.lead_email.text()));
            let name = first(&e.to_name, &e.lead_name);
            fill_lead(n, name, &e.lead_id, &e.sequence_number);
            n.sender_email = email(e.from_email.text());
            fill_envelope(n, &e.envelope);
        }
        EventData::LeadCategoryUpdated(e) => fill_category(n, e),
        EventData::CampaignStatusChanged(e) => {
            n.campaign_status = e.status().map(str::to_owned);
            fill_envelope(n, &e.envelope);
        }
        EventData::UntrackedReplies(e) => fill_untracked(n, e),
        EventData::ManualStepReached(e) => {
            // Its page spells the lead `lead_email` / `lead_name`.
            n.lead_email = email(e.lead_email.text()).or_else(|| email(e.to_email.text()));
            let seq = match e.current_sequence_number.get() {
                Some(_) => &e.current_sequence_number,
                None => &e.sequence_number,
            };
            fill_lead(n, first(&e.lead_name, &e.to_name), &e.lead_id, seq);
            fill_envelope(n, &e.envelope);
        }
        EventData::EmailAccountDisconnected(e) | EventData::LinkedinDisconnected(e) => {
            fill_mailbox(n, &e.account_id, &e.email, &e.app_url, &e.event_timestamp);
        }
        EventData::CampaignBounceBreach(e) => {
            n.campaign_id = e.campaign_id.get().cloned();
            n.campaign_name = text(&e.campaign_name);
            fill_mailbox(n, &e.account_id, &e.email, &e.app_url, &e.event_timestamp);
        }
        _ => {}
    }
}

/// `a` when it has text, else `b`.
fn first<'a>(a: &'a Lenient<String>, b: &'a Lenient<String>) -> &'a Lenient<String> {
    if a.text().is_some() {
        a
    } else {
        b
    }
}

/// An untracked reply's lead is whoever wrote in (`sender_detail`, else
/// `from_email`); its mailbox the one it reached (`recipient_detail`, else
/// `to_email`).
fn fill_untracked(n: &mut Normalized, e: &UntrackedReply) {
    // The first address of a `Name <addr>, ...` list.
    let first_address = |l: &Lenient<String>| l.text()?.split(',').find_map(address);
    n.lead_email = first_address(&e.sender_detail).or_else(|| email(e.from_email.text()));
    n.sender_email = first_address(&e.recipient_detail).or_else(|| email(e.to_email.text()));
    n.message_id = msg_id(&e.reply_message).or_else(|| text(&e.message_id));
    n.event_time = time(&e.envelope.event_timestamp)
        .or_else(|| time(&e.time_replied))
        .or_else(|| msg_time(&e.reply_message));
    fill_envelope(n, &e.envelope);
}

fn fill_lead(n: &mut Normalized, name: &Lenient<String>, id: &Lenient<Id>, seq: &Lenient<Num>) {
    n.lead_name = text(name);
    n.lead_id = id.get().cloned();
    n.sequence_number = seq.get().map(|s| s.0);
}

/// The sending mailbox an account-level event names.
fn fill_mailbox(
    n: &mut Normalized,
    account_id: &Lenient<Id>,
    mailbox: &Lenient<String>,
    app_url: &Lenient<String>,
    at: &Lenient<Value>,
) {
    n.account_id = account_id.get().cloned();
    n.sender_email = email(mailbox.text());
    n.app_url = text(app_url);
    n.event_time = time(at);
}

fn fill_category(n: &mut Normalized, e: &LeadCategoryUpdated) {
    let data = e.lead_data.get();
    n.lead_email = email(e.to_email.text())
        .or_else(|| email(e.lead_email.text()))
        .or_else(|| data.and_then(|d| email(d.email.text())))
        .or_else(|| email(e.to.text()));
    n.lead_name = text(first(&e.to_name, &e.lead_name)).or_else(|| {
        data.and_then(|d| {
            let full = [d.first_name.text(), d.last_name.text()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.is_empty()).then_some(full)
        })
    });
    n.lead_id = e
        .lead_id
        .get()
        .or_else(|| data.and_then(|d| d.id.get()))
        .cloned();
    n.sender_email = email(e.from_email.text()).or_else(|| email(e.from.text()));
    n.category = e.new_category().name;
    n.previous_category = e.old_category().and_then(|c| c.name);
    fill_envelope(n, &e.envelope);
}

/// The shared fields of the per-message events.
fn fill_email(n: &mut Normalized, f: &EmailFields) {
    n.lead_email = email(f.to_email.text());
    n.lead_name = text(&f.to_name);
    n.lead_id = f.lead_id.get().cloned();
    n.sequence_number = f.sequence_number.get().map(|s| s.0);
    n.stats_id = f.stats_id.get().cloned();
    n.sender_email = email(f.from_email.text());
    if n.message_id.is_none() {
        n.message_id = msg_id(&f.sent_message).or_else(|| text(&f.message_id));
    }
    fill_envelope(n, &f.envelope);
}

/// A reply files under the lead that was e-mailed
/// (`leadCorrespondence.targetLeadEmail`, else `sl_lead_email`, else
/// `to_email`) and names who actually wrote it when that was someone else
/// (`replyReceivedFrom`, else `to_email`: the page's "lead that replies OR
/// alias"), whose name `to_name` then is.
fn fill_correspondence(n: &mut Normalized, r: &EmailReply) {
    let lc = r.lead_correspondence.get();
    let to = n.lead_email.take();
    // `Name <addr>`, or a list of them: its first address.
    let first = |l: &Lenient<String>| l.text()?.split(',').find_map(address);
    let target = lc
        .and_then(|c| first(&c.target_lead_email))
        .or_else(|| first(&r.sl_lead_email));
    n.lead_email = target.or_else(|| to.clone());
    n.replied_by = lc
        .and_then(|c| first(&c.reply_received_from))
        .or(to)
        .filter(|from| Some(from) != n.lead_email.as_ref());
    // `to_name` may name whoever wrote: not the lead's name then.
    if n.replied_by.is_some() {
        n.lead_name = None;
    }
    n.cc_emails = r.cc_emails.get().map(addresses);
}

/// The address of `Name <addr>` or of a bare `addr`, lower-cased.
pub(crate) fn address(s: &str) -> Option<String> {
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    email(Some(inner))
}

/// Addresses from a list (strings, or objects with an `email`) or a
/// comma-separated string; at most [`MAX_ADDRESSES`].
fn addresses(v: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => address(s),
        Value::Object(o) => o.get("email").and_then(Value::as_str).and_then(address),
        _ => None,
    };
    let mut out: Vec<String> = match v {
        Value::Array(a) => a.iter().filter_map(one).collect(),
        Value::String(s) => s.split(',').filter_map(address).collect(),
        _ => Vec::new(),
    };
    out.truncate(MAX_ADDRESSES);
    out
}

/// Addresses kept of a copy list.
const MAX_ADDRESSES: usize = 50;

/// What every event type fills alike: the raw fallbacks, the details, the
/// event id, the webhook level and the shape.
fn fill_common(n: &mut Normalized, ev: &SmartleadEvent) {
    // Account-level events name the sending mailbox, never a lead.
    let about_a_lead = !matches!(
        ev.data,
        EventData::EmailAccountDisconnected(_)
            | EventData::LinkedinDisconnected(_)
            | EventData::CampaignBounceBreach(_)
            | EventData::CampaignStatusChanged(_)
    );
    let view = ev.view();
    fill_from_raw(n, view, about_a_lead);
    fill_details(n, ev);
    if n.account_id.is_none() {
        n.account_id = view.get("email_account_id").and_then(Id::from_value);
    }
    n.event_id = ev.event_id();
    n.webhook_level = ev.webhook_level.clone().or_else(|| {
        ev.raw
            .get("meta")
            .and_then(|m| m.get("level"))
            .and_then(Value::as_str)
            .and_then(crate::domain::event::webhook_level)
    });
    n.shape = (ev.shape != crate::domain::shape::Shape::Flat).then_some(ev.shape);
}

/// Reply text, clicked link, bounce reason or account error.
fn fill_details(n: &mut Normalized, ev: &SmartleadEvent) {
    match &ev.data {
        EventData::EmailReply(r) => n.reply_text = r.text(),
        EventData::EmailLinkClick(c) => n.link = c.links().last().cloned(),
        EventData::EmailBounce(b) => n.reason = b.reason(),
        EventData::EmailAccountDisconnected(a) | EventData::LinkedinDisconnected(a) => {
            n.reason = text(&a.error).or_else(|| text(&a.message))
        }
        EventData::UntrackedReplies(u) => n.reply_text = u.text(),
        _ => {}
    }
    // A preview, not the message: the view travels in bus events and logs.
    for f in [&mut n.reply_text, &mut n.link, &mut n.reason] {
        if let Some(v) = f.as_mut() {
            let cut = crate::domain::plan::cut_bytes(v, DETAIL_BYTES).len();
            v.truncate(cut);
        }
    }
}

/// At most this many bytes of reply text, link or reason in the view.
const DETAIL_BYTES: usize = 2048;

fn fill_envelope(n: &mut Normalized, e: &crate::domain::event::Envelope) {
    n.campaign_id = n
        .campaign_id
        .take()
        .or_else(|| e.campaign_id.get().cloned());
    n.campaign_name = n.campaign_name.take().or_else(|| text(&e.campaign_name));
    n.client_id = n.client_id.take().or_else(|| e.client_id.get().cloned());
    n.campaign_status = n
        .campaign_status
        .take()
        .or_else(|| text(&e.campaign_status));
    n.app_url = n
        .app_url
        .take()
        .or_else(|| text(&e.app_url))
        .or_else(|| text(&e.ui_master_inbox_link));
    n.sl_email_lead_id = e.sl_email_lead_id.get().cloned();
    n.sl_email_lead_map_id = e.sl_email_lead_map_id.get().cloned();
    n.stats_thread_id = e.stats_thread_id.get().cloned();
    if n.lead_id.is_none() {
        n.lead_id = n.sl_email_lead_id.clone();
    }
    // `created_at` (which in an envelope's `data` may be the lead's) is
    // left to the raw fallbacks, after the envelope's own time.
    if n.event_time.is_none() {
        n.event_time = time(&e.event_timestamp);
    }
}

/// Last resort for anything the typed view did not give (unknown types, or a
/// typed view that could not be read): look at the raw object directly.
fn fill_from_raw(n: &mut Normalized, raw: &Map<String, Value>, about_a_lead: bool) {
    if about_a_lead && n.lead_email.is_none() {
        n.lead_email = EMAIL_KEYS
            .iter()
            .find_map(|k| email(raw_str(raw, k)))
            .or_else(|| {
                raw.get("lead_data")
                    .and_then(|d| d.get("email"))
                    .and_then(Value::as_str)
                    .and_then(|s| email(Some(s)))
            });
    }
    if n.campaign_id.is_none() {
        n.campaign_id = ["campaign_id", "campaignId"]
            .iter()
            .find_map(|k| raw.get(*k).and_then(Id::from_value));
    }
    if n.event_time.is_none() {
        n.event_time = TIME_KEYS
            .iter()
            .find_map(|k| raw.get(*k).and_then(EventTime::from_value));
    }
    if n.message_id.is_none() {
        n.message_id = raw_str(raw, "message_id")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
}
