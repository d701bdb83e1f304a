//! What happens after an event's state is stored: fan-out to EventBridge,
//! alerts (Slack, SNS) and list hygiene (SmartLead). These calls leave
//! DynamoDB, so each is an *effect*, run on its own path
//! ([`crate::app::worker`]): the consumer queues it once the state is
//! applied; the worker claims an alert or hygiene call on the event's
//! effect record (`EVENT#<key>`: `running` with a lease, then `done`,
//! `refused`, or back to `pending`), runs it and settles it; a failure
//! comes back on the effects queue after a backoff. The fan-out is not
//! claimed: its `fo` mark on the state item stands until it is queued.
//!
//! So an effect is retried until it succeeds (or its retries run out into
//! the effects DLQ), never holds back the state, and is not repeated once
//! it succeeded and was marked. The gaps no external API closes: a crash
//! after the call succeeded but before the `done` write repeats it once,
//! and a fan-out can be queued twice; every published event carries the
//! dedup key as a stable id so subscribers can drop that repeat.

use crate::domain::event::{EventData, EventType, SmartleadEvent};
use crate::domain::time::EventTime;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub const FANOUT: &str = "fanout";
pub const SLACK: &str = "slack";
pub const SNS: &str = "sns";
pub const HYGIENE: &str = "hygiene";

/// EventBridge's limit on one `PutEvents` request; entries are packed below it.
pub const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;
/// A detail larger than this drops the original payload (kept in S3/DynamoDB
/// by the pipeline anyway) and says so.
const MAX_DETAIL_BYTES: usize = 200 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// Worth retrying (the record goes back to SQS).
    #[error("{0}")]
    Transient(#[source] crate::app::store::BoxError),
    /// Retrying cannot help (the API refused it): logged, counted, not retried.
    #[error("{0}")]
    Permanent(#[source] crate::app::store::BoxError),
}

/// "Not before `after`": the API throttled, or the destination's rate
/// budget has no slot before the deadline. Carried as the cause of
/// [`EffectError::Transient`] ([`EffectError::later`]), read back by
/// [`EffectError::retry_after`] (the delay before the record is tried again).
#[derive(Debug, thiserror::Error)]
#[error("{reason} (retry in {}s)", after.as_secs_f64().ceil())]
pub struct RetryLater {
    pub after: Duration,
    pub reason: String,
}

impl EffectError {
    /// A transient failure that should be tried again no sooner than `after`.
    pub fn later(after: Duration, reason: impl Into<String>) -> EffectError {
        EffectError::Transient(Box::new(RetryLater {
            after,
            reason: reason.into(),
        }))
    }

    /// How long to wait before trying again, when the failure said (a
    /// [`RetryLater`] anywhere in a transient error's causes).
    pub fn retry_after(&self) -> Option<Duration> {
        let EffectError::Transient(e) = self else {
            return None;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(cause) = next {
            if let Some(later) = cause.downcast_ref::<RetryLater>() {
                return Some(later.after);
            }
            next = cause.source();
        }
        None
    }
}

/// One event for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub detail_type: String,
    pub detail: String,
    pub time: Option<EventTime>,
}

/// Builds the fan-out event: the normalized view, the lead state after this
/// event and the original payload, with the dedup key as its stable id.
pub fn bus_event(ev: &SmartleadEvent, key: &str, state: Option<Value>) -> BusEvent {
    let n = ev.normalized();
    let mut detail = json!({
        "id": key,
        "dedup_key": key,
        "event_type": ev.event_type.as_str(),
        "normalized": n,
        "state": state.unwrap_or(Value::Null),
        "payload": Value::Object(ev.raw.clone()),
    });
    // PutEvents takes JSON integers within i64 only: a larger one (an id
    // of 2^63 or more) is kept as its text.
    fit_integers(&mut detail);
    // Over EventBridge's entry limit, the bulkiest parts give way, in this
    // order, to a note of their size: the payload, then the state (a lead
    // item grown near DynamoDB's 400 KB), then the normalized view. An
    // entry EventBridge refuses for its size would be retried forever.
    let mut text = detail.to_string();
    for part in ["payload", "state", "normalized"] {
        if text.len() <= MAX_DETAIL_BYTES {
            break;
        }
        let bytes = detail[part].to_string().len();
        detail[part] =
            json!({"omitted": "larger than the EventBridge entry limit", "bytes": bytes});
        text = detail.to_string();
    }
    BusEvent {
        // An unknown type's name may be longer than a detail-type can be.
        detail_type: crate::domain::plan::cut_bytes(ev.event_type.as_str(), MAX_DETAIL_TYPE_BYTES)
            .to_owned(),
        detail: text,
        time: n.event_time,
    }
}

/// EventBridge's limit on an entry's detail-type
/// (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html>).
pub const MAX_DETAIL_TYPE_BYTES: usize = 128;

/// Integers past i64's range as text: PutEvents refuses them
/// (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html>).
fn fit_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => *v = Value::String(n.to_string()),
        Value::Array(a) => a.iter_mut().for_each(fit_integers),
        Value::Object(o) => o.values_mut().for_each(fit_integers),
        _ => {}
    }
}

