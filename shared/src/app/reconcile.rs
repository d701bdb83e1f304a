//! Reconcile: find the events SmartLead never delivered, from its own
//! statistics, and backfill them exactly once.
//!
//! SmartLead retries a failed webhook only a few times. Its API keeps, per
//! campaign, statistics of every sent e-mail (one row per lead and sequence
//! step: sent, open, click and reply times, open and click counts, bounced,
//! unsubscribed) and per lead a message history (every sent e-mail and reply
//! with its message id). From these this module builds each *fact* the
//! webhooks should have delivered, synthesizes the webhook for it in every
//! form SmartLead documents, and computes each form's idempotency key with
//! [`crate::domain::key`] exactly as for a real webhook.
//!
//! - A fact whose key (in any form) the store absorbed was processed: the
//!   item its plan writes first (the lead's campaign item, read once per
//!   lead and campaign) holds the key's compact form in `ek` or `ek_old` (or
//!   its archive),
//!   or, for an event applied before the upgrade, the old design's dedup
//!   marker is there (see [`crate::adapters::aws::dynamodb::absorbed`]). It is also evidence of which
//!   form this account's webhooks come in.
//! - A fact absorbed in no form is a gap (keys an item rotated out are
//!   looked up in its archive). An item whose rotation count cannot be read
//!   gives an unknown answer: only reported. Otherwise a gap is
//!   backfilled (the
//!   synthesized webhook goes onto the queue, `source: reconcile`, and the
//!   consumer applies it like any webhook) only in a form well established
//!   for its event type in its campaign (see [`Tally::established`]) and
//!   when the statistics carry everything that form's key needs: the
//!   backfill then has the same key as the real webhook, so a late webhook,
//!   a second backfill or a second run is a duplicate. Otherwise (and for
//!   every unsubscribe, and for sends and replies whose message history
//!   could not be read) it is only reported, with the reason.
//! - A lead the statistics give an id for is also looked up in its
//!   `LEAD#id:<id>` item, with the keys of the same webhooks naming it by id.
//! - Counts SmartLead gives without times (opens past the one timed open of
//!   a step, every click: the statistics carry no clicked links) are compared
//!   with the stored counts and only reported, apart from the gaps
//!   ([`Report::count_mismatches`]).
//! - Facts older than the old design's dedup markers' TTL (less a margin)
//!   are not checked: an event applied before the upgrade is known only by
//!   its marker, which may be gone, and a backfill could count twice.

use crate::adapters::aws::dynamodb::absorbed::Absorbed;
use crate::adapters::aws::dynamodb::DynamoStore;
use crate::adapters::http::smartlead::{Api, ApiError};
use crate::app::ingest::{Queue, QueueError};
use crate::app::store::StoreError;
use crate::domain::event::SmartleadEvent;
use crate::domain::message::{attr, OutgoingMessage, LOCATION_INLINE};
use crate::domain::time::EventTime;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// The message attribute and body field marking a backfilled event.
pub const SOURCE: &str = "source";
pub const SOURCE_RECONCILE: &str = "reconcile";
/// Statistics rows asked for per page (SmartLead's maximum).
pub const PAGE_SIZE: usize = 100;
/// Checking stops this long before the deadline.
pub const STOP_BEFORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Facts younger than the dedup TTL less these days are checked.
pub const MARGIN_DAYS: u64 = crate::adapters::aws::redrive::MARGIN_DAYS;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading the state table: {0}")]
    Store(#[from] StoreError),
    #[error("queueing a backfill: {0}")]
    Queue(#[from] QueueError),
}

impl ReconcileError {
    /// Whether running again later can succeed (SmartLead or AWS unavailable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Api(e) => e.is_retryable(),
            ReconcileError::Store(e) => e.is_retryable(),
            ReconcileError::Queue(_) => true,
        }
    }
}

/// One statistics row: one e-mail of a sequence step sent to a lead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepStat {
    /// Trimmed and lower-cased, as the pipeline keys leads.
    pub lead_email: String,
    pub lead_id: Option<String>,
    pub sequence_number: Option<u32>,
    pub stats_id: Option<String>,
    pub subject: Option<String>,
    pub sent_time: Option<EventTime>,
    pub open_time: Option<EventTime>,
    pub click_time: Option<EventTime>,
    pub reply_time: Option<EventTime>,
    pub open_count: u64,
    pub click_count: u64,
    pub reply_count: u64,
    pub is_bounced: bool,
    pub is_unsubscribed: bool,
}

/// What one statistics page held.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<StepStat>,
    /// Entries on the page (rows read or not): the paging step.
    pub entries: usize,
    /// Entries that named no lead e-mail (partial data): skipped.
    pub unreadable: usize,
    /// The total SmartLead announced, when it did.
    pub total: Option<usize>,
    /// The first entry's id (its `stats_id` or `id`, else the entry): a
    /// page starting like the previous one repeats it.
    pub first_id: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| o.get(*k)).find(|v| !v.is_null())
}

fn count(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(Value::Bool(true)) => 1,
        _ => 0,
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n > 0),
        Some(Value::String(s)) => matches!(s.trim(), "true" | "1" | "yes"),
        _ => false,
    }
}

fn time(v: Option<&Value>) -> Option<EventTime> {
    v.and_then(EventTime::from_value)
}

fn email(v: Option<&Value>) -> Option<String> {
    text(v)
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| s.contains('@'))
}

/// Reads one page of `GET /campaigns/{id}/statistics`. SmartLead's pages
/// disagree on the shape: rows per lead and step (`data: [{lead_email,
/// sequence_number, stats_id, sent_time, open_time, ...}]`), or rows per lead
/// (`leads: [{email, ..., sequences: [per step]}]`); both are read, and a
/// per-lead row without steps gives its counts only (as one row without a
/// step or times: reported, never backfilled). Any other answer (an object
/// without the list, `{"error": ..}`, text) is [`ApiError::Unexpected`]:
/// read as "no rows" it would report "no gaps". `count` is not taken for
/// the total (it may be the page's size).
pub fn parse_page(v: &Value) -> Result<Page, ApiError> {
    let unexpected = |shape: &str| ApiError::Unexpected {
        what: "the campaign statistics".into(),
        shape: shape.into(),
    };
    let (list, total) = match v {
        Value::Array(a) => (a.as_slice(), None),
        Value::Object(o) => {
            let list = ["data", "leads", "statistics", "stats"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_array))
                .map(Vec::as_slice)
                .ok_or_else(|| unexpected("an object without a list of rows"))?;
            let total = first(o, &["total_stats", "total", "total_count"])
                .and_then(|t| text(Some(t)))
                .and_then(|t| t.parse().ok());
            (list, total)
        }
        _ => return Err(unexpected("not a JSON list or object")),
    };
    let mut page = Page {
        entries: list.len(),
        total,
        first_id: list.first().map(|e| {
            e.as_object()
                .and_then(|o| text(first(o, &["stats_id", "id"])))
                .unwrap_or_else(|| e.to_string())
        }),
        ..Page::default()
    };
    for entry in list {
        let Some(o) = entry.as_object() else {
            page.unreadable += 1;
            continue;
        };
        let Some(lead) = email(first(o, &["lead_email", "email", "to_email"])) else {
            page.unreadable += 1;
            continue;
        };
        let lead_id = text(first(o, &["lead_id", "email_lead_id", "id"]));
        let steps = ["sequences", "steps", "stats", "sequence_stats"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array));
        match steps {
            Some(steps) => {
                for s in steps.iter().filter_map(Value::as_object) {
                    let mut r = step(s, lead.clone());
                    r.lead_id = r.lead_id.or_else(|| lead_id.clone());
                    r.is_unsubscribed |= flag(first(o, &["is_unsubscribed", "unsubscribed"]));
                    page.rows.push(r);
                }
            }
            None => {
                let mut r = step(o, lead);
                r.lead_id = lead_id;
                page.rows.push(r);
            }
        }
    }
    Ok(page)
}

