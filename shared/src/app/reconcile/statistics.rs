//! Reading SmartLead's statistics and message histories.

use super::{ReconcileError, PAGE_SIZE};
use crate::adapters::http::smartlead::{Api, ApiError};
use crate::domain::time::EventTime;
use serde_json::{Map, Value};
use std::time::Instant;

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
        page.rows.extend(entry_rows(o, lead));
    }
    Ok(page)
}

/// The rows of one entry: one per step of a per-lead entry, else the entry.
fn entry_rows(o: &Map<String, Value>, lead: String) -> Vec<StepStat> {
    let lead_id = text(first(o, &["lead_id", "email_lead_id", "id"]));
    let steps = ["sequences", "steps", "stats", "sequence_stats"]
        .iter()
        .find_map(|k| o.get(*k).and_then(Value::as_array));
    let Some(steps) = steps else {
        let mut r = step(o, lead);
        r.lead_id = lead_id;
        return vec![r];
    };
    let unsubscribed = flag(first(o, &["is_unsubscribed", "unsubscribed"]));
    steps
        .iter()
        .filter_map(Value::as_object)
        .map(|s| {
            let mut r = step(s, lead.clone());
            r.lead_id = r.lead_id.or_else(|| lead_id.clone());
            r.is_unsubscribed |= unsubscribed;
            r
        })
        .collect()
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
    Ok(campaign_clients(api, active_only, deadline)
        .await?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// As [`campaigns`], each with its client (`client_id`: an agency's).
pub async fn campaign_clients(
    api: &Api,
    active_only: bool,
    deadline: Instant,
) -> Result<Vec<(String, Option<String>)>, ReconcileError> {
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
        .filter_map(|c| Some((text(c.get("id"))?, text(c.get("client_id")))))
        .collect())
}