/// Publishes to the bus: one result per entry, in order (`Transient` = not
/// published, retry it; `Permanent` = refused for good, e.g. a malformed
/// entry: recorded, not retried).
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, events: &[BusEvent]) -> Vec<Result<(), EffectError>>;
}

// ------------------------------------------------------------------ alerts

/// Which events alert people (`ALERT_EVENTS`), and which lead categories
/// count as positive besides a `positive` sentiment (`POSITIVE_CATEGORIES`).
#[derive(Debug, Clone)]
pub struct AlertRules {
    pub types: BTreeSet<EventType>,
    pub positive_categories: BTreeSet<String>,
}

pub const DEFAULT_ALERT_EVENTS: &str = "EMAIL_REPLY,LEAD_CATEGORY_UPDATED,MANUAL_STEP_REACHED,EMAIL_ACCOUNT_DISCONNECTED,LINKEDIN_DISCONNECTED,CAMPAIGN_BOUNCE_BREACH";
pub const DEFAULT_POSITIVE_CATEGORIES: &str = "Interested,Meeting Request,Information Request";

impl AlertRules {
    pub fn parse(events: &str, positive: &str) -> Result<AlertRules, String> {
        let mut types = BTreeSet::new();
        for name in events.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match EventType::from_wire(name) {
                EventType::Unknown(_) => return Err(format!("unknown event type {name:?}")),
                t => {
                    types.insert(t);
                }
            }
        }
        Ok(AlertRules {
            types,
            positive_categories: positive
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }

    /// Does this event alert? A category change only to a positive one.
    pub fn is_hot(&self, ev: &SmartleadEvent) -> bool {
        if !self.types.contains(&ev.event_type) {
            return false;
        }
        match &ev.data {
            EventData::LeadCategoryUpdated(c) => {
                // The category entered, in either generation (see `new_category`).
                let cat = c.new_category();
                cat.sentiment
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("positive"))
                    || cat
                        .name
                        .as_deref()
                        .is_some_and(|n| self.positive_categories.contains(&n.to_ascii_lowercase()))
            }
            _ => true,
        }
    }
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules::parse(DEFAULT_ALERT_EVENTS, DEFAULT_POSITIVE_CATEGORIES).unwrap_or(AlertRules {
            types: BTreeSet::new(),
            positive_categories: BTreeSet::new(),
        })
    }
}

/// A readable alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    pub event_type: String,
    pub title: String,
    pub lead: Option<String>,
    pub campaign: Option<String>,
    pub preview: Option<String>,
    pub link: Option<String>,
    pub dedup_key: String,
}

