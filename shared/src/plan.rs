//! What each event does to the state table, as data: a [`Plan`] of item
//! updates that the store applies atomically with the event's dedup marker.
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
//! | EMAIL_REPLY | same | `replies` +1, flag `replied`, first/last reply time, last reply preview and subject, score + reply weight |
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
//! once, by the first event that carries them.

use crate::event::{EventData, EventType, SmartleadEvent};
use crate::key::DedupKey;
use crate::time::EventTime;
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
}

/// Everything one event does, applied atomically with its dedup marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub key: DedupKey,
    pub event_type: EventType,
    /// How registers order this event: [`compact_order`].
    pub order: String,
    pub event_time: EventTime,
    pub items: Vec<ItemUpdate>,
    /// Side effects to run after the state commits (see [`crate::effects`]):
    /// the dedup marker is written with each of them claimed until
    /// `lease_until_ms`, in the same transaction.
    pub effects: Vec<&'static str>,
    pub lease_until_ms: i64,
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
/// Raw events kept in an item are cut here (DynamoDB items hold 400 KB).
pub const MAX_RAW_CHARS: usize = 300_000;

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
    let raw = serde_json::to_string(&ev.raw).unwrap_or_default();
    let truncated = raw.len() > MAX_RAW_CHARS;
    let mut u = ItemUpdate::new(pk, order.to_owned())
        .once("event_type", Some(ev.event_type.as_str().to_owned()));
    u.set_once.push((
        "raw",
        Val::S(if truncated {
            cut(&raw, MAX_RAW_CHARS)
        } else {
            raw
        }),
    ));
    if truncated {
        u.set_once.push(("raw_truncated", Val::S("true".into())));
    }
    u
}

/// `"<epoch ms, 13 digits>#<the key's last 16 hex digits>"`: sorts by time,
/// then by key, in 30 bytes.
pub fn compact_order(t: EventTime, key: &DedupKey) -> String {
    let k = key.as_str();
    let tail = &k[k.len().saturating_sub(16)..];
    format!("{:013}#{tail}", t.millis().max(0))
}

/// Builds the plan for one event. `fallback_time` (when SQS received it) is
/// used when the event carries no time of its own.
pub fn plan(ev: &SmartleadEvent, fallback_time: EventTime, weights: &ScoreWeights) -> Plan {
    let n = ev.normalized();
    let key = ev.dedup_key();
    let event_time = n.event_time.unwrap_or(fallback_time);
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
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let lead_pk = n
        .lead_email
        .as_ref()
        .map(|e| format!("LEAD#{e}"))
        .or_else(|| n.lead_id.as_ref().map(|i| format!("LEAD#id:{i}")));
    let lead_campaign = |pk: &String| {
        ItemUpdate::new(pk.clone(), format!("CAMPAIGN#{campaign}"))
            .once("campaign_id", n.campaign_id.as_ref().map(|c| c.to_string()))
            .once("campaign_name", n.campaign_name.clone())
            .once("lead_email", n.lead_email.clone())
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
                .earliest("first_sent_order", vec![("first_sent_at", t())]);
            if let Some(seq) = n.sequence_number {
                u.add.push(("steps_sent", Val::Ns(vec![f64::from(seq)])));
            }
            items.push(score(u, weights.sent));
        }
        (EventData::FirstEmailSent(_), Some(pk)) => {
            items.push(
                lead_campaign(pk)
                    .flag("contacted")
                    .earliest("first_email_order", vec![("first_email_sent_at", t())]),
            );
        }
        (EventData::EmailOpen(_), Some(pk)) => {
            let u = lead_campaign(pk)
                .count("opens")
                .flag("engaged")
                .latest("last_open_order", vec![("last_open_at", t())])
                .earliest("first_open_order", vec![("first_open_at", t())]);
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
                .earliest("first_click_order", vec![("first_click_at", t())]);
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
                .latest(
                    "last_reply_order",
                    vec![
                        ("last_reply_at", t()),
                        ("last_reply_preview", owned(preview)),
                        ("last_reply_subject", s(r.email.subject.text())),
                        ("last_reply_message_id", owned(n.message_id.clone())),
                    ],
                )
                .earliest("first_reply_order", vec![("first_reply_at", t())]);
            items.push(score(u, weights.reply));
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
            items.push(score(u, weights.bounce));
            items.push(suppression(pk, "bounce"));
        }
        (EventData::LeadUnsubscribed(_), Some(pk)) => {
            let u = lead_campaign(pk)
                .count("unsubscribes")
                .flag("unsubscribed")
                .latest("last_unsubscribe_order", vec![("unsubscribed_at", t())]);
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
                    .earliest("reached_order", vec![("reached_at", t())]),
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
                    .earliest("first_disconnect_order", vec![("disconnected_since", t())]),
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
            let ty: String = ev.event_type.as_str().chars().take(100).collect();
            items.push(raw_record(format!("UNKNOWN#{ty}"), ev, &sk));
        }
        // Lead events always matched above (with or without a lead).
        _ => items.push(raw_record(
            format!("UNATTRIBUTED#{}", ev.event_type.metric_name()),
            ev,
            &sk,
        )),
    }
    Plan {
        key,
        event_type: ev.event_type.clone(),
        order,
        event_time,
        items,
        effects: Vec::new(),
        lease_until_ms: 0,
    }
}