fn step(o: &Map<String, Value>, lead_email: String) -> StepStat {
    let open_time = time(first(o, &["open_time", "opened_at", "last_open_time"]));
    let click_time = time(first(o, &["click_time", "clicked_at", "last_click_time"]));
    let reply_time = time(first(o, &["reply_time", "replied_at"]));
    StepStat {
        lead_email,
        lead_id: text(first(o, &["lead_id", "email_lead_id"])),
        sequence_number: text(first(
            o,
            &["sequence_number", "email_seq_number", "seq_number"],
        ))
        .and_then(|s| s.parse().ok()),
        stats_id: text(o.get("stats_id")),
        subject: text(first(o, &["email_subject", "subject"])),
        sent_time: time(first(o, &["sent_time", "sent_at"])),
        open_time,
        click_time,
        reply_time,
        open_count: count(first(o, &["open_count", "opens"])).max(open_time.is_some() as u64),
        click_count: count(first(o, &["click_count", "clicks"])).max(click_time.is_some() as u64),
        reply_count: count(first(o, &["reply_count", "replies"])).max(reply_time.is_some() as u64),
        is_bounced: flag(first(o, &["is_bounced", "bounced"])),
        is_unsubscribed: flag(first(o, &["is_unsubscribed", "unsubscribed"])),
    }
}

/// One message of a lead's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryMessage {
    pub sent: bool,
    pub message_id: Option<String>,
    pub time: Option<EventTime>,
    pub sequence_number: Option<u32>,
}

/// Reads `GET /campaigns/{cid}/leads/{lid}/message-history`: `{history:
/// [{type: SENT|REPLY, message_id, time, email_seq_number}]}` or `{messages:
/// [{id, direction: outbound|inbound, sent_at | received_at}]}`. Any other
/// answer is [`ApiError::Unexpected`], not "no history".
pub fn parse_history(v: &Value) -> Result<Vec<HistoryMessage>, ApiError> {
    let unexpected = |shape: &str| ApiError::Unexpected {
        what: "a lead's message history".into(),
        shape: shape.into(),
    };
    let list = match v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => ["history", "messages", "data"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array))
            .map(Vec::as_slice)
            .ok_or_else(|| unexpected("an object without a list of messages"))?,
        _ => return Err(unexpected("not a JSON list or object")),
    };
    Ok(list
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|m| {
            let kind = text(first(m, &["type", "direction"]))?.to_ascii_uppercase();
            let sent = match kind.as_str() {
                "SENT" | "OUTBOUND" => true,
                "REPLY" | "INBOUND" | "REPLIED" => false,
                _ => return None,
            };
            Some(HistoryMessage {
                sent,
                message_id: text(first(m, &["message_id", "id"])),
                time: time(first(m, &["time", "sent_at", "received_at", "sent_time"])),
                sequence_number: text(first(m, &["email_seq_number", "sequence_number"]))
                    .and_then(|s| s.parse().ok()),
            })
        })
        .collect())
}

/// The kinds of facts the statistics tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Sent,
    Open,
    Click,
    Reply,
    Bounce,
    Unsubscribe,
}

impl Kind {
    pub fn event_type(self) -> &'static str {
        match self {
            Kind::Sent => "EMAIL_SENT",
            Kind::Open => "EMAIL_OPEN",
            Kind::Click => "EMAIL_LINK_CLICK",
            Kind::Reply => "EMAIL_REPLY",
            Kind::Bounce => "EMAIL_BOUNCE",
            Kind::Unsubscribe => "LEAD_UNSUBSCRIBED",
        }
    }
}

/// Which documented form of a webhook a synthesized body takes; each has
/// its own key (see [`crate::domain::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Form {
    /// Keyed by a message id (sent e-mail, reply, bounced e-mail).
    Msg,
    /// Keyed by `stats_id` (sends without a message id, bounces).
    Stats,
    /// Keyed by campaign, lead, step and time, without `stats_id`.
    Fields,
    /// Opens keyed by the fields and `stats_id`.
    FieldsStats,
    /// Keyed by the fields, from a webhook that names no sequence step.
    FieldsNoStep,
}

/// A synthesized webhook in one form, with its key.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub form: Form,
    pub body: Value,
    pub key: String,
    /// The same key as the store's plan computes it.
    pub dedup: crate::domain::key::DedupKey,
}

/// One event the statistics say happened.
#[derive(Debug, Clone)]
pub struct Fact {
    pub kind: Kind,
    pub campaign: String,
    pub lead: String,
    pub sequence_number: Option<u32>,
    /// The event's own time, when the statistics give it.
    pub time: Option<EventTime>,
    /// A time the event cannot be earlier than (its own, else the step's
    /// latest known time): the TTL guard's input.
    pub not_before: Option<EventTime>,
    pub candidates: Vec<Candidate>,
    /// None of its keys is in the item it lands in, which has rotated its
    /// absorbed keys: it may have arrived and its key been dropped since.
    pub rotated: bool,
    /// The same webhooks without the e-mail, by the lead id the statistics
    /// give: such webhooks land in the `LEAD#id:<id>` item, and a fact found
    /// there is stored. Looked up only, never backfilled.
    pub by_id: Vec<Candidate>,
    /// The lead's message history was wanted and could not be read (no
    /// lead id, a refused lookup, an unknown shape): the message-id form is
    /// missing for a reason other than SmartLead not having the message.
    pub history_unavailable: bool,
}

fn campaign_value(c: &str) -> Value {
    c.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(c))
}

/// The fields form without the step number.
fn no_step(mut body: Map<String, Value>) -> Option<Candidate> {
    body.remove("sequence_number");
    candidate(Form::FieldsNoStep, body)
}

fn candidate(form: Form, mut body: Map<String, Value>) -> Option<Candidate> {
    body.insert(SOURCE.into(), json!(SOURCE_RECONCILE));
    let body = Value::Object(body);
    let ev = SmartleadEvent::from_value(body.clone()).ok()?;
    let key = ev.dedup_key();
    // Only keys a real webhook can share: never a body hash.
    matches!(key.basis(), "msg" | "stats" | "fields").then(|| Candidate {
        form,
        body,
        key: key.as_str().to_owned(),
        dedup: key,
    })
}