fn raw_text(ev: &SmartleadEvent, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| {
        // The flat reading, so nested and envelope bodies read alike.
        let mut v = ev.view().get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

/// An alert's headline: who did what (or which account, campaign).
fn title(ev: &SmartleadEvent, lead: Option<&str>, campaign: Option<&str>) -> String {
    let n = ev.normalized();
    let who = lead.unwrap_or("a lead");
    let account = n
        .sender_email
        .clone()
        .or(n.account_id.as_ref().map(|a| a.to_string()))
        .unwrap_or_else(|| "an account".into());
    match &ev.data {
        EventData::EmailReply(_) => match &n.replied_by {
            Some(by) => format!("Reply from {by} for {who}"),
            None => format!("Reply from {who}"),
        },
        EventData::LeadCategoryUpdated(c) => {
            let now = c.new_category().name;
            let was = c.old_category().and_then(|o| o.name);
            format!(
                "{who} is now {}{}",
                now.unwrap_or_else(|| "in a positive category".into()),
                was.map(|w| format!(" (was {w})")).unwrap_or_default()
            )
        }
        EventData::ManualStepReached(_) => format!("Manual step reached for {who}"),
        EventData::EmailAccountDisconnected(_) => {
            format!("E-mail account disconnected: {account}")
        }
        EventData::LinkedinDisconnected(_) => {
            format!("LinkedIn account disconnected: {account}")
        }
        EventData::CampaignBounceBreach(_) => {
            format!("Bounce rate breach in {}", campaign.unwrap_or("a campaign"))
        }
        _ => format!("{} for {who}", ev.event_type.as_str()),
    }
}

/// The reply's (or step's, error's) text, on one line, at most 300 characters.
fn preview(ev: &SmartleadEvent) -> Option<String> {
    raw_text(
        ev,
        &[
            &["reply_message", "text"],
            &["preview_text"],
            &["visible_text"],
            &["last_reply", "email_body"],
            &["lastReply", "email_body"],
            &["step_description"],
            &["description"],
            &["error"],
            &["message"],
        ],
    )
    .or_else(|| {
        raw_text(ev, &[&["reply_message", "html"], &["reply_body"]])
            .map(|h| crate::domain::plan::strip_html(&h))
    })
    .map(|p| {
        let p: String = p.split_whitespace().collect::<Vec<_>>().join(" ");
        if p.chars().count() > 300 {
            format!("{}…", p.chars().take(300).collect::<String>())
        } else {
            p
        }
    })
}

impl Alert {
    pub fn from_event(ev: &SmartleadEvent, key: &str) -> Alert {
        let n = ev.normalized();
        let lead = match (&n.lead_name, &n.lead_email) {
            (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
            (None, Some(email)) => Some(email.clone()),
            (Some(name), None) => Some(name.clone()),
            (None, None) => None,
        };
        let campaign = match (&n.campaign_name, &n.campaign_id) {
            (Some(name), Some(id)) => Some(format!("{name} (#{id})")),
            (Some(name), None) => Some(name.clone()),
            (None, Some(id)) => Some(format!("#{id}")),
            (None, None) => None,
        };
        // `app_url`, else the deprecated `ui_master_inbox_link` (normalized).
        let link = n.app_url.clone().or_else(|| {
            n.campaign_id
                .as_ref()
                .map(|c| format!("https://app.smartlead.ai/app/email-campaign/{c}/analytics"))
        });
        Alert {
            event_type: ev.event_type.as_str().to_owned(),
            title: title(ev, lead.as_deref(), campaign.as_deref()),
            lead,
            campaign,
            preview: preview(ev),
            link,
            dedup_key: key.to_owned(),
        }
    }

    /// Plain text (SNS, and Slack's notification fallback).
    pub fn text(&self) -> String {
        let mut t = self.title.clone();
        for (label, v) in [
            ("Lead", &self.lead),
            ("Campaign", &self.campaign),
            ("Preview", &self.preview),
            ("Open in SmartLead", &self.link),
        ] {
            if let Some(v) = v {
                t.push_str(&format!("\n{label}: {v}"));
            }
        }
        t.push_str(&format!(
            "\nEvent: {} ({})",
            self.event_type, self.dedup_key
        ));
        t
    }

    /// One Slack message for several alerts (a wave of replies): each
    /// alert's blocks, a divider between them, and the titles as the text
    /// fallback. Ten alerts stay within Slack's 50 blocks a message
    /// (<https://api.slack.com/reference/block-kit/blocks>).
    pub fn slack_digest(alerts: &[Alert]) -> Value {
        if let [one] = alerts {
            return one.slack();
        }
        let mut blocks = Vec::new();
        for (i, a) in alerts.iter().enumerate() {
            if i > 0 {
                blocks.push(json!({"type": "divider"}));
            }
            blocks.extend(a.slack()["blocks"].as_array().cloned().unwrap_or_default());
        }
        let titles: Vec<&str> = alerts.iter().map(|a| a.title.as_str()).collect();
        json!({"text": format!("{} alerts: {}", alerts.len(), titles.join("; ")), "blocks": blocks})
    }

    /// A Slack incoming-webhook message (Block Kit, with a text fallback).
    pub fn slack(&self) -> Value {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut fields = Vec::new();
        if let Some(l) = &self.lead {
            fields.push(json!({"type": "mrkdwn", "text": format!("*Lead*\n{}", esc(l))}));
        }
        if let Some(c) = &self.campaign {
            fields.push(json!({"type": "mrkdwn", "text": format!("*Campaign*\n{}", esc(c))}));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": self.title.chars().take(150).collect::<String>()}}),
        ];
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        if let Some(p) = &self.preview {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("> {}", esc(p))}}));
        }
        let mut context = format!("{} · `{}`", self.event_type, self.dedup_key);
        if let Some(link) = &self.link {
            context = format!("<{}|Open in SmartLead> · {context}", esc(link));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        json!({"text": self.title, "blocks": blocks})
    }
}

