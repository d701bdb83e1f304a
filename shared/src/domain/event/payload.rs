//! The typed payloads: one struct per event type's fields, every field
//! optional and read leniently, and the readings where SmartLead's two
//! field generations spell one thing twice.

use crate::domain::field_types::{Id, Lenient, Links, Num};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Declares typed payloads: structs whose fields are all public and all
/// optional (`#[serde(default)]`, each [`Lenient`] or a lenient type of its
/// own), so an odd or missing field never fails the event. Fields are
/// written as a table, several to a line.
macro_rules! payload {
    ($($(#[$meta:meta])* $name:ident {
        $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)?
    })*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Default, Deserialize)]
            #[serde(default)]
            pub struct $name {
                $($(#[$fmeta])* pub $field: $ty,)*
            }
        )*
    };
}

/// A lead category: SmartLead sends the name as a string at the top level
/// and as `{name, sentiment_type}` inside `lead_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Category {
    pub name: Option<String>,
    pub sentiment: Option<String>,
    pub id: Option<Id>,
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match &v {
            Value::String(_) => Ok(Category {
                name: text(Some(&v)),
                ..Default::default()
            }),
            Value::Object(m) => Ok(Category {
                name: text(m.get("name")),
                sentiment: text(m.get("sentiment_type").or_else(|| m.get("sentiment"))),
                id: m.get("id").and_then(Id::from_value),
            }),
            _ => Err(serde::de::Error::custom(
                "category must be a string or an object",
            )),
        }
    }
}

