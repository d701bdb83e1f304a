//! What each event does to the state table, as data: a [`Plan`] of item
//! updates, each of which the store applies on its own, exactly once (see
//! [`crate::store`]): no update decides anything from another item.
//!
//! Every update is order-independent. Counters and sets are DynamoDB `ADD`s
//! (they commute). "Latest" and "earliest" fields live in [`Register`]s: a
//! register is written only when this event is newer (or older) than the one
//! that wrote it last, compared by `"<event time>#<dedup key>"`, so the final
//! state for any arrival order equals the state for time order.
//!
//! | event | item (pk / sk) | effect |
//! |---|---|---|
//! | EMAIL_SENT | `LEAD#<email>` / `CAMPAIGN#<id>` | `sent` +1, step in `steps_sent`, status flag `contacted`, first/last sent time, last subject and message id |
//! | FIRST_EMAIL_SENT | same | `first_email_sent_at` (earliest), flag `contacted` (no count: EMAIL_SENT counts the send) |
//! | EMAIL_OPEN | same | `opens` +1, flag `engaged`, first/last open time, score + open weight |
//! | EMAIL_LINK_CLICK | same | `clicks` +1, links into `links_clicked`, flag `engaged`, first/last click time and last link, score + click weight |
//! | EMAIL_REPLY | same, and `LEAD#<email>` / `REPLY#<campaign>` | `replies` +1, flag `replied`, first/last reply time, score + reply weight; the last reply's preview, subject and message id in the `REPLY#` item |
//! | EMAIL_BOUNCE | same, and `LEAD#<email>` / `SUPPRESSION` | `bounces` +1, flag `bounced`, last bounce time and reason; suppression (reason `bounce`, campaign, earliest time); score + bounce weight |
//! | LEAD_UNSUBSCRIBED | same, and `SUPPRESSION` | flag `unsubscribed`, unsubscribe time; suppression (reason `unsubscribe`) |
//! | LEAD_CATEGORY_UPDATED | same, and `LEAD#<email>` / `PROFILE` | latest category (name, sentiment, id, time); profile fields from `lead_data` (latest wins) |
//! | CAMPAIGN_STATUS_CHANGED | `CAMPAIGN#<id>` / `STATUS` | latest status (and previous), change count |
//! | UNTRACKED_REPLIES | `UNTRACKED` / `<time>#<key>` | the reply kept for catch-all inbox review |
//! | MANUAL_STEP_REACHED | `LEAD#<email>` / `TASK#<campaign>#<step>` | an open task for a human: step type, description, reached at |
//! | EMAIL_ACCOUNT_DISCONNECTED, LINKEDIN_DISCONNECTED | `ACCOUNT#<id>` / `HEALTH#EMAIL` or `HEALTH#LINKEDIN` | disconnected since (earliest), last error (latest), count |
//! | CAMPAIGN_BOUNCE_BREACH | `CAMPAIGN#<id>` / `HEALTH` | last breach: rate, threshold, message; count |
//! | unknown type | `UNKNOWN#<type>` / `<time>#<key>` | the raw event, kept and counted |
//!
//! Suppression is sticky: nothing ever removes it, and later opens or clicks
//! only add counts. Descriptive fields (lead and campaign names) are written
//! once, by the first event that carries them; the lead's campaign item
//! holds `lead_email` and `campaign_id` only when its keys had to be hashed.

use crate::event::{EventData, EventType, SmartleadEvent};
use crate::key::DedupKey;
use crate::time::{EventTime, TimeWindow};
use serde_json::Value;

/// A value to store. Kept free of SDK types so plans are plain data.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    S(String),
    N(f64),
    /// String set (for `ADD`).
    Ss(Vec<String>),
    /// Number set (for `ADD`).
    Ns(Vec<f64>),
    /// Any JSON, stored as a DynamoDB map or list.
    Json(Value),
}

/// Fields written together, only if this event orders after (latest) or
/// before (earliest) the event that wrote them last.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// Attribute holding the ordering value ([`compact_order`]).
    pub order_attr: &'static str,
    pub fields: Vec<(&'static str, Val)>,
    /// A register of the event's time alone: `order_attr` is that time's
    /// attribute (`last_open_at`...), compared as text (fixed-width ISO
    /// 8601 sorts as time), no separate order attribute. Two events at the
    /// same instant write the same value, so no tie-break is needed.
    pub by_time: bool,
}

