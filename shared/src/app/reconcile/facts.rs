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
    let mut out: Vec<Fact> = rows
        .iter()
        .flat_map(|r| RowFacts::new(campaign, r, history).all())
        .collect();
    out.extend(unsubscribe(campaign, rows));
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

impl Fact {
    /// A fact with no step, time, twin by id or flag yet.
    fn new(kind: Kind, campaign: &str, lead: &str, candidates: Vec<Candidate>) -> Fact {
        Fact {
            kind,
            campaign: campaign.to_owned(),
            lead: lead.to_owned(),
            sequence_number: None,
            time: None,
            not_before: None,
            candidates,
            rotated: false,
            by_id: Vec::new(),
            history_unavailable: false,
        }
    }
}

/// `body` with one more field.
fn with(body: &Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
    let mut b = body.clone();
    b.insert(key.into(), value);
    b
}

/// The facts of one statistics row (one step's e-mail to the lead).
struct RowFacts<'a> {
    campaign: &'a str,
    r: &'a StepStat,
    history: &'a [HistoryMessage],
    /// The step's latest known time.
    latest: Option<EventTime>,
    /// The sent e-mail's message id, from the history.
    sent_msg: Option<String>,
}

impl<'a> RowFacts<'a> {
    fn new(campaign: &'a str, r: &'a StepStat, history: &'a [HistoryMessage]) -> Self {
        let latest = [r.sent_time, r.open_time, r.click_time, r.reply_time]
            .into_iter()
            .flatten()
            .max();
        let sent_msg = history
            .iter()
            .filter(|h| h.sent && h.message_id.is_some())
            .find(|h| {
                (r.sequence_number.is_some() && h.sequence_number == r.sequence_number)
                    || (r.sent_time.is_some() && h.time == r.sent_time)
            })
            .and_then(|h| h.message_id.clone());
        RowFacts {
            campaign,
            r,
            history,
            latest,
            sent_msg,
        }
    }

    fn all(&self) -> Vec<Fact> {
        [self.sent(), self.open(), self.reply(), self.bounce()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The webhook's fields every form shares.
    fn base(&self, kind: Kind) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event_type".into(), json!(kind.event_type()));
        m.insert("campaign_id".into(), campaign_value(self.campaign));
        m.insert("to_email".into(), json!(self.r.lead_email));
        if let Some(s) = self.r.sequence_number {
            m.insert("sequence_number".into(), json!(s));
        }
        m
    }

    fn fact(
        &self,
        kind: Kind,
        time: Option<EventTime>,
        candidates: Vec<Option<Candidate>>,
    ) -> Fact {
        Fact {
            sequence_number: self.r.sequence_number,
            time,
            not_before: time.or(self.latest),
            ..Fact::new(
                kind,
                self.campaign,
                &self.r.lead_email,
                candidates.into_iter().flatten().collect(),
            )
        }
    }

    /// A time the row gives for a step (a step without a number has no
    /// event of its own).
    fn step_time(&self, t: Option<EventTime>) -> Option<EventTime> {
        t.filter(|_| self.r.sequence_number.is_some())
    }

    fn sent(&self) -> Option<Fact> {
        let t = self.step_time(self.r.sent_time)?;
        let mut b = self.base(Kind::Sent);
        b.insert("time_sent".into(), json!(t.to_string()));
        if let Some(s) = &self.r.subject {
            b.insert("subject".into(), json!(s));
        }
        let with_stats = match &self.r.stats_id {
            Some(s) => with(&b, "stats_id", json!(s)),
            None => b.clone(),
        };
        let msg = self
            .sent_msg
            .as_ref()
            .and_then(|m| candidate(Form::Msg, with(&with_stats, "message_id", json!(m))));
        let stats = self
            .r
            .stats_id
            .as_ref()
            .and_then(|_| candidate(Form::Stats, with_stats.clone()));
        let forms = vec![msg, stats, no_step(b.clone()), candidate(Form::Fields, b)];
        Some(self.fact(Kind::Sent, Some(t), forms))
    }

    fn open(&self) -> Option<Fact> {
        let t = self.step_time(self.r.open_time)?;
        let b = with(&self.base(Kind::Open), "time_opened", json!(t.to_string()));
        let with_stats = self
            .r
            .stats_id
            .as_ref()
            .and_then(|s| candidate(Form::FieldsStats, with(&b, "stats_id", json!(s))));
        let forms = vec![with_stats, no_step(b.clone()), candidate(Form::Fields, b)];
        Some(self.fact(Kind::Open, Some(t), forms))
    }

    fn reply(&self) -> Option<Fact> {
        let t = self.step_time(self.r.reply_time)?;
        let b = with(
            &self.base(Kind::Reply),
            "time_replied",
            json!(t.to_string()),
        );
        let reply_msg = self
            .history
            .iter()
            .find(|h| !h.sent && h.time == Some(t))
            .and_then(|h| h.message_id.clone());
        let msg = reply_msg.and_then(|m| {
            let quoted = json!({"message_id": m, "time": t.to_string()});
            candidate(Form::Msg, with(&b, "reply_message", quoted))
        });
        let forms = vec![msg, no_step(b.clone()), candidate(Form::Fields, b)];
        Some(self.fact(Kind::Reply, Some(t), forms))
    }

    fn bounce(&self) -> Option<Fact> {
        if !self.r.is_bounced {
            return None;
        }
        let b = self.base(Kind::Bounce);
        let stats = self
            .r
            .stats_id
            .as_ref()
            .and_then(|s| candidate(Form::Stats, with(&b, "stats_id", json!(s))));
        let msg = self.sent_msg.as_ref().and_then(|m| {
            candidate(
                Form::Msg,
                with(&b, "sent_message", json!({"message_id": m})),
            )
        });
        Some(self.fact(Kind::Bounce, None, vec![stats, msg]))
    }
}

/// A lead unsubscribes from a campaign once, whatever its steps say.
fn unsubscribe(campaign: &str, rows: &[StepStat]) -> Option<Fact> {
    if !rows.iter().any(|r| r.is_unsubscribed) {
        return None;
    }
    let lead = &rows[0].lead_email;
    let mut b = Map::new();
    b.insert("event_type".into(), json!(Kind::Unsubscribe.event_type()));
    b.insert("campaign_id".into(), campaign_value(campaign));
    b.insert("lead_email".into(), json!(lead));
    let latest = rows
        .iter()
        .flat_map(|r| [r.sent_time, r.open_time, r.click_time, r.reply_time])
        .flatten()
        .max();
    let candidates = candidate(Form::Fields, b).into_iter().collect();
    Some(Fact {
        not_before: latest,
        ..Fact::new(Kind::Unsubscribe, campaign, lead, candidates)
    })
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