payload! {
    /// Fields most SmartLead webhooks share (camelCase spellings accepted).
    Envelope {
        webhook_id: Lenient<Id>, webhook_name: Lenient<String>,
        #[serde(alias = "campaignId")] campaign_id: Lenient<Id>,
        #[serde(alias = "campaignName")] campaign_name: Lenient<String>,
        campaign_status: Lenient<String>,
        #[serde(alias = "clientId")] client_id: Lenient<Id>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        ui_master_inbox_link: Lenient<String>,
        // SmartLead's own ids of the lead, the lead in the campaign (the
        // master inbox's lead map) and the thread.
        sl_email_lead_id: Lenient<Id>, sl_email_lead_map_id: Lenient<Id>,
        stats_thread_id: Lenient<Id>,
        description: Lenient<String>,
        #[serde(alias = "eventTimestamp")] event_timestamp: Lenient<Value>,
        #[serde(alias = "createdAt")] created_at: Lenient<Value>,
        metadata: Lenient<Value>,
    }

    /// A message SmartLead quotes (`sent_message`, `reply_message`,
    /// `bounce_message`); the Link Clicked page writes `id` for `message_id`.
    MessageRef {
        message_id: Lenient<String>, id: Lenient<String>, html: Lenient<String>,
        text: Lenient<String>, time: Lenient<Value>,
    }

    /// Fields of the per-message events (sent, open, click, reply, bounce).
    EmailFields {
        #[serde(flatten)] envelope: Envelope,
        stats_id: Lenient<Id>, lead_id: Lenient<Id>, from_email: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>, sequence_number: Lenient<Num>,
        subject: Lenient<String>, message_id: Lenient<String>,
        sent_message: Lenient<MessageRef>,
    }

    EmailSent {
        #[serde(flatten)] email: EmailFields,
        time_sent: Lenient<Value>, custom_subject: Lenient<String>,
        custom_email_message: Lenient<String>,
    }

    EmailOpen {
        #[serde(flatten)] email: EmailFields,
        time_opened: Lenient<Value>,
    }

    EmailLinkClick {
        #[serde(flatten)] email: EmailFields,
        time_clicked: Lenient<Value>, link_clicked: Links, link_details: Links,
    }

    EmailReply {
        #[serde(flatten)] email: EmailFields,
        time_replied: Lenient<Value>, reply_body: Lenient<String>,
        preview_text: Lenient<String>, reply_message: Lenient<MessageRef>,
        sl_lead_email: Lenient<String>, cc_emails: Lenient<Value>,
        #[serde(rename = "leadCorrespondence")] lead_correspondence: Lenient<Correspondence>,
    }

    /// Who a reply was for and who sent it (api.smartlead.ai
    /// `reference/email-reply-webhooks`): a colleague, an assistant or a
    /// forwarded thread answers for the lead that was e-mailed.
    Correspondence {
        #[serde(rename = "targetLeadEmail")] target_lead_email: Lenient<String>,
        #[serde(rename = "replyReceivedFrom")] reply_received_from: Lenient<String>,
        #[serde(rename = "repliedCompanyDomain")] replied_company_domain: Lenient<String>,
    }

    EmailBounce {
        #[serde(flatten)] email: EmailFields,
        bounce_message: Lenient<Value>, time_sent: Lenient<Value>,
        bounce_reply_email_preview: Lenient<String>, bounce_reply_email: Lenient<String>,
        bounce_reply_message_id: Lenient<String>,
    }

    LeadUnsubscribed {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, lead_name: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>, from_email: Lenient<String>,
        subject: Lenient<String>, sent_message: Lenient<MessageRef>,
        sequence_number: Lenient<Num>, unsubscribed_client_id_map: Lenient<Value>,
    }

    LeadData {
        id: Lenient<Id>, email: Lenient<String>, first_name: Lenient<String>,
        last_name: Lenient<String>, phone_number: Lenient<String>,
        company_name: Lenient<String>, website: Lenient<String>, location: Lenient<String>,
        linkedin_profile: Lenient<String>, company_url: Lenient<String>,
        custom_fields: Lenient<Value>, category: Lenient<Category>,
    }

    HistoryEntry {
        #[serde(rename = "type")] kind: Lenient<String>,
        time: Lenient<Value>, subject: Lenient<String>, email_body: Lenient<String>,
        message_id: Lenient<String>, stats_id: Lenient<Id>,
    }

    /// The current generation's `lead_category` (help center, "Lead
    /// Category Updated"): the category left and the one entered.
    CategoryChange {
        old_id: Lenient<Id>, old_name: Lenient<String>,
        new_id: Lenient<Id>, new_name: Lenient<String>,
    }

    LeadCategoryUpdated {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, lead_name: Lenient<String>,
        lead_data: Lenient<LeadData>, category: Lenient<Category>,
        lead_category_id: Lenient<Id>, lead_category: Lenient<CategoryChange>,
        from: Lenient<String>, to: Lenient<String>, from_email: Lenient<String>,
        to_email: Lenient<String>, to_name: Lenient<String>,
        history: Lenient<Vec<HistoryEntry>>,
        // Both spellings may come in one body: two fields, not an alias.
        last_reply: Lenient<HistoryEntry>,
        #[serde(rename = "lastReply")] last_reply_deprecated: Lenient<HistoryEntry>,
    }

    CampaignStatusChanged {
        #[serde(flatten)] envelope: Envelope,
        current_status: Lenient<String>,
        #[serde(alias = "new_status", alias = "newStatus")] status: Lenient<String>,
        previous_status: Lenient<String>,
        #[serde(alias = "oldStatus")] old_status: Lenient<String>,
    }

    /// UNTRACKED_REPLIES as the help center's page sends it
    /// (`sender_detail` is `Name <addr>`), and the flat names read before.
    UntrackedReply {
        #[serde(flatten)] envelope: Envelope,
        reply_message: Lenient<MessageRef>, sender_detail: Lenient<String>,
        recipient_detail: Lenient<String>, cc: Lenient<String>, bcc: Lenient<String>,
        visible_text: Lenient<String>,
        from_email: Lenient<String>, to_email: Lenient<String>, subject: Lenient<String>,
        #[serde(alias = "body", alias = "email_body")] reply_body: Lenient<String>,
        preview_text: Lenient<String>, time_replied: Lenient<Value>,
        message_id: Lenient<String>,
    }

    ManualStepReached {
        #[serde(flatten)] envelope: Envelope,
        lead_id: Lenient<Id>, lead_email: Lenient<String>, to_email: Lenient<String>,
        lead_name: Lenient<String>, to_name: Lenient<String>,
        current_sequence_number: Lenient<Num>, sequence_number: Lenient<Num>,
        sent_message_ids: Lenient<Vec<String>>,
        #[serde(alias = "manual_step_type", alias = "stepType")] step_type: Lenient<String>,
        #[serde(alias = "task", alias = "instructions")] step_description: Lenient<String>,
    }

    /// EMAIL_ACCOUNT_DISCONNECTED and LINKEDIN_DISCONNECTED, sent by the per-user
    /// notification setting in camelCase (`accountId`, `appUrl`); snake_case accepted.
    AccountDisconnected {
        #[serde(alias = "accountId", alias = "email_account_id")] account_id: Lenient<Id>,
        #[serde(alias = "from_email", alias = "accountEmail")] email: Lenient<String>,
        #[serde(alias = "errorMessage", alias = "error_message")] error: Lenient<String>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        title: Lenient<String>, message: Lenient<String>,
        #[serde(alias = "eventTimestamp", alias = "timestamp", alias = "time")]
        event_timestamp: Lenient<Value>,
        #[serde(alias = "linkedinProfile", alias = "profile_url")]
        linkedin_profile: Lenient<String>,
    }

    CampaignBounceBreach {
        #[serde(alias = "campaignId")] campaign_id: Lenient<Id>,
        #[serde(alias = "campaignName")] campaign_name: Lenient<String>,
        #[serde(alias = "bounceRate")] bounce_rate: Lenient<f64>,
        threshold: Lenient<f64>,
        #[serde(alias = "accountId")] account_id: Lenient<Id>,
        email: Lenient<String>,
        #[serde(alias = "appUrl")] app_url: Lenient<String>,
        title: Lenient<String>, message: Lenient<String>,
        #[serde(alias = "eventTimestamp", alias = "timestamp", alias = "time")]
        event_timestamp: Lenient<Value>,
    }
}