impl Register {
    /// A register of the fields that have a value.
    fn new(order_attr: &'static str, fields: Vec<(&'static str, Option<Val>)>) -> Register {
        Register {
            order_attr,
            fields: fields
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            by_time: false,
        }
    }

    /// The register of an event time alone, in `attr` (see [`Register::by_time`]).
    fn time(attr: &'static str) -> Register {
        Register {
            order_attr: attr,
            fields: Vec::new(),
            by_time: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemUpdate {
    pub pk: String,
    pub sk: String,
    /// `ADD` counters and sets.
    pub add: Vec<(&'static str, Val)>,
    /// `SET a = if_not_exists(a, v)`: written once.
    pub set_once: Vec<(&'static str, Val)>,
    pub latest: Option<Register>,
    pub earliest: Option<Register>,
}

impl ItemUpdate {
    fn new(pk: String, sk: String) -> ItemUpdate {
        ItemUpdate {
            pk,
            sk,
            add: vec![],
            set_once: vec![],
            latest: None,
            earliest: None,
        }
    }
    fn count(mut self, attr: &'static str) -> Self {
        self.add.push((attr, Val::N(1.0)));
        self
    }
    fn flag(mut self, flag: &str) -> Self {
        self.add.push(("flags", Val::Ss(vec![flag.to_owned()])));
        self
    }
    fn once(mut self, attr: &'static str, v: Option<String>) -> Self {
        if let Some(v) = v {
            self.set_once.push((attr, Val::S(v)));
        }
        self
    }
    fn latest(
        mut self,
        order_attr: &'static str,
        fields: Vec<(&'static str, Option<Val>)>,
    ) -> Self {
        self.latest = Some(Register::new(order_attr, fields));
        self
    }
    fn earliest(
        mut self,
        order_attr: &'static str,
        fields: Vec<(&'static str, Option<Val>)>,
    ) -> Self {
        self.earliest = Some(Register::new(order_attr, fields));
        self
    }
    /// The newest event time in `attr`.
    fn latest_time(mut self, attr: &'static str) -> Self {
        self.latest = Some(Register::time(attr));
        self
    }
    /// The oldest event time in `attr`.
    fn earliest_time(mut self, attr: &'static str) -> Self {
        self.earliest = Some(Register::time(attr));
        self
    }
}

/// Everything one event does: each item exactly once (see [`crate::store`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub key: DedupKey,
    pub event_type: EventType,
    /// How registers order this event: [`compact_order`].
    pub order: String,
    pub event_time: EventTime,
    pub items: Vec<ItemUpdate>,
    /// Side effects to run after the state is written (see
    /// [`crate::effects`]), claimed on the event's marker until `lease_until_ms`.
    pub effects: Vec<&'static str>,
    pub lease_until_ms: i64,
    /// The event named a time outside the believed window (the plan uses
    /// the receive time instead).
    pub time_clamped: bool,
    /// A lead event whose lead has no e-mail address in any field: filed
    /// under the lead id (`LEAD#id:<id>`) or kept whole as `UNATTRIBUTED`,
    /// and counted (`Unattributed`).
    pub unattributed: bool,
}

impl Plan {
    /// The plan without what makes an item grow (every set but the status
    /// `flags`; JSON values) and with texts cut to 256 bytes: counts, flags,
    /// registers' times and the marker stay. For an item DynamoDB refuses to
    /// grow further.
    pub fn trimmed(&self) -> Plan {
        let mut p = self.clone();
        for u in &mut p.items {
            u.add
                .retain(|(attr, v)| !matches!(v, Val::Ss(_) | Val::Ns(_)) || *attr == "flags");
            let registers = u.latest.iter_mut().chain(u.earliest.iter_mut());
            for fields in std::iter::once(&mut u.set_once).chain(registers.map(|r| &mut r.fields)) {
                fields.retain(|(_, v)| !matches!(v, Val::Json(_)));
                for (_, v) in fields.iter_mut() {
                    if let Val::S(s) = v {
                        let n = cut_bytes(s, 256).len();
                        s.truncate(n);
                    }
                }
            }
        }
        p
    }
}

/// Lead score weights (`SCORE_WEIGHTS`, e.g. `open=1,click=3,reply=10,bounce=-50,unsubscribe=-50`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    pub sent: f64,
    pub open: f64,
    pub click: f64,
    pub reply: f64,
    pub bounce: f64,
    pub unsubscribe: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            sent: 0.0,
            open: 1.0,
            click: 3.0,
            reply: 10.0,
            bounce: -50.0,
            unsubscribe: -50.0,
        }
    }
}

impl ScoreWeights {
    pub fn parse(s: &str) -> Result<ScoreWeights, String> {
        let mut w = ScoreWeights::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=number"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: not a number"))?;
            match k.trim() {
                "sent" => w.sent = v,
                "open" => w.open = v,
                "click" => w.click = v,
                "reply" => w.reply = v,
                "bounce" => w.bounce = v,
                "unsubscribe" => w.unsubscribe = v,
                other => return Err(format!("unknown score weight `{other}`")),
            }
        }
        Ok(w)
    }
}