/// The facts of one lead's statistics rows in one campaign, each with its
/// webhook in every form the statistics (and the history, when given) can
/// build. Clicks carry no candidates: the statistics hold no clicked links,
/// which every click key includes.
pub fn facts(campaign: &str, rows: &[StepStat], history: &[HistoryMessage]) -> Vec<Fact> {
    let mut out = Vec::new();
    for r in rows {
        let base = |kind: Kind| {
            let mut m = Map::new();
            m.insert("event_type".into(), json!(kind.event_type()));
            m.insert("campaign_id".into(), campaign_value(campaign));
            m.insert("to_email".into(), json!(r.lead_email));
            if let Some(s) = r.sequence_number {
                m.insert("sequence_number".into(), json!(s));
            }
            m
        };
        let latest = [r.sent_time, r.open_time, r.click_time, r.reply_time]
            .into_iter()
            .flatten()
            .max();
        let fact = |kind, time: Option<EventTime>, candidates: Vec<Option<Candidate>>| Fact {
            kind,
            campaign: campaign.to_owned(),
            lead: r.lead_email.clone(),
            sequence_number: r.sequence_number,
            time,
            not_before: time.or(latest),
            candidates: candidates.into_iter().flatten().collect(),
            rotated: false,
            by_id: Vec::new(),
            history_unavailable: false,
        };
        let sent_msg = history
            .iter()
            .filter(|h| h.sent && h.message_id.is_some())
            .find(|h| {
                (r.sequence_number.is_some() && h.sequence_number == r.sequence_number)
                    || (r.sent_time.is_some() && h.time == r.sent_time)
            })
            .and_then(|h| h.message_id.clone());
        if let (Some(t), Some(_)) = (r.sent_time, r.sequence_number) {
            let mut b = base(Kind::Sent);
            b.insert("time_sent".into(), json!(t.to_string()));
            if let Some(s) = &r.subject {
                b.insert("subject".into(), json!(s));
            }
            let mut with_stats = b.clone();
            if let Some(s) = &r.stats_id {
                with_stats.insert("stats_id".into(), json!(s));
            }
            let msg = sent_msg.as_ref().and_then(|m| {
                let mut b = with_stats.clone();
                b.insert("message_id".into(), json!(m));
                candidate(Form::Msg, b)
            });
            let stats = r
                .stats_id
                .as_ref()
                .and_then(|_| candidate(Form::Stats, with_stats.clone()));
            out.push(fact(
                Kind::Sent,
                Some(t),
                vec![msg, stats, no_step(b.clone()), candidate(Form::Fields, b)],
            ));
        }
        if let (Some(t), Some(_)) = (r.open_time, r.sequence_number) {
            let mut b = base(Kind::Open);
            b.insert("time_opened".into(), json!(t.to_string()));
            let with_stats = r.stats_id.as_ref().and_then(|s| {
                let mut b = b.clone();
                b.insert("stats_id".into(), json!(s));
                candidate(Form::FieldsStats, b)
            });
            out.push(fact(
                Kind::Open,
                Some(t),
                vec![with_stats, no_step(b.clone()), candidate(Form::Fields, b)],
            ));
        }
        if let (Some(t), Some(_)) = (r.reply_time, r.sequence_number) {
            let mut b = base(Kind::Reply);
            b.insert("time_replied".into(), json!(t.to_string()));
            let reply_msg = history
                .iter()
                .find(|h| !h.sent && h.time == Some(t))
                .and_then(|h| h.message_id.clone());
            let msg = reply_msg.and_then(|m| {
                let mut b = b.clone();
                b.insert(
                    "reply_message".into(),
                    json!({"message_id": m, "time": t.to_string()}),
                );
                candidate(Form::Msg, b)
            });
            out.push(fact(
                Kind::Reply,
                Some(t),
                vec![msg, no_step(b.clone()), candidate(Form::Fields, b)],
            ));
        }
        if r.is_bounced {
            let b = base(Kind::Bounce);
            let stats = r.stats_id.as_ref().and_then(|s| {
                let mut b = b.clone();
                b.insert("stats_id".into(), json!(s));
                candidate(Form::Stats, b)
            });
            let msg = sent_msg.as_ref().and_then(|m| {
                let mut b = b.clone();
                b.insert("sent_message".into(), json!({"message_id": m}));
                candidate(Form::Msg, b)
            });
            out.push(fact(Kind::Bounce, None, vec![stats, msg]));
        }
    }
    // A lead unsubscribes from a campaign once, whatever its steps say.
    if rows.iter().any(|r| r.is_unsubscribed) {
        let lead = rows[0].lead_email.clone();
        let mut b = Map::new();
        b.insert("event_type".into(), json!(Kind::Unsubscribe.event_type()));
        b.insert("campaign_id".into(), campaign_value(campaign));
        b.insert("lead_email".into(), json!(lead));
        let latest = rows
            .iter()
            .flat_map(|r| [r.sent_time, r.open_time, r.click_time, r.reply_time])
            .flatten()
            .max();
        out.push(Fact {
            kind: Kind::Unsubscribe,
            campaign: campaign.to_owned(),
            lead,
            sequence_number: None,
            time: None,
            not_before: latest,
            candidates: candidate(Form::Fields, b).into_iter().collect(),
            rotated: false,
            by_id: Vec::new(),
            history_unavailable: false,
        });
    }
    if let Some(id) = rows.iter().find_map(|r| r.lead_id.clone()) {
        for f in &mut out {
            f.by_id = f
                .candidates
                .iter()
                .filter_map(|c| id_twin(c, &id))
                .collect();
        }
    }
    out
}

/// The webhook `c` stands for as SmartLead sends it without the e-mail,
/// naming the lead by its id (its plan files it under `LEAD#id:<id>`).
fn id_twin(c: &Candidate, id: &str) -> Option<Candidate> {
    let mut b = c.body.as_object()?.clone();
    b.remove("to_email");
    b.remove("lead_email");
    b.remove(SOURCE);
    b.insert("lead_id".into(), campaign_value(id));
    candidate(c.form, b)
}

/// What to do about a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Send this synthesized webhook (its key is the real webhook's).
    Backfill { key: String, body: Value },
    /// Only reported: nothing exact to send.
    Report { reason: String },
    /// Not checked: webhooks of its type are keyed by something SmartLead
    /// gave for other events but not for this one (a message id its history
    /// lacks), so whether it arrived cannot be told. Listed, not counted as
    /// a gap.
    Unverified { reason: String },
}

/// One gap between SmartLead's statistics and the stored state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub lead: String,
    pub campaign: String,
    pub event_type: &'static str,
    /// What is missing, for people.
    pub missing: String,
    /// The event's time (or the earliest it can be), when known.
    pub since: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// A form is trusted for backfills of an event type in a campaign only
/// when it matched at least this many stored facts ...
pub const MIN_MATCHES: usize = 3;
/// ... and at least this share (in percent) of the facts of that type the
/// campaign is known to have stored (in any form, or in none of ours).
pub const MIN_SHARE_PERCENT: usize = 90;

/// What the stored facts of one event type in one campaign say about the
/// form its webhooks come in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Stored facts matched, per form.
    pub matched: BTreeMap<Form, usize>,
    /// Facts known to be stored: found in some form, or counted by the
    /// lead's item while matching none of the forms built (stored under a
    /// key the statistics cannot rebuild, e.g. times with milliseconds).
    pub stored: usize,
}

impl Tally {
    /// The one form well established: most matches, at least
    /// [`MIN_MATCHES`], and at least [`MIN_SHARE_PERCENT`] of the stored facts.
    pub fn established(&self) -> Option<Form> {
        let (form, n) = self.matched.iter().max_by_key(|(_, n)| **n)?;
        (*n >= MIN_MATCHES && n * 100 >= self.stored * MIN_SHARE_PERCENT).then_some(*form)
    }
}