impl LeadCategoryUpdated {
    /// The category the lead entered: `lead_category.new_name` / `new_id`
    /// (current generation) over `category` / `lead_category_id`
    /// (deprecated), then `lead_data.category`. The sentiment is that of the
    /// `category` object naming the same category (the current generation
    /// sends none).
    pub fn new_category(&self) -> Category {
        let change = self.lead_category.get();
        let objects = [
            self.category.get(),
            self.lead_data.get().and_then(|d| d.category.get()),
        ];
        let name = change
            .and_then(|c| c.new_name.text().map(str::to_owned))
            .or_else(|| objects.iter().flatten().find_map(|c| c.name.clone()));
        let id = change
            .and_then(|c| c.new_id.get())
            .or(self.lead_category_id.get())
            .or_else(|| objects.iter().flatten().find_map(|c| c.id.as_ref()))
            .cloned();
        let same = |c: &Category| match (&c.name, &name) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        let sentiment = objects
            .iter()
            .flatten()
            .filter(|c| same(c))
            .find_map(|c| c.sentiment.clone());
        Category {
            name,
            sentiment,
            id,
        }
    }

    /// The category the lead left: `lead_category.old_name` / `old_id`
    /// (the deprecated generation does not say).
    pub fn old_category(&self) -> Option<Category> {
        let c = self.lead_category.get()?;
        let old = Category {
            name: c.old_name.text().map(str::to_owned),
            sentiment: None,
            id: c.old_id.get().cloned(),
        };
        (old.name.is_some() || old.id.is_some()).then_some(old)
    }

    /// The conversation's last reply: `last_reply`, else the deprecated
    /// `lastReply`.
    pub fn latest_reply(&self) -> Option<&HistoryEntry> {
        self.last_reply.get().or(self.last_reply_deprecated.get())
    }

    /// What the idempotency key reads as the category, (id, name): the new
    /// generation's, else the deprecated top-level fields (never
    /// `lead_data`, so deprecated bodies keep their keys).
    pub fn key_category(&self) -> (Option<&str>, Option<&str>) {
        let change = self.lead_category.get();
        let id = change
            .and_then(|c| c.new_id.get())
            .or(self.lead_category_id.get())
            .map(Id::as_str);
        let name = change
            .and_then(|c| c.new_name.text())
            .or_else(|| self.category.get().and_then(|c| c.name.as_deref()));
        (id, name)
    }
}

// Where SmartLead's two field generations (help center, "Webhook Guide
// Updated") spell one thing twice, the current spelling wins.

impl MessageRef {
    /// `message_id`, else `id` (the Link Clicked page's spelling).
    pub fn msg_id(&self) -> Option<&str> {
        self.message_id.text().or(self.id.text())
    }
}

/// Text, else HTML made text; blank reads as absent.
fn text_or_html(text: Option<&str>, html: Option<&str>) -> Option<String> {
    let said = |t: &String| !t.trim().is_empty();
    text.map(str::to_owned)
        .filter(said)
        .or_else(|| html.map(crate::domain::plan::strip_html))
        .filter(said)
}

impl EmailLinkClick {
    /// The clicked links: `link_details`, else the deprecated `link_clicked`.
    pub fn links(&self) -> &[String] {
        match self.link_details.0.is_empty() {
            true => &self.link_clicked.0,
            false => &self.link_details.0,
        }
    }
}

impl EmailReply {
    /// The reply's text: `reply_message.text`, else the deprecated
    /// `preview_text`, else the text of `reply_message.html` or `reply_body`.
    pub fn text(&self) -> Option<String> {
        let m = self.reply_message.get();
        let text = m.and_then(|m| m.text.text()).or(self.preview_text.text());
        let html = m.and_then(|m| m.html.text()).or(self.reply_body.text());
        text_or_html(text, html)
    }
}

impl EmailBounce {
    /// Why it bounced: `bounce_message` (its text, else its HTML's, or a
    /// plain string), else the deprecated `bounce_reply_email_preview`,
    /// `bounce_reply_email`.
    pub fn reason(&self) -> Option<String> {
        let m = self.bounce_message.get();
        let field = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str);
        let said = |t: &&str| !t.trim().is_empty();
        let text = field("text")
            .filter(said)
            .or_else(|| m.and_then(Value::as_str).filter(said))
            .or(self.bounce_reply_email_preview.text().filter(said));
        text_or_html(text, field("html").or(self.bounce_reply_email.text()))
    }
}

impl CampaignStatusChanged {
    /// The status entered: `current_status`, else `status` (`new_status`),
    /// else the event's `campaign_status`.
    pub fn status(&self) -> Option<&str> {
        self.current_status
            .text()
            .or(self.status.text())
            .or(self.envelope.campaign_status.text())
    }

    /// The status left: `previous_status`, else `old_status`.
    pub fn previous(&self) -> Option<&str> {
        self.previous_status.text().or(self.old_status.text())
    }
}

impl UntrackedReply {
    /// The reply's text: `visible_text` (without the quoted thread), else
    /// `reply_message.text`, else `preview_text`, else its HTML made text.
    pub fn text(&self) -> Option<String> {
        let m = self.reply_message.get();
        let text = self
            .visible_text
            .text()
            .or_else(|| m.and_then(|m| m.text.text()))
            .or(self.preview_text.text());
        let html = m.and_then(|m| m.html.text()).or(self.reply_body.text());
        text_or_html(text, html)
    }
}