const PREVIEW_CHARS: usize = 500;
/// Raw events kept in an item are cut here, in bytes (DynamoDB items hold 400 KB).
pub const MAX_RAW_BYTES: usize = 300_000;
/// Longest text field stored from an event (a subject, a description...).
pub const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Largest JSON value stored as a map; a larger one is kept as cut text.
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Each element of a set, and how many elements one event adds.
pub const MAX_SET_ELEMENT_BYTES: usize = 1024;
pub const MAX_SET_ELEMENTS: usize = 50;
/// Key parts (e-mail, campaign, account, type) longer than this are cut and
/// hashed: DynamoDB refuses partition keys over 2 KB and sort keys over 1 KB.
pub const MAX_KEY_PART_BYTES: usize = 256;

/// `s` cut to at most `n` bytes, at a character boundary.
pub fn cut_bytes(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A key part as stored: itself, or when over [`MAX_KEY_PART_BYTES`] its
/// first 128 bytes and a hash of the whole (distinct parts stay distinct).
pub fn key_part(s: &str) -> std::borrow::Cow<'_, str> {
    // A short value that ends like a hashed one is hashed too, so a stored
    // part ending in `~<32 hex>` always comes from hashing.
    let looks_hashed = s.len() > 33
        && s.as_bytes()[s.len() - 33] == b'~'
        && s[s.len() - 32..].bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() <= MAX_KEY_PART_BYTES && !looks_hashed {
        return std::borrow::Cow::Borrowed(s);
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(s.as_bytes());
    std::borrow::Cow::Owned(format!("{}~{}", cut_bytes(s, 128), hex::encode(&h[..16])))
}

/// Whether DynamoDB can store `f` as a number (magnitude 1e-130 to 1e126).
pub fn dynamo_number_ok(f: f64) -> bool {
    f == 0.0 || (f.is_finite() && (1e-130..1e126).contains(&f.abs()))
}

/// Keeps every value of a plan inside what DynamoDB accepts, so that no
/// event is refused on every delivery: sets de-duplicated, without empty
/// elements and bounded; texts and JSON values bounded in bytes; numbers
/// DynamoDB cannot hold kept as text.
fn bound(items: &mut [ItemUpdate]) {
    for u in items {
        for (attr, v) in u.add.iter_mut() {
            bound_val(attr, v, true);
        }
        u.add.retain(|(_, v)| match v {
            Val::Ss(s) => !s.is_empty(),
            Val::Ns(n) => !n.is_empty(),
            Val::N(f) => dynamo_number_ok(*f),
            _ => true,
        });
        let registers = u.latest.iter_mut().chain(u.earliest.iter_mut());
        for (attr, v) in u
            .set_once
            .iter_mut()
            .chain(registers.flat_map(|r| r.fields.iter_mut()))
        {
            bound_val(attr, v, false);
        }
    }
}

fn bound_val(attr: &str, v: &mut Val, added: bool) {
    match v {
        Val::S(s) => {
            let max = if attr == "raw" {
                MAX_RAW_BYTES
            } else {
                MAX_FIELD_BYTES
            };
            let n = cut_bytes(s, max).len();
            s.truncate(n);
        }
        Val::N(f) if !added && !dynamo_number_ok(*f) => *v = Val::S(f.to_string()),
        Val::N(_) => {}
        Val::Ss(set) => {
            let mut out: Vec<String> = set
                .iter()
                .filter(|e| !e.is_empty())
                .map(|e| cut_bytes(e, MAX_SET_ELEMENT_BYTES).to_owned())
                .collect();
            out.sort();
            out.dedup();
            out.truncate(MAX_SET_ELEMENTS);
            *set = out;
        }
        Val::Ns(set) => {
            set.retain(|f| dynamo_number_ok(*f));
            set.sort_by(f64::total_cmp);
            set.dedup();
            set.truncate(MAX_SET_ELEMENTS);
        }
        Val::Json(j) => {
            let text = j.to_string();
            if text.len() > MAX_JSON_BYTES {
                *v = Val::S(cut_bytes(&text, MAX_JSON_BYTES).to_owned());
            }
        }
    }
}

fn s(v: Option<&str>) -> Option<Val> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Val::S(v.to_owned()))
}