/// What the stored facts taught, per campaign and event type.
pub type Evidence = HashMap<(String, Kind), Tally>;

fn found(f: &Fact, seen: &HashSet<String>) -> bool {
    f.candidates
        .iter()
        .chain(&f.by_id)
        .any(|c| seen.contains(&c.key))
}

/// The lead item's counter of an event type.
fn counter(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Sent => Some("sent"),
        Kind::Open => Some("opens"),
        Kind::Reply => Some("replies"),
        Kind::Bounce => Some("bounces"),
        Kind::Click | Kind::Unsubscribe => None,
    }
}

/// Tallies the forms of one lead's checked facts (`seen` holds the keys the
/// store absorbed; `rows` are all of the lead's statistics in the campaign,
/// `stored` its item). A fact not found counts as stored in no known form
/// when the item's counter exceeds what the matched facts and every event
/// of that type outside the checked ones could explain.
pub fn learn(
    rows: &[StepStat],
    facts: &[Fact],
    seen: &HashSet<String>,
    stored: &Value,
    evidence: &mut Evidence,
) {
    for kind in [Kind::Sent, Kind::Open, Kind::Reply, Kind::Bounce] {
        let of: Vec<&Fact> = facts.iter().filter(|f| f.kind == kind).collect();
        let Some(first) = of.first() else { continue };
        let tally = evidence.entry((first.campaign.clone(), kind)).or_default();
        let mut matched = 0;
        for f in of.iter().filter(|f| found(f, seen)) {
            matched += 1;
            tally.stored += 1;
            let forms: BTreeSet<Form> = f
                .candidates
                .iter()
                .chain(&f.by_id)
                .filter(|c| seen.contains(&c.key))
                .map(|c| c.form)
                .collect();
            for form in forms {
                *tally.matched.entry(form).or_default() += 1;
            }
        }
        let Some(attr) = counter(kind) else { continue };
        let count = stored.get(attr).and_then(Value::as_f64).unwrap_or(0.0) as usize;
        let lifetime: u64 = rows
            .iter()
            .map(|r| match kind {
                Kind::Sent => r.sent_time.is_some() as u64,
                Kind::Open => r.open_count,
                Kind::Reply => r.reply_count,
                _ => r.is_bounced as u64,
            })
            .sum();
        let outside = (lifetime as usize).saturating_sub(of.len());
        // Facts whose message-id form could not be built say nothing.
        let unmatched = of
            .iter()
            .filter(|f| !found(f, seen) && !f.history_unavailable)
            .count();
        tally.stored += unmatched.min(count.saturating_sub(matched + outside));
    }
}

fn describe(f: &Fact) -> String {
    let step = f
        .sequence_number
        .map(|s| format!(" of step {s}"))
        .unwrap_or_default();
    match f.kind {
        Kind::Sent => format!("send{step}"),
        Kind::Open => format!("open{step}"),
        Kind::Click => format!("click{step}"),
        Kind::Reply => format!("reply{step}"),
        Kind::Bounce => format!("bounce{step}"),
        Kind::Unsubscribe => "unsubscribe".into(),
    }
}

/// The gaps among `facts`: facts absorbed in no form, each to backfill in
/// the one form well established for its type in its campaign (see
/// [`Tally::established`]), or to report. Unsubscribes are only reported.
pub fn gaps(facts: &[Fact], seen: &HashSet<String>, evidence: &Evidence) -> Vec<Gap> {
    let mut out = Vec::new();
    for f in facts {
        if found(f, seen) {
            continue;
        }
        let t = f.kind.event_type();
        let tally = evidence.get(&(f.campaign.clone(), f.kind));
        let action = match tally.and_then(Tally::established) {
            _ if f.kind == Kind::Unsubscribe => Action::Report {
                reason: "unsubscribes are reported only: webhooks that carry a time are keyed by it, which the statistics lack".into(),
            },
            _ if f.rotated => Action::Report {
                reason: "the lead's campaign item has rotated its absorbed keys: whether it arrived cannot be told".into(),
            },
            None => Action::Report {
                reason: match tally.and_then(|t| t.matched.iter().max_by_key(|(_, n)| **n).map(|(f, n)| (f, n, t.stored))) {
                    Some((form, n, stored)) => format!(
                        "no form of {t} webhooks is well established in this campaign: {form:?} matched {n} of {stored} stored (needs {MIN_MATCHES} and {MIN_SHARE_PERCENT}%)"
                    ),
                    None => format!(
                        "no stored {t} webhook of this campaign matched a form: which form SmartLead sends it in is unknown"
                    ),
                },
            },
            Some(form) => match f.candidates.iter().find(|c| c.form == form) {
                Some(_) if f.history_unavailable && form != Form::Msg && matches!(f.kind, Kind::Sent | Kind::Reply) => Action::Report {
                    reason: "history unavailable: the message-id form, which the key rules rank first, could not be built".into(),
                },
                Some(c) => Action::Backfill {
                    key: c.key.clone(),
                    body: c.body.clone(),
                },
                None => Action::Unverified {
                    reason: format!(
                        "{t} webhooks are keyed by {form:?}, which SmartLead did not give for this one"
                    ),
                },
            },
        };
        out.push(Gap {
            lead: f.lead.clone(),
            campaign: f.campaign.clone(),
            event_type: t,
            missing: describe(f),
            since: f.not_before.map(|t| t.to_string()),
            action,
        });
    }
    out
}

/// Counts SmartLead gives without times, against the stored counts after
/// the backfills: opens past each step's timed one, and clicks.
pub fn count_gaps(
    campaign: &str,
    rows: &[StepStat],
    stored: &Value,
    backfilled_opens: u64,
) -> Vec<Gap> {
    let Some(lead) = rows.first().map(|r| r.lead_email.clone()) else {
        return Vec::new();
    };
    let n = |attr: &str| stored.get(attr).and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let since = rows
        .iter()
        .filter_map(|r| r.sent_time)
        .min()
        .map(|t| t.to_string());
    let mut out = Vec::new();
    for (kind, attr, total, extra_reason) in [
        (
            Kind::Open,
            "opens",
            rows.iter().map(|r| r.open_count).sum::<u64>(),
            "SmartLead gives one open time a step; the other opens have no time to key them by",
        ),
        (
            Kind::Click,
            "clicks",
            rows.iter().map(|r| r.click_count).sum::<u64>(),
            "click keys include the clicked links, which the statistics lack",
        ),
    ] {
        let have = n(attr)
            + if kind == Kind::Open {
                backfilled_opens
            } else {
                0
            };
        if total > have {
            out.push(Gap {
                lead: lead.clone(),
                campaign: campaign.to_owned(),
                event_type: kind.event_type(),
                missing: format!("{} of {total} {attr} (stored {})", total - have, n(attr)),
                since: since.clone(),
                action: Action::Report {
                    reason: extra_reason.into(),
                },
            });
        }
    }
    out
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only facts at or after this time (bounces and unsubscribes, which
    /// carry no time, are always checked inside the TTL window).
    pub since: Option<EventTime>,
    pub dry_run: bool,
    /// `DedupTtlDays` (how long the old design's markers live): older facts
    /// are not checked.
    pub dedup_ttl_days: u64,
    pub now: EventTime,
    pub deadline: Instant,
}

impl Options {
    /// The earliest time a fact may have to be checked.
    pub fn horizon(&self) -> EventTime {
        let days = self.dedup_ttl_days.saturating_sub(MARGIN_DAYS) as i64;
        EventTime::from_millis(self.now.millis() - days * 86_400_000).unwrap_or(self.now)
    }
}

/// What a run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub campaigns: usize,
    pub leads: usize,
    pub facts_checked: usize,
    /// Statistics entries without a lead e-mail (partial data), skipped.
    pub unreadable_rows: usize,
    /// Facts older than the dedup TTL window, not checked.
    pub too_old: usize,
    pub gaps: Vec<Gap>,
    /// Lifetime counts (opens past the timed one, clicks) above the stored
    /// ones: reported only, and not gaps (old campaigns keep them).
    pub count_mismatches: Vec<Gap>,
    pub backfilled: usize,
    /// Leads not checked because the deadline came first (the next run
    /// checks them; what was checked is decided and backfilled).
    pub leads_left: usize,
}

