//! Alerts: which events alert people, and the alert they read (plain
//! text for SNS, Block Kit for Slack).

use crate::domain::event::{EventData, EventType, SmartleadEvent};
use serde_json::{json, Value};
use std::collections::BTreeSet;

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

    /// Is a category positive: a `positive` sentiment, or a name among
    /// `positive_categories` (either case)?
    pub fn is_positive(&self, name: Option<&str>, sentiment: Option<&str>) -> bool {
        sentiment.is_some_and(|s| s.eq_ignore_ascii_case("positive"))
            || name.is_some_and(|n| self.positive_categories.contains(&n.to_ascii_lowercase()))
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
                self.is_positive(cat.name.as_deref(), cat.sentiment.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::effects::test_event as ev;
    use crate::app::effects::{bounce_kind, BounceKind};

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
}