fn owned(v: Option<String>) -> Option<Val> {
    v.filter(|v| !v.is_empty()).map(Val::S)
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Text of an HTML fragment, roughly: tags dropped, white space folded.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(4 * PREVIEW_CHARS));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
        if out.len() > 8 * PREVIEW_CHARS {
            break;
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn raw_record(pk: String, ev: &SmartleadEvent, order: &str) -> ItemUpdate {
    let mut raw = serde_json::to_string(&ev.raw).unwrap_or_default();
    let truncated = raw.len() > MAX_RAW_BYTES;
    let mut u = ItemUpdate::new(pk, order.to_owned())
        .once("event_type", Some(ev.event_type.as_str().to_owned()));
    raw.truncate(cut_bytes(&raw, MAX_RAW_BYTES).len());
    u.set_once.push(("raw", Val::S(raw)));
    if truncated {
        u.set_once.push(("raw_truncated", Val::S("true".into())));
    }
    u
}

/// `"<epoch ms, 13 digits>#<8 hex digits of the key>"`: sorts by time, then
/// by key, in 22 bytes (every byte of an item is billed on every write).
/// The 8 digits are the first half of the last 16 that orders written
/// before kept, so old and new orders still sort alike.
pub fn compact_order(t: EventTime, key: &DedupKey) -> String {
    let k = key.as_str();
    let start = k.len().saturating_sub(16);
    let tail = k
        .get(start..start + 8)
        .or_else(|| k.get(start..))
        .unwrap_or(k);
    format!("{:013}#{tail}", t.millis().max(0))
}

/// Builds the plan for one event. `fallback_time` (when SQS received it) is
/// used when the event carries no time of its own.
pub fn plan(ev: &SmartleadEvent, fallback_time: EventTime, weights: &ScoreWeights) -> Plan {
    plan_within(ev, fallback_time, weights, &TimeWindow::default())
}

/// [`plan`], with the event's own time believed only within `window` of
/// `received` (see [`EventTime::within`]); the raw event keeps what it said.
pub fn plan_within(
    ev: &SmartleadEvent,
    received: EventTime,
    weights: &ScoreWeights,
    window: &TimeWindow,
) -> Plan {
    let n = ev.normalized();
    let key = ev.dedup_key();
    let (event_time, time_clamped) = match n.event_time {
        Some(t) => t.within(received, window),
        None => (received, false),
    };
    let time = event_time.to_string();
    // Item sort keys for kept events read as `<time>#<key>`.
    let sk = format!("{time}#{key}");
    // Registers compare a compact form of the same order (every byte of an
    // item is billed on every write): epoch ms, zero-padded so strings sort
    // as numbers, then the key's hash as the tie-break.
    let order = compact_order(event_time, &key);
    let t = || Some(Val::S(time.clone()));
    let campaign = n
        .campaign_id
        .as_ref()
        .map(|c| key_part(c.as_str()).into_owned())
        .unwrap_or_else(|| "-".into());
    let lead_pk = n
        .lead_email
        .as_ref()
        .map(|e| format!("LEAD#{}", key_part(e)))
        .or_else(|| {
            n.lead_id
                .as_ref()
                .map(|i| format!("LEAD#id:{}", key_part(i.as_str())))
        });
    // The lead's campaign item is written by most events: the address and
    // the campaign id are kept in it only when its key cannot say them
    // (cut and hashed for length).
    let hashed = |v: &Option<String>| v.clone().filter(|v| key_part(v) != v.as_str());
    let lead_campaign = |pk: &String| {
        ItemUpdate::new(pk.clone(), format!("CAMPAIGN#{campaign}"))
            .once(
                "campaign_id",
                hashed(&n.campaign_id.as_ref().map(|c| c.to_string())),
            )
            .once("campaign_name", n.campaign_name.clone())
            .once("lead_email", hashed(&n.lead_email))
        // No lead name here: events spell it differently ("Jane" vs "Jane Doe"),
        // and a first-writer-wins field would depend on arrival order.
    };
    let score = |mut u: ItemUpdate, w: f64| {
        if w != 0.0 {
            u.add.push(("score", Val::N(w)));
        }
        u
    };
    let suppression = |pk: &String, reason: &str| {
        ItemUpdate::new(pk.clone(), "SUPPRESSION".into())
            .once("lead_email", n.lead_email.clone())
            .flag(reason)
            .earliest(
                "suppressed_order",
                vec![
                    ("suppressed_at", t()),
                    ("reason", Some(Val::S(reason.into()))),
                    ("campaign_id", Some(Val::S(campaign.clone()))),
                ],
            )
    };
    let mut items = Vec::new();
    let lead_event = matches!(
        ev.data,
        EventData::EmailSent(_)
            | EventData::FirstEmailSent(_)
            | EventData::EmailOpen(_)
            | EventData::EmailLinkClick(_)
            | EventData::EmailReply(_)
            | EventData::EmailBounce(_)
            | EventData::LeadUnsubscribed(_)
            | EventData::LeadCategoryUpdated(_)
            | EventData::ManualStepReached(_)
    );
    match (&ev.data, &lead_pk) {
        (_, None) if lead_event => {
            // A lead event that names no lead: keep it whole rather than guess.
            items.push(raw_record(
                format!("UNATTRIBUTED#{}", ev.event_type.metric_name()),
                ev,
                &sk,
            ));
        }
        (EventData::EmailSent(e), Some(pk)) => {
            let mut u = lead_campaign(pk)
                .count("sent")
                .flag("contacted")
                .latest(
                    "last_sent_order",
                    vec![
                        ("last_sent_at", t()),
                        (
                            "last_subject",
                            s(e.custom_subject.text().or(e.email.subject.text())),
                        ),
                        ("last_message_id", owned(n.message_id.clone())),
                        ("last_sender", owned(n.sender_email.clone())),
                    ],
                )
                .earliest_time("first_sent_at");
            if let Some(seq) = n.sequence_number {
                u.add.push(("steps_sent", Val::Ns(vec![f64::from(seq)])));
            }
            items.push(score(u, weights.sent));
        }
        (EventData::FirstEmailSent(_), Some(pk)) => {
            items.push(
                lead_campaign(pk)
                    .flag("contacted")
                    .earliest_time("first_email_sent_at"),
            );
        }
        (EventData::EmailOpen(_), Some(pk)) => {
            let u = lead_campaign(pk)
                .count("opens")
                .flag("engaged")
                .latest_time("last_open_at")
                .earliest_time("first_open_at");
            items.push(score(u, weights.open));
        }
        (EventData::EmailLinkClick(c), Some(pk)) => {
            let mut u = lead_campaign(pk)
                .count("clicks")
                .flag("engaged")
                .latest(
                    "last_click_order",
                    vec![
                        ("last_click_at", t()),
                        ("last_link", s(c.link_clicked.0.last().map(String::as_str))),
                    ],
                )
                .earliest_time("first_click_at");
            let links: Vec<String> = c.link_clicked.0.iter().map(|l| cut(l, 1000)).collect();
            if !links.is_empty() {
                u.add.push(("links_clicked", Val::Ss(links)));
            }
            items.push(score(u, weights.click));
        }
        (EventData::EmailReply(r), Some(pk)) => {
            let preview = r
                .preview_text
                .text()
                .map(str::to_owned)
                .or_else(|| r.reply_body.text().map(strip_html))
                .or_else(|| {
                    r.reply_message
                        .get()
                        .and_then(|m| m.text.text().map(str::to_owned))
                })
                .map(|p| cut(&p, PREVIEW_CHARS));
            let u = lead_campaign(pk)
                .count("replies")
                .flag("replied")
                .latest_time("last_reply_at")
                .earliest_time("first_reply_at");
            items.push(score(u, weights.reply));
            // The reply's text in an item of its own, written by replies
            // only: every later write of the lead's campaign item stays small.
            items.push(
                ItemUpdate::new(pk.clone(), format!("REPLY#{campaign}")).latest(
                    "last_reply_order",
                    vec![
                        ("last_reply_at", t()),
                        ("last_reply_preview", owned(preview)),
                        ("last_reply_subject", s(r.email.subject.text())),
                        ("last_reply_message_id", owned(n.message_id.clone())),
                    ],
                ),
            );
        }
        (EventData::EmailBounce(b), Some(pk)) => {
            let reason = b.bounce_message.get().and_then(|m| {
                m.get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| m.get("html").and_then(Value::as_str).map(strip_html))
                    .or_else(|| m.as_str().map(str::to_owned))
            });
            let u = lead_campaign(pk).count("bounces").flag("bounced").latest(
                "last_bounce_order",
                vec![
                    ("last_bounce_at", t()),
                    (
                        "bounce_reason",
                        owned(reason.map(|r| cut(&r, PREVIEW_CHARS))),
                    ),
                ],
            );
            // The bounce's text stays here: a third item would make a
            // bounce 3 writes, and the suppression's register (bounces and
            // unsubscribes) cannot share an item with one of bounces alone.
            // A bounced lead is suppressed: few writes follow.
            items.push(score(u, weights.bounce));
            items.push(suppression(pk, "bounce"));
        }
        (EventData::LeadUnsubscribed(_), Some(pk)) => {
            let u = lead_campaign(pk)
                .count("unsubscribes")
                .flag("unsubscribed")
                .latest_time("unsubscribed_at");
            items.push(score(u, weights.unsubscribe));
            items.push(suppression(pk, "unsubscribe"));
        }
        (EventData::LeadCategoryUpdated(c), Some(pk)) => {
            let cat = c.category.get().cloned().unwrap_or_default();
            let inner = c
                .lead_data
                .get()
                .and_then(|d| d.category.get())
                .cloned()
                .unwrap_or_default();
            let cat_id = c
                .lead_category_id
                .get()
                .or(cat.id.as_ref())
                .or(inner.id.as_ref())
                .map(|i| i.to_string());
            items.push(lead_campaign(pk).count("category_updates").latest(
                "category_order",
                vec![
                    ("category_at", t()),
                    ("category", owned(cat.name.clone().or(inner.name.clone()))),
                    (
                        "category_sentiment",
                        owned(cat.sentiment.clone().or(inner.sentiment.clone())),
                    ),
                    ("category_id", owned(cat_id)),
                ],
            ));
            if let Some(d) = c.lead_data.get() {
                let custom = d
                    .custom_fields
                    .get()
                    .filter(|v| v.is_object())
                    .cloned()
                    .map(Val::Json);
                items.push(
                    ItemUpdate::new(pk.clone(), "PROFILE".into())
                        .once("lead_email", n.lead_email.clone())
                        .latest(
                            "profile_order",
                            vec![
                                ("profile_at", t()),
                                ("lead_id", owned(n.lead_id.as_ref().map(|i| i.to_string()))),
                                ("first_name", s(d.first_name.text())),
                                ("last_name", s(d.last_name.text())),
                                ("phone_number", s(d.phone_number.text())),
                                ("company_name", s(d.company_name.text())),
                                ("website", s(d.website.text())),
                                ("company_url", s(d.company_url.text())),
                                ("location", s(d.location.text())),
                                ("linkedin_profile", s(d.linkedin_profile.text())),
                                ("custom_fields", custom),
                            ],
                        ),
                );
            }
        }
        (EventData::ManualStepReached(m), Some(pk)) => {
            let step = n
                .sequence_number
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            items.push(
                ItemUpdate::new(pk.clone(), format!("TASK#{campaign}#{step}"))
                    .once("task_status", Some("open".into()))
                    .once("campaign_id", n.campaign_id.as_ref().map(|c| c.to_string()))
                    .once("lead_email", n.lead_email.clone())
                    .once("step_type", m.step_type.text().map(str::to_owned))
                    .once(
                        "step_description",
                        m.step_description.text().map(str::to_owned),
                    )
                    .count("times_reached")
                    .earliest_time("reached_at"),
            );
        }
        (EventData::CampaignStatusChanged(c), _) => {
            items.push(
                ItemUpdate::new(format!("CAMPAIGN#{campaign}"), "STATUS".into())
                    .once("campaign_name", n.campaign_name.clone())
                    .count("status_changes")
                    .latest(
                        "status_order",
                        vec![
                            ("status_at", t()),
                            ("status", s(c.status.text())),
                            ("previous_status", s(c.old_status.text())),
                        ],
                    ),
            );
        }
        (EventData::UntrackedReplies(u), _) => {
            let preview = u
                .preview_text
                .text()
                .map(str::to_owned)
                .or_else(|| u.reply_body.text().map(strip_html))
                .map(|p| cut(&p, PREVIEW_CHARS));
            items.push(
                ItemUpdate::new("UNTRACKED".into(), sk.clone())
                    .once("from_email", n.lead_email.clone())
                    .once("to_email", n.sender_email.clone())
                    .once("subject", u.subject.text().map(str::to_owned))
                    .once("preview", preview)
                    .once("received_at", Some(time.clone()))
                    .once("review_status", Some("new".into())),
            );
        }
        (EventData::EmailAccountDisconnected(a) | EventData::LinkedinDisconnected(a), _) => {
            let kind = if matches!(ev.data, EventData::LinkedinDisconnected(_)) {
                "LINKEDIN"
            } else {
                "EMAIL"
            };
            let account = n
                .account_id
                .as_ref()
                .map(|i| i.to_string())
                .or_else(|| n.sender_email.clone())
                .map(|a| key_part(&a).into_owned())
                .unwrap_or_else(|| "-".into());
            items.push(
                ItemUpdate::new(format!("ACCOUNT#{account}"), format!("HEALTH#{kind}"))
                    .once("account_email", n.sender_email.clone())
                    .count("disconnects")
                    .latest(
                        "last_disconnect_order",
                        vec![
                            ("last_disconnected_at", t()),
                            ("error", s(a.error.text().or(a.message.text()))),
                            ("app_url", owned(n.app_url.clone())),
                        ],
                    )
                    .earliest_time("disconnected_since"),
            );
        }
        (EventData::CampaignBounceBreach(b), _) => {
            items.push(
                ItemUpdate::new(format!("CAMPAIGN#{campaign}"), "HEALTH".into())
                    .once("campaign_name", n.campaign_name.clone())
                    .count("bounce_breaches")
                    .latest(
                        "last_breach_order",
                        vec![
                            ("last_breach_at", t()),
                            ("bounce_rate", b.bounce_rate.get().map(|r| Val::N(*r))),
                            ("threshold", b.threshold.get().map(|r| Val::N(*r))),
                            ("message", s(b.message.text().or(b.title.text()))),
                        ],
                    ),
            );
        }
        (EventData::Unknown, _) => {
            let ty = key_part(ev.event_type.as_str());
            items.push(raw_record(format!("UNKNOWN#{ty}"), ev, &sk));
        }
        // Lead events always matched above (with or without a lead).
        _ => items.push(raw_record(
            format!("UNATTRIBUTED#{}", ev.event_type.metric_name()),
            ev,
            &sk,
        )),
    }
    bound(&mut items);
    Plan {
        key,
        event_type: ev.event_type.clone(),
        order,
        event_time,
        items,
        effects: Vec::new(),
        lease_until_ms: 0,
        time_clamped,
        unattributed: lead_event && n.lead_email.is_none(),
    }
}