impl Report {
    /// Gaps that could not be backfilled.
    pub fn reported_only(&self) -> usize {
        self.gaps
            .iter()
            .filter(|g| matches!(g.action, Action::Report { .. }))
            .count()
    }
    /// Events that could not be checked (not gaps).
    pub fn unverified(&self) -> usize {
        self.gaps
            .iter()
            .filter(|g| matches!(g.action, Action::Unverified { .. }))
            .count()
    }
    /// Gaps found: backfilled or reported, not the unverified.
    pub fn gaps_found(&self) -> usize {
        self.gaps.len() - self.unverified()
    }
}

/// Progress callbacks: `(leads done, leads in all)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Every statistics row of a campaign, page by page.
pub async fn statistics(
    api: &Api,
    campaign: &str,
    deadline: Instant,
) -> Result<(Vec<StepStat>, usize), ReconcileError> {
    let (mut rows, mut unreadable, mut offset) = (Vec::new(), 0, 0);
    let mut previous_first: Option<String> = None;
    loop {
        let v = api
            .campaign_statistics(campaign, offset, PAGE_SIZE, deadline)
            .await?;
        let page = parse_page(&v)?;
        if page.entries > 0 && page.first_id.is_some() && page.first_id == previous_first {
            return Err(ApiError::Unexpected {
                what: format!("the statistics of campaign {campaign}"),
                shape: format!("a page at offset {offset} repeating the previous one"),
            }
            .into());
        }
        previous_first = page.first_id.clone();
        rows.extend(page.rows);
        unreadable += page.unreadable;
        offset += page.entries;
        let done = page.entries == 0
            || page.entries < PAGE_SIZE && page.total.is_none_or(|t| offset >= t)
            || page.total.is_some_and(|t| offset >= t);
        if done {
            return Ok((rows, unreadable));
        }
    }
}

/// The campaigns to reconcile with `--all-campaigns` (every one but drafts)
/// or on the schedule (`active_only`: status `ACTIVE`).
pub async fn campaigns(
    api: &Api,
    active_only: bool,
    deadline: Instant,
) -> Result<Vec<String>, ReconcileError> {
    let all = api.campaigns(deadline).await?;
    Ok(all
        .iter()
        .filter(|c| {
            let status = c
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            if active_only {
                status == "ACTIVE"
            } else {
                status != "DRAFTED"
            }
        })
        .filter_map(|c| text(c.get("id")))
        .collect())
}

/// Reconciles campaigns: reads their statistics, checks every fact in the
/// window against the keys the store absorbed, learns the forms, and (unless a dry
/// run) queues the exact backfills. Every fact is checked before any gap is
/// decided; forms are learned per campaign and event type.
pub async fn reconcile<Q: Queue + ?Sized>(
    api: &Api,
    store: &DynamoStore,
    queue: &Q,
    campaigns: &[String],
    opts: &Options,
    progress: Progress<'_>,
) -> Result<Report, ReconcileError> {
    let mut report = Report {
        campaigns: campaigns.len(),
        ..Report::default()
    };
    let horizon = opts.horizon();
    let since = opts.since.map_or(horizon, |s| s.max(horizon));
    // Lead by lead: (campaign, rows, facts, stored item).
    let mut leads = Vec::new();
    for c in campaigns {
        let (rows, unreadable) = statistics(api, c, opts.deadline).await?;
        report.unreadable_rows += unreadable;
        let mut by_lead: BTreeMap<String, Vec<StepStat>> = BTreeMap::new();
        for r in rows {
            by_lead.entry(r.lead_email.clone()).or_default().push(r);
        }
        for (lead, rows) in by_lead {
            leads.push((c.clone(), lead, rows));
        }
    }
    let total = leads.len();
    report.leads = total;
    let mut seen = HashSet::new();
    let mut evidence = Evidence::new();
    let mut checked = Vec::new();
    for (i, (campaign, lead, rows)) in leads.into_iter().enumerate() {
        // Keep time to decide and queue what was checked.
        if Instant::now() + STOP_BEFORE_DEADLINE > opts.deadline {
            report.leads_left = total - i;
            break;
        }
        let in_window = |t: Option<EventTime>, timeless: bool| match t {
            Some(t) if timeless => t >= horizon,
            Some(t) => t >= since,
            None => false,
        };
        let wants_history = rows.iter().any(|r| {
            in_window(r.sent_time, false) || in_window(r.reply_time, false) || r.is_bounced
        });
        let mut history = Vec::new();
        let mut history_unavailable = false;
        if wants_history {
            let id = match rows.iter().find_map(|r| r.lead_id.clone()) {
                Some(id) => Some(id),
                None => match api.lead_by_email(&lead, opts.deadline).await {
                    Ok(id) => id,
                    Err(e) if e.is_retryable() => return Err(e.into()),
                    // An address SmartLead will not look up: no history.
                    Err(_) => None,
                },
            };
            // A history SmartLead cannot give (no id, refused, an unknown
            // shape) leaves the message-id forms out: gaps the key rules
            // would key by a message id are then reported, not backfilled.
            match id {
                Some(id) => match api
                    .message_history(&campaign, &id, opts.deadline)
                    .await
                    .and_then(|v| parse_history(&v))
                {
                    Ok(h) => history = h,
                    Err(e) if e.is_retryable() => return Err(e.into()),
                    Err(_) => history_unavailable = true,
                },
                None => history_unavailable = true,
            }
        }
        let mut lead_facts = Vec::new();
        for mut f in facts(&campaign, &rows, &history) {
            f.history_unavailable =
                history_unavailable && matches!(f.kind, Kind::Sent | Kind::Reply | Kind::Bounce);
            let timeless = f.time.is_none();
            if in_window(f.not_before, timeless) {
                lead_facts.push(f);
            } else if f.not_before.is_none_or(|t| t < horizon) {
                report.too_old += 1;
            }
        }
        let stored = check(store, &campaign, &lead, &mut lead_facts, &mut seen).await?;
        learn(&rows, &lead_facts, &seen, &stored, &mut evidence);
        report.facts_checked += lead_facts.len();
        checked.push((campaign, rows, lead_facts, stored));
        progress(i + 1, total);
    }
    for (campaign, rows, lead_facts, stored) in checked {
        let lead_gaps = gaps(&lead_facts, &seen, &evidence);
        let opens = lead_gaps
            .iter()
            .filter(|g| g.event_type == "EMAIL_OPEN" && matches!(g.action, Action::Backfill { .. }))
            .count() as u64;
        report.gaps.extend(lead_gaps);
        report
            .count_mismatches
            .extend(count_gaps(&campaign, &rows, &stored, opens));
    }
    if !opts.dry_run {
        for g in &report.gaps {
            if let Action::Backfill { body, .. } = &g.action {
                queue.send(backfill_message(body)).await?;
                report.backfilled += 1;
            }
        }
    }
    Ok(report)
}