/// An external call made for some events (an alert, a list-hygiene call).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The effect name it is claimed under (`slack`, `sns`, `hygiene`).
    fn effect(&self) -> &'static str;
    /// Whether this event gets it (alerts: the hot events of `rules`).
    fn applies(&self, ev: &SmartleadEvent, rules: &AlertRules) -> bool {
        rules.is_hot(ev)
    }
    /// Does it, giving up (as transient) before `deadline`.
    async fn notify(
        &self,
        ev: &SmartleadEvent,
        key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError>;
    /// How many events one call may carry (Slack: a digest of alerts).
    fn batch_limit(&self) -> usize {
        1
    }
    /// Does it for up to [`Self::batch_limit`] events as one call: one
    /// result for them all.
    async fn notify_all(
        &self,
        evs: &[(&SmartleadEvent, &str)],
        deadline: Instant,
    ) -> Result<(), EffectError> {
        for (ev, key) in evs {
            self.notify(ev, key, deadline).await?;
        }
        Ok(())
    }
}

impl EffectError {
    /// The same outcome again, for each effect a shared call stood for.
    pub fn copied(&self) -> EffectError {
        match self {
            EffectError::Permanent(e) => EffectError::Permanent(e.to_string().into()),
            e => match e.retry_after() {
                Some(after) => EffectError::later(after, e.to_string()),
                None => EffectError::Transient(e.to_string().into()),
            },
        }
    }
}

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

/// The consumer's effects: what runs for which event.
#[derive(Default)]
pub struct Effects {
    pub publisher: Option<Box<dyn Publisher>>,
    pub notifiers: Vec<Box<dyn Notifier>>,
    pub alerts: AlertRules,
}

