//! A reconcile run: check every fact, decide the gaps, queue the backfills.

use super::facts::{campaign_value, facts, Fact, Kind};
use super::gaps::{count_gaps, gaps, learn, Action, Evidence, Gap};
use super::statistics::{parse_history, statistics, HistoryMessage, StepStat};
use super::{ReconcileError, MARGIN_DAYS, SOURCE, SOURCE_RECONCILE, STOP_BEFORE_DEADLINE};
use crate::adapters::aws::dynamodb::absorbed::Absorbed;
use crate::adapters::aws::dynamodb::DynamoStore;
use crate::adapters::http::smartlead::Api;
use crate::app::ingest::Queue;
use crate::domain::event::SmartleadEvent;
use crate::domain::message::{attr, OutgoingMessage, LOCATION_INLINE};
use crate::domain::time::EventTime;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only facts at or after this time (bounces and unsubscribes, which
    /// carry no time, are always checked inside the TTL window).
    pub since: Option<EventTime>,
    pub dry_run: bool,
    /// `DedupTtlDays`: facts older than it less [`MARGIN_DAYS`] are not
    /// checked.
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
    let window = Window::of(opts);
    let leads = leads(api, campaigns, opts.deadline, &mut report).await?;
    let total = leads.len();
    report.leads = total;
    let mut seen = HashSet::new();
    let mut evidence = Evidence::new();
    let mut checked = Vec::new();
    for (i, lead) in leads.into_iter().enumerate() {
        // Keep time to decide and queue what was checked.
        if Instant::now() + STOP_BEFORE_DEADLINE > opts.deadline {
            report.leads_left = total - i;
            break;
        }
        let history = lead_history(api, &lead, &window, opts.deadline).await?;
        let mut lead_facts = window.facts(&lead, &history, &mut report);
        let stored = check(
            store,
            &lead.campaign,
            &lead.lead,
            &mut lead_facts,
            &mut seen,
        )
        .await?;
        learn(&lead.rows, &lead_facts, &seen, &stored, &mut evidence);
        report.facts_checked += lead_facts.len();
        checked.push((lead, lead_facts, stored));
        progress(i + 1, total);
    }
    for (lead, lead_facts, stored) in checked {
        let lead_gaps = gaps(&lead_facts, &seen, &evidence);
        let opens = lead_gaps
            .iter()
            .filter(|g| g.event_type == "EMAIL_OPEN" && matches!(g.action, Action::Backfill { .. }))
            .count() as u64;
        report.gaps.extend(lead_gaps);
        report
            .count_mismatches
            .extend(count_gaps(&lead.campaign, &lead.rows, &stored, opens));
    }
    if !opts.dry_run {
        queue_backfills(queue, &mut report).await?;
    }
    Ok(report)
}

/// One lead's statistics rows in one campaign.
struct Lead {
    campaign: String,
    lead: String,
    rows: Vec<StepStat>,
}

/// Every campaign's statistics, lead by lead (counting the unreadable rows
/// in `report`).
async fn leads(
    api: &Api,
    campaigns: &[String],
    deadline: Instant,
    report: &mut Report,
) -> Result<Vec<Lead>, ReconcileError> {
    let mut leads = Vec::new();
    for c in campaigns {
        let (rows, unreadable) = statistics(api, c, deadline).await?;
        report.unreadable_rows += unreadable;
        let mut by_lead: BTreeMap<String, Vec<StepStat>> = BTreeMap::new();
        for r in rows {
            by_lead.entry(r.lead_email.clone()).or_default().push(r);
        }
        leads.extend(by_lead.into_iter().map(|(lead, rows)| Lead {
            campaign: c.clone(),
            lead,
            rows,
        }));
    }
    Ok(leads)
}

/// Which facts a run checks: those inside the TTL window and, where timed,
/// at or after `since`.
struct Window {
    horizon: EventTime,
    since: EventTime,
}

impl Window {
    fn of(opts: &Options) -> Self {
        let horizon = opts.horizon();
        let since = opts.since.map_or(horizon, |s| s.max(horizon));
        Window { horizon, since }
    }

    fn contains(&self, t: Option<EventTime>, timeless: bool) -> bool {
        match t {
            Some(t) if timeless => t >= self.horizon,
            Some(t) => t >= self.since,
            None => false,
        }
    }