/// The item a lead's events land in first, in `campaign` (the plan's own
/// keys: the lead's campaign item).
fn lead_item(campaign: &str, lead: &str) -> Option<(String, String)> {
    let probe = json!({
        "event_type": Kind::Open.event_type(),
        "campaign_id": campaign_value(campaign),
        "to_email": lead,
    });
    first_item(&probe)
}

/// The key of the item `body`'s plan writes first, and the event's key.
fn first_item(body: &Value) -> Option<(String, String)> {
    let ev = SmartleadEvent::from_value(body.clone()).ok()?;
    let p = crate::domain::plan::plan(
        &ev,
        EventTime::now(),
        &crate::domain::plan::ScoreWeights::default(),
    );
    p.items.first().map(|u| (u.pk.clone(), u.sk.clone()))
}

/// Checks a lead's facts in one campaign against the store: the item they
/// land in first is read once (and the old design's markers of the facts
/// not in it). Puts the absorbed keys in `seen`, marks the facts whose item
/// has rotated its keys without holding theirs, and returns the item (the
/// stored counts).
async fn check(
    store: &DynamoStore,
    campaign: &str,
    lead: &str,
    facts: &mut [Fact],
    seen: &mut HashSet<String>,
) -> Result<Value, ReconcileError> {
    // Facts by the item they land in (all in the lead's campaign item, by
    // the plan; grouped anyway so none is read against the wrong item); the
    // forms without the e-mail by theirs (`LEAD#id:<id>`).
    let home = lead_item(campaign, lead);
    // (fact, whether its id-keyed forms) by item.
    type Reads = BTreeMap<Option<(String, String)>, Vec<(usize, bool)>>;
    let mut by_item = Reads::new();
    by_item.entry(home.clone()).or_default();
    for (i, f) in facts.iter().enumerate() {
        let at = f
            .candidates
            .first()
            .and_then(|c| first_item(&c.body))
            .or_else(|| home.clone());
        by_item.entry(at).or_default().push((i, false));
        if let Some(c) = f.by_id.first() {
            by_item
                .entry(first_item(&c.body))
                .or_default()
                .push((i, true));
        }
    }
    let (mut stored, mut by_id_items) = (Value::Null, Vec::new());
    // Per fact: any key absorbed, any answer unknown.
    let mut state = vec![(false, false); facts.len()];
    for (at, idx) in by_item {
        let Some((pk, sk)) = at else { continue };
        let list = |i: usize, id: bool| {
            if id {
                &facts[i].by_id
            } else {
                &facts[i].candidates
            }
        };
        let groups: Vec<Vec<crate::domain::key::DedupKey>> = idx
            .iter()
            .map(|&(i, id)| list(i, id).iter().map(|c| c.dedup.clone()).collect())
            .collect();
        let read = store.absorbed(&pk, &sk, &groups).await?;
        for (&(i, id), answers) in idx.iter().zip(&read.answers) {
            for (c, a) in list(i, id).iter().zip(answers) {
                if *a == Absorbed::Yes {
                    seen.insert(c.key.clone());
                }
            }
            state[i].0 |= answers.contains(&Absorbed::Yes);
            state[i].1 |= answers.contains(&Absorbed::Unknown);
        }
        if Some((&pk, &sk)) == home.as_ref().map(|(p, s)| (p, s)) {
            stored = read.item;
        } else if pk.starts_with("LEAD#id:") {
            by_id_items.push(read.item);
        }
    }
    for (f, (yes, unknown)) in facts.iter_mut().zip(state) {
        f.rotated = !yes && unknown;
    }
    Ok(with_counts_of(stored, &by_id_items))
}

/// The lead's item with the counters of its items filed by id added: the
/// stored counts of the lead's events, however SmartLead named it.
fn with_counts_of(mut stored: Value, by_id: &[Value]) -> Value {
    for attr in ["sent", "opens", "clicks", "replies", "bounces"] {
        let n = |v: &Value| v.get(attr).and_then(Value::as_f64).unwrap_or(0.0);
        let more: f64 = by_id.iter().map(n).sum();
        if more > 0.0 {
            let total = n(&stored) + more;
            if !stored.is_object() {
                stored = json!({});
            }
            if let Some(o) = stored.as_object_mut() {
                o.insert(attr.into(), json!(total));
            }
        }
    }
    stored
}

/// The queue message of a backfill: the synthesized webhook, with the
/// attributes the ingest function gives a webhook, plus `source`.
pub fn backfill_message(body: &Value) -> OutgoingMessage {
    let text = body.to_string();
    let event_type = body
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    OutgoingMessage {
        attributes: vec![
            (attr::EVENT_TYPE, event_type),
            (attr::RECEIVED_AT, EventTime::now().to_string()),
            (
                attr::BODY_SHA256,
                crate::domain::message::sha256_hex(text.as_bytes()),
            ),
            (attr::BODY_LOCATION, LOCATION_INLINE.to_owned()),
            (SOURCE, SOURCE_RECONCILE.to_owned()),
        ],
        body: text,
    }
}

/// The IAM actions behind its calls: item (and old marker) reads, the queue,
/// the API key.
pub const RECONCILE_IAM_ACTIONS: &[&str] =
    &["dynamodb:GetItem", "sqs:SendMessage", "ssm:GetParameter"];

/// The scheduled reconcile (the `ReconcileFunction`), built once at cold start.
pub struct Scheduled {
    pub api: Api,
    pub store: crate::adapters::aws::dynamodb::DynamoStore,
    pub queue: crate::adapters::aws::SqsQueue,
    pub lookback_hours: u64,
    pub dedup_ttl_days: u64,
    pub metrics: crate::metrics::Metrics,
}

impl Scheduled {
    /// One run over the active campaigns and the last `lookback_hours`;
    /// publishes its [`metric_values`].
    pub async fn run(&self, deadline: Instant) -> Result<Report, ReconcileError> {
        let now = EventTime::now();
        let since = EventTime::from_millis(
            now.millis() - (self.lookback_hours.min(24 * 3650) as i64) * 3_600_000,
        );
        let campaigns = campaigns(&self.api, true, deadline).await?;
        let opts = Options {
            since,
            dry_run: false,
            dedup_ttl_days: self.dedup_ttl_days,
            now,
            deadline,
        };
        let report = reconcile(
            &self.api,
            &self.store,
            &self.queue,
            &campaigns,
            &opts,
            &|_, _| {},
        )
        .await?;
        emit(&self.metrics, &report);
        Ok(report)
    }
}

