//! The facts the statistics tell, each with its webhook in every form.

use super::statistics::{HistoryMessage, StepStat};
use super::{SOURCE, SOURCE_RECONCILE};
use crate::domain::event::SmartleadEvent;
use crate::domain::time::EventTime;
use serde::Serialize;
use serde_json::{json, Map, Value};

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

pub(super) fn campaign_value(c: &str) -> Value {
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