    /// The lead's facts in the window (those too old counted in `report`).
    fn facts(&self, lead: &Lead, history: &History, report: &mut Report) -> Vec<Fact> {
        let mut out = Vec::new();
        for mut f in facts(&lead.campaign, &lead.rows, &history.messages) {
            f.history_unavailable =
                history.unavailable && matches!(f.kind, Kind::Sent | Kind::Reply | Kind::Bounce);
            let timeless = f.time.is_none();
            if self.contains(f.not_before, timeless) {
                out.push(f);
            } else if f.not_before.is_none_or(|t| t < self.horizon) {
                report.too_old += 1;
            }
        }
        out
    }
}

/// A lead's message history, when its facts want it.
#[derive(Default)]
struct History {
    messages: Vec<HistoryMessage>,
    /// Wanted and not readable.
    unavailable: bool,
}

/// Reads the lead's message history if a send, reply or bounce in the
/// window wants it. A history SmartLead cannot give (no id, refused, an
/// unknown shape) leaves the message-id forms out: gaps the key rules would
/// key by a message id are then reported, not backfilled.
async fn lead_history(
    api: &Api,
    lead: &Lead,
    window: &Window,
    deadline: Instant,
) -> Result<History, ReconcileError> {
    let wants_history = lead.rows.iter().any(|r| {
        window.contains(r.sent_time, false) || window.contains(r.reply_time, false) || r.is_bounced
    });
    if !wants_history {
        return Ok(History::default());
    }
    let id = match lead.rows.iter().find_map(|r| r.lead_id.clone()) {
        Some(id) => Some(id),
        None => match api.lead_by_email(&lead.lead, deadline).await {
            Ok(id) => id,
            Err(e) if e.is_retryable() => return Err(e.into()),
            // An address SmartLead will not look up: no history.
            Err(_) => None,
        },
    };
    let unavailable = History {
        messages: Vec::new(),
        unavailable: true,
    };
    let Some(id) = id else {
        return Ok(unavailable);
    };
    match api
        .message_history(&lead.campaign, &id, deadline)
        .await
        .and_then(|v| parse_history(&v))
    {
        Ok(messages) => Ok(History {
            messages,
            unavailable: false,
        }),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(_) => Ok(unavailable),
    }
}

/// Queues the backfills among `report`'s gaps.
async fn queue_backfills<Q: Queue + ?Sized>(
    queue: &Q,
    report: &mut Report,
) -> Result<(), ReconcileError> {
    for g in &report.gaps {
        if let Action::Backfill { body, .. } = &g.action {
            queue.send(backfill_message(body)).await?;
            report.backfilled += 1;
        }
    }
    Ok(())
}

/// The item a lead's events land in first, in `campaign` (the plan's own
/// keys: the lead's campaign item).
pub(super) fn lead_item(campaign: &str, lead: &str) -> Option<(String, String)> {
    let probe = json!({
        "event_type": Kind::Open.event_type(),
        "campaign_id": campaign_value(campaign),
        "to_email": lead,
    });
    first_item(&probe)
}

/// The key of the item `body`'s plan writes first, and the event's key.
pub(super) fn first_item(body: &Value) -> Option<(String, String)> {
    let ev = SmartleadEvent::from_value(body.clone()).ok()?;
    let p = crate::domain::plan::plan(
        &ev,
        EventTime::now(),
        &crate::domain::plan::ScoreWeights::default(),
    );
    p.items.first().map(|u| (u.pk.clone(), u.sk.clone()))
}

/// (fact, whether its id-keyed forms) by the item they are read in.
type Reads = BTreeMap<Option<(String, String)>, Vec<(usize, bool)>>;

/// Facts by the item they land in (all in the lead's campaign item `home`,
/// by the plan; grouped anyway so none is read against the wrong item); the
/// forms without the e-mail by theirs (`LEAD#id:<id>`).
fn reads(home: &Option<(String, String)>, facts: &[Fact]) -> Reads {
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
    by_item
}

/// Checks a lead's facts in one campaign against the store: the item they
/// land in first is read once (and its archive, if it rotated keys out).
/// Puts the absorbed keys in `seen`, marks the facts whose item
/// has rotated its keys without holding theirs, and returns the item (the
/// stored counts).
async fn check(
    store: &DynamoStore,
    campaign: &str,
    lead: &str,
    facts: &mut [Fact],
    seen: &mut HashSet<String>,
) -> Result<Value, ReconcileError> {
    let home = lead_item(campaign, lead);
    let by_item = reads(&home, facts);
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
pub(super) fn with_counts_of(mut stored: Value, by_id: &[Value]) -> Value {
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