/// The run's metrics: `GapsFound` (backfilled or reported) and `LeadsLeft`
/// (leads the run had no time for; the alarm watches both),
/// `EventsBackfilled`, `GapsReportedOnly`, `EventsUnverified`, and
/// `CountMismatches` (lifetime counts above the stored ones: not gaps).
pub fn metric_values(r: &Report) -> [(&'static str, f64); 6] {
    [
        ("GapsFound", r.gaps_found() as f64),
        ("EventsBackfilled", r.backfilled as f64),
        ("GapsReportedOnly", r.reported_only() as f64),
        ("EventsUnverified", r.unverified() as f64),
        ("CountMismatches", r.count_mismatches.len() as f64),
        ("LeadsLeft", r.leads_left as f64),
    ]
}

/// Writes [`metric_values`] as one EMF document.
pub fn emit(metrics: &crate::metrics::Metrics, r: &Report) {
    let values: Vec<(&str, f64, crate::metrics::Unit)> = metric_values(r)
        .into_iter()
        .map(|(n, v)| (n, v, crate::metrics::Unit::Count))
        .collect();
    metrics.emit(&[], &values);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lead: &str, seq: u32) -> StepStat {
        StepStat {
            lead_email: lead.into(),
            sequence_number: Some(seq),
            stats_id: Some(format!("st-{lead}-{seq}")),
            sent_time: EventTime::parse("2026-11-01T09:00:00.123Z"),
            open_time: EventTime::parse("2026-11-01T10:00:00.456Z"),
            reply_time: EventTime::parse("2026-11-01T11:00:00.789Z"),
            open_count: 1,
            reply_count: 1,
            ..StepStat::default()
        }
    }

    #[test]
    fn both_statistics_shapes_are_read_and_partial_rows_skipped() {
        let per_step = json!({"total_stats": "3", "offset": 0, "limit": 100, "data": [
            {"lead_email": "A@x.example", "sequence_number": 1, "stats_id": "s1",
             "sent_time": "2026-11-01T09:00:00.000Z", "open_time": null, "open_count": "0",
             "is_bounced": false, "is_unsubscribed": true},
            {"lead_name": "no e-mail"},
            "not an object"
        ]});
        let p = parse_page(&per_step).unwrap();
        assert_eq!((p.entries, p.unreadable, p.total), (3, 2, Some(3)));
        assert_eq!(p.rows[0].lead_email, "a@x.example");
        assert!(p.rows[0].is_unsubscribed && p.rows[0].open_time.is_none());
        let per_lead = json!({"leads": [{"email": "b@x.example", "lead_id": 7, "sequences": [
            {"sequence_number": 1, "sent_time": "2026-11-01T09:00:00Z", "open_count": 2},
            {"sequence_number": 2, "sent_time": "2026-11-02T09:00:00Z"}
        ]}, {"email": "c@x.example", "open_count": 4, "click_count": 1}]});
        let p = parse_page(&per_lead).unwrap();
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.rows[0].lead_id.as_deref(), Some("7"));
        assert_eq!(p.rows[0].open_count, 2);
        assert_eq!(p.rows[2].sequence_number, None);
        // A per-lead summary builds no fact: counts only.
        assert!(facts("5", &p.rows[2..], &[]).is_empty());
    }

    #[test]
    fn both_history_shapes_are_read() {
        let h = parse_history(&json!({"history": [
            {"type": "SENT", "message_id": "<m1@x>", "time": "2026-11-01T09:00:00Z", "email_seq_number": "1"},
            {"type": "REPLY", "message_id": "<r1@x>", "time": "2026-11-01T11:00:00Z"}]}))
        .unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[0].sent && !h[1].sent);
        assert_eq!(h[0].sequence_number, Some(1));
        let h = parse_history(&json!({"messages": [
            {"id": "msg_1", "direction": "outbound", "sent_at": "2025-01-15T10:00:00Z"},
            {"id": "msg_2", "direction": "inbound", "received_at": "2025-01-20T14:00:00Z"}]}))
        .unwrap();
        assert_eq!(h[1].message_id.as_deref(), Some("msg_2"));
    }

    #[test]
    fn every_fact_of_a_lead_is_read_in_the_item_its_plan_writes_first() {
        // A long address: the plan cuts and hashes it in the key.
        let long = format!("{}@x.example", "a".repeat(300));
        for lead in ["a@x.example".to_owned(), long] {
            let mut r = row(&lead, 1);
            r.is_bounced = true;
            r.is_unsubscribed = true;
            let home = lead_item("5", &lead).expect("item");
            assert_eq!(home.1, "CAMPAIGN#5");
            assert_eq!(home.0 == format!("LEAD#{lead}"), lead.len() < 200);
            for f in facts("5", &[r], &[]) {
                for c in &f.candidates {
                    assert_eq!(first_item(&c.body).as_ref(), Some(&home), "{f:?}");
                }
            }
        }
    }

    #[test]
    fn a_gap_is_backfilled_only_in_the_one_form_seen() {
        let rows = [row("a@x.example", 1)];
        let fs = facts("5", &rows, &[]);
        let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
        assert_eq!(
            open.candidates.len(),
            3,
            "with and without stats_id or step"
        );
        let seen = HashSet::new();
        // Nothing seen: report only.
        let g = gaps(&fs, &seen, &Evidence::new());
        assert!(g.iter().all(|g| matches!(g.action, Action::Report { .. })));
        // Opens seen without stats_id elsewhere: that form is backfilled.
        let tally = |forms: &[(Form, usize)], stored| Tally {
            matched: forms.iter().copied().collect(),
            stored,
        };
        let mut ev = Evidence::new();
        ev.insert(("5".into(), Kind::Open), tally(&[(Form::Fields, 3)], 3));
        let g = gaps(&fs, &seen, &ev);
        let o = g.iter().find(|g| g.event_type == "EMAIL_OPEN").unwrap();
        let Action::Backfill { key, body } = &o.action else {
            panic!("{o:?}")
        };
        assert!(body.get("stats_id").is_none() && key.contains(":fields:"));
        assert_eq!(body["source"], "reconcile");
        // Seen in two forms: report only.
        ev.insert(
            ("5".into(), Kind::Open),
            tally(&[(Form::Fields, 3), (Form::FieldsStats, 3)], 6),
        );
        let g = gaps(&fs, &seen, &ev);
        let o = g.iter().find(|g| g.event_type == "EMAIL_OPEN").unwrap();
        assert!(matches!(o.action, Action::Report { .. }));
        // Sends keyed by message id, with no history: not checkable.
        let mut ev = Evidence::new();
        ev.insert(("5".into(), Kind::Sent), tally(&[(Form::Msg, 3)], 3));
        let g = gaps(&fs, &seen, &ev);
        let s = g.iter().find(|g| g.event_type == "EMAIL_SENT").unwrap();
        assert!(matches!(&s.action, Action::Unverified { reason } if reason.contains("Msg")));
    }

    #[test]
    fn a_fact_seen_in_any_form_is_no_gap_and_teaches_its_form() {
        let rows = [row("a@x.example", 1)];
        let fs = facts("5", &rows, &[]);
        let seen: HashSet<String> = fs
            .iter()
            .filter_map(|f| f.candidates.last().map(|c| c.key.clone()))
            .collect();
        let mut ev = Evidence::new();
        learn(&rows, &fs, &seen, &Value::Null, &mut ev);
        assert!(gaps(&fs, &seen, &ev).is_empty());
        assert_eq!(
            ev[&("5".to_owned(), Kind::Open)].matched,
            BTreeMap::from([(Form::Fields, 1)])
        );
    }

    /// Ten leads, each with one open of step 1 at a whole second (as the
    /// statistics give it). `matched` leads' opens are stored under the key
    /// the statistics rebuild; the others' item counts an open stored under
    /// a key none of the candidates is (its time had milliseconds), except
    /// lead 9's, which is missing.
    fn opens_of_ten(matched: usize) -> (Vec<Fact>, HashSet<String>, Evidence) {
        let (mut all, mut seen, mut ev) = (Vec::new(), HashSet::new(), Evidence::new());
        for l in 0..10 {
            let mut r = row(&format!("l{l}@x.example"), 1);
            r.open_time = EventTime::parse(&format!("2026-11-01T10:00:0{l}Z"));
            (r.reply_time, r.reply_count) = (None, 0);
            let fs = facts("5", std::slice::from_ref(&r), &[]);
            if l < matched {
                let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
                let c = open.candidates.iter().find(|c| c.form == Form::Fields);
                seen.insert(c.unwrap().key.clone());
            }
            let item = if l == 9 {
                json!({"sent": 1})
            } else {
                json!({"sent": 1, "opens": 1})
            };
            learn(&[r], &fs, &seen, &item, &mut ev);
            all.extend(fs);
        }
        (all, seen, ev)
    }

    fn open_actions(matched: usize) -> Vec<Action> {
        let (all, seen, ev) = opens_of_ten(matched);
        gaps(&all, &seen, &ev)
            .into_iter()
            .filter(|g| g.event_type == "EMAIL_OPEN")
            .map(|g| g.action)
            .collect()
    }

    #[test]
    fn one_coincidental_match_teaches_no_form_and_the_gaps_are_reported() {
        // Webhooks with milliseconds, statistics in whole seconds: the one
        // open at `.000` matches; the eight stored under their real keys
        // must not be backfilled (they would count twice).
        let a = open_actions(1);
        assert_eq!(a.len(), 9);
        assert!(
            a.iter()
                .all(|a| matches!(a, Action::Report { reason } if reason.contains("1 of 9"))),
            "{a:#?}"
        );
        // Three matches of nine stored: still not 90%.
        let a = open_actions(3);
        assert!(
            a.iter().all(|a| matches!(a, Action::Report { .. })),
            "{a:#?}"
        );
    }

    #[test]
    fn a_well_established_form_backfills_the_one_missing() {
        // Nine of nine stored opens matched Fields; lead 9's is missing.
        let a = open_actions(9);
        assert_eq!(a.len(), 1);
        assert!(matches!(&a[0], Action::Backfill { key, .. } if key.contains(":fields:")));
    }

    #[test]
    fn unsubscribes_are_reported_never_backfilled() {
        let mut r = row("a@x.example", 1);
        r.is_unsubscribed = true;
        let fs = facts("5", &[r], &[]);
        let mut ev = Evidence::new();
        ev.insert(
            ("5".into(), Kind::Unsubscribe),
            Tally {
                matched: BTreeMap::from([(Form::Fields, 50)]),
                stored: 50,
            },
        );
        let g = gaps(&fs, &HashSet::new(), &ev);
        let u = g
            .iter()
            .find(|g| g.event_type == "LEAD_UNSUBSCRIBED")
            .unwrap();
        assert!(
            matches!(&u.action, Action::Report { reason } if reason.contains("reported only")),
            "{u:?}"
        );
    }

    #[test]
    fn without_the_history_a_send_is_reported_not_backfilled_by_stats_id() {
        let rows = [row("a@x.example", 1)];
        let mut fs = facts("5", &rows, &[]);
        let mut ev = Evidence::new();
        for k in [Kind::Sent, Kind::Reply] {
            let form = if k == Kind::Sent {
                Form::Stats
            } else {
                Form::Fields
            };
            ev.insert(
                ("5".into(), k),
                Tally {
                    matched: BTreeMap::from([(form, 5)]),
                    stored: 5,
                },
            );
        }
        let backfills = |fs: &[Fact]| {
            gaps(fs, &HashSet::new(), &ev)
                .into_iter()
                .filter(|g| matches!(g.action, Action::Backfill { .. }))
                .count()
        };
        assert_eq!(
            backfills(&fs),
            2,
            "history read, no message id: keyed as learned"
        );
        for f in &mut fs {
            f.history_unavailable = true;
        }
        assert_eq!(backfills(&fs), 0);
        let g = gaps(&fs, &HashSet::new(), &ev);
        assert!(g.iter().filter(|g| g.event_type != "EMAIL_OPEN").all(
            |g| matches!(&g.action, Action::Report { reason } if reason.contains("history unavailable"))
        ));
        // An unknown history shape is an error, not "no history".
        for bad in [json!({"error": "not found"}), json!("text"), json!(null)] {
            assert!(matches!(
                parse_history(&bad),
                Err(ApiError::Unexpected { .. })
            ));
        }
    }

    #[test]
    fn an_unknown_statistics_shape_is_an_error_not_no_rows() {
        for bad in [
            json!({"error": "invalid campaign"}),
            json!({"count": 3}),
            json!("<html>"),
            json!(null),
        ] {
            assert!(
                matches!(parse_page(&bad), Err(ApiError::Unexpected { .. })),
                "{bad}"
            );
        }
        // `count` is not the total.
        let p = parse_page(&json!({"count": 1, "data": [{"lead_email": "a@x.example"}]})).unwrap();
        assert_eq!(p.total, None);
    }

    #[test]
    fn a_lead_id_gives_the_same_facts_without_the_email_filed_by_id() {
        let mut r = row("a@x.example", 1);
        r.lead_id = Some("9001".into());
        for f in facts("5", &[r], &[]) {
            assert_eq!(f.by_id.len(), f.candidates.len(), "{f:?}");
            for c in &f.by_id {
                assert!(c.body.get("to_email").is_none());
                assert_eq!(
                    first_item(&c.body),
                    Some(("LEAD#id:9001".to_owned(), "CAMPAIGN#5".to_owned()))
                );
            }
        }
    }

    #[test]
    fn the_counts_of_items_filed_by_id_are_added() {
        let v = with_counts_of(
            json!({"opens": 1, "x": "y"}),
            &[json!({"opens": 2, "clicks": 1})],
        );
        assert_eq!(v, json!({"opens": 3.0, "clicks": 1.0, "x": "y"}));
        assert_eq!(
            with_counts_of(Value::Null, &[json!({"sent": 1})]),
            json!({"sent": 1.0})
        );
        assert_eq!(with_counts_of(Value::Null, &[Value::Null]), Value::Null);
    }

    #[test]
    fn counts_without_times_are_reported_never_backfilled() {
        let mut r = row("a@x.example", 1);
        r.open_count = 3;
        r.click_count = 2;
        let g = count_gaps("5", &[r], &json!({"opens": 1, "clicks": 2}), 0);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].missing, "2 of 3 opens (stored 1)");
        let g = count_gaps("5", &[row("a@x.example", 1)], &Value::Null, 1);
        assert!(g.is_empty(), "the backfilled open counts: {g:?}");
    }

    #[test]
    fn the_backfill_message_carries_the_ingest_attributes_and_source() {
        let m = backfill_message(&json!({"event_type": "EMAIL_OPEN"}));
        let names: Vec<&str> = m.attributes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "event_type",
                "received_at",
                "body_sha256",
                "body_location",
                "source"
            ]
        );
        assert_eq!(
            m.attributes[2].1,
            crate::domain::message::sha256_hex(m.body.as_bytes())
        );
    }
}