impl Effects {
    /// The effects an event gets, in a fixed order.
    pub fn for_event(&self, ev: &SmartleadEvent) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.publisher.is_some() {
            out.push(FANOUT);
        }
        out.extend(
            self.notifiers
                .iter()
                .filter(|n| n.applies(ev, &self.alerts))
                .map(|n| n.effect()),
        );
        out
    }

    pub fn notifier(&self, effect: &str) -> Option<&dyn Notifier> {
        self.notifiers
            .iter()
            .find(|n| n.effect() == effect)
            .map(|b| b.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: Value) -> SmartleadEvent {
        SmartleadEvent::from_slice(v.to_string().as_bytes()).expect("event")
    }

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
            "../../../events/payloads/email_bounce.json"
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

    #[test]
    fn only_positive_category_changes_alert() {
        let rules = AlertRules::default();
        let cat = |c: Value| {
            ev(json!({"event_type": "LEAD_CATEGORY_UPDATED", "lead_email": "a@b.c", "category": c}))
        };
        assert!(rules.is_hot(&cat(
            json!({"name": "Whatever", "sentiment_type": "positive"})
        )));
        assert!(rules.is_hot(&cat(json!("Interested"))));
        assert!(!rules.is_hot(&cat(
            json!({"name": "Not Interested", "sentiment_type": "negative"})
        )));
        // The current generation's `lead_category`, which wins over `category`.
        let change = |new: &str, old: Value| {
            ev(
                json!({"event_type": "LEAD_CATEGORY_UPDATED", "to_email": "a@b.c", "category": old,
                      "lead_category": {"old_id": 5, "old_name": "Information Request", "new_id": 1, "new_name": new}}),
            )
        };
        assert!(rules.is_hot(&change("Interested", Value::Null)));
        assert!(!rules.is_hot(&change("Not Interested", json!("Interested"))));
        assert!(rules.is_hot(&ev(
            json!({"event_type": "EMAIL_REPLY", "to_email": "a@b.c"})
        )));
        assert!(!rules.is_hot(&ev(
            json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.c"})
        )));
        assert!(AlertRules::parse("EMAIL_REPLY,NOPE", "").is_err());
    }

    #[test]
    fn a_reply_alert_reads_well() {
        let e = ev(
            json!({"event_type": "EMAIL_REPLY", "to_email": "jane@acme.example", "to_name": "Jane Doe",
                          "campaign_name": "Q1", "campaign_id": 123, "preview_text": "Sounds   good,\nlet's talk",
                          "app_url": "https://app.smartlead.ai/x"}),
        );
        let a = Alert::from_event(&e, "EMAIL_REPLY:msg:abc");
        assert_eq!(a.title, "Reply from Jane Doe <jane@acme.example>");
        assert_eq!(a.campaign.as_deref(), Some("Q1 (#123)"));
        assert_eq!(a.preview.as_deref(), Some("Sounds good, let's talk"));
        assert_eq!(a.link.as_deref(), Some("https://app.smartlead.ai/x"));
        let s = a.slack();
        assert_eq!(s["text"], a.title);
        assert!(s.to_string().contains("Jane Doe &lt;jane@acme.example&gt;"));
        assert!(a.text().contains("Preview: Sounds good"));
    }

    #[test]
    fn a_colleagues_reply_alerts_for_the_lead_and_names_the_writer() {
        let e = ev(
            json!({"event_type": "EMAIL_REPLY", "to_email": "tom@acme.example", "to_name": "Tom Baker",
                   "sl_lead_email": "jane@acme.example", "campaign_id": 1}),
        );
        let a = Alert::from_event(&e, "k");
        assert_eq!(a.title, "Reply from tom@acme.example for jane@acme.example");
        assert_eq!(a.lead.as_deref(), Some("jane@acme.example"));
    }

    #[test]
    fn alerts_and_bounce_kinds_read_nested_and_envelope_bodies_too() {
        let e = ev(
            json!({"event": "EMAIL_REPLIED", "campaign_id": 4, "campaign_name": "Pilot",
            "lead": {"email": "ada@x.example", "first_name": "Ada", "last_name": "L"},
            "reply": {"body": "<p>Yes, Friday</p>", "received_at": "2025-01-15T10:00:00Z"}}),
        );
        let a = Alert::from_event(&e, "k");
        assert_eq!(a.title, "Reply from Ada L <ada@x.example>");
        assert_eq!(a.preview.as_deref(), Some("Yes, Friday"));
        let e = ev(json!({"id": "evt_1", "type": "email.account.disconnected",
            "data": {"account_id": 5, "email": "box@x.example", "reason": "SMTP Failure"}}));
        let a = Alert::from_event(&e, "k");
        assert_eq!(a.title, "E-mail account disconnected: box@x.example");
        assert_eq!(a.preview.as_deref(), Some("SMTP Failure"));
        let e = ev(
            json!({"event": "EMAIL_BOUNCED", "lead": {"email": "a@x.example"},
            "bounce_reason": "452 4.2.2 Mailbox full"}),
        );
        assert_eq!(bounce_kind(&e), BounceKind::Soft);
    }

    #[test]
    fn the_bus_event_carries_key_view_state_and_payload() {
        let e = ev(
            json!({"event_type": "EMAIL_OPEN", "to_email": "a@b.c", "campaign_id": 1, "time_opened": "2025-01-01T00:00:00Z"}),
        );
        let b = bus_event(&e, "EMAIL_OPEN:fields:1", Some(json!({"opens": 1})));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert_eq!(d["dedup_key"], "EMAIL_OPEN:fields:1");
        assert_eq!(d["normalized"]["lead_email"], "a@b.c");
        assert_eq!(d["state"]["opens"], 1);
        assert_eq!(d["payload"]["campaign_id"], 1);
        assert_eq!(b.detail_type, "EMAIL_OPEN");
        let huge = ev(
            json!({"event_type": "EMAIL_REPLY", "to_email": "a@b.c", "reply_body": "x".repeat(300 * 1024)}),
        );
        let b = bus_event(&huge, "k", None);
        assert!(b.detail.len() < MAX_DETAIL_BYTES);
        assert!(b.detail.contains("omitted"));
        // A state grown near DynamoDB's 400 KB (distinct clicked links) gives
        // way too: the entry stays under EventBridge's limit, key and view kept.
        let links: Vec<String> = (0..4000)
            .map(|i| format!("https://x.example/{i:080}"))
            .collect();
        let b = bus_event(&e, "k2", Some(json!({"links_clicked": links})));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert!(b.detail.len() < MAX_DETAIL_BYTES, "{}", b.detail.len());
        assert_eq!(
            d["state"]["omitted"],
            "larger than the EventBridge entry limit"
        );
        assert_eq!(d["dedup_key"], "k2");
        assert_eq!(d["normalized"]["lead_email"], "a@b.c");
    }

    /// What PutEvents refuses, bounded in the entry: a detail-type over 128
    /// characters (PutEventsRequestEntry,
    /// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html)
    /// and JSON integers outside i64 (PutEvents,
    /// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
    #[test]
    fn the_bus_event_keeps_within_what_put_events_accepts() {
        let long_type = format!("LEAD_{}", "X".repeat(250));
        let e = ev(
            json!({"event_type": long_type, "campaign_id": 18446744073709551615_u64,
                          "ids": [9223372036854775807_i64, 9223372036854775808_u64, -3]}),
        );
        let b = bus_event(&e, "k", None);
        assert!(b.detail_type.len() <= 128, "{}", b.detail_type.len());
        assert!(b.detail_type.starts_with("LEAD_XX"));
        let d: Value = serde_json::from_str(&b.detail).unwrap();
        assert_eq!(d["payload"]["campaign_id"], "18446744073709551615");
        assert_eq!(
            d["payload"]["ids"],
            json!([9223372036854775807_i64, "9223372036854775808", -3])
        );
    }

    #[test]
    fn a_retry_later_is_found_among_a_transient_errors_causes() {
        let after = Duration::from_millis(1500);
        let e = EffectError::later(after, "Slack rate limit");
        assert_eq!(e.retry_after(), Some(after));
        assert_eq!(e.to_string(), "Slack rate limit (retry in 2s)");
        #[derive(Debug, thiserror::Error)]
        #[error("hygiene")]
        struct Wrapper(#[source] RetryLater);
        let wrapped = Wrapper(RetryLater {
            after,
            reason: "budget".into(),
        });
        assert_eq!(
            EffectError::Transient(wrapped.into()).retry_after(),
            Some(after)
        );
        assert_eq!(EffectError::Transient("down".into()).retry_after(), None);
        let refused = EffectError::Permanent(Box::new(RetryLater {
            after,
            reason: "x".into(),
        }));
        assert_eq!(refused.retry_after(), None);
    }
}
