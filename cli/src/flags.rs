//! Flag values read and checked: comma-separated lists, webhook ids, event
//! types, the webhook `register` and `rotate-secret` describe.

use crate::{Target, WebhookArgs};
use anyhow::{bail, Result};
use smartlead::adapters::http::smartlead::{Association, WebhookSpec};

impl WebhookArgs {
    /// The webhook at `url`, its event types checked.
    pub fn spec(self, url: String) -> Result<WebhookSpec> {
        Ok(WebhookSpec {
            event_types: event_types(&self.events)?,
            name: self.name,
            url,
            association: self.target.association(),
            category_ids: self.categories.as_deref().map(list).unwrap_or_default(),
        })
    }
}

impl Target {
    fn association(self) -> Association {
        match (self.campaign, self.client, self.user) {
            (Some(c), _, _) => Association::Campaign(c),
            (_, Some(c), _) => Association::Client(c),
            _ => Association::User,
        }
    }
}

pub fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Each of a comma-separated list of webhook ids, checked.
pub fn webhook_ids(ids: Option<&str>) -> Result<Vec<String>> {
    let ids = ids.map(list).unwrap_or_default();
    for i in &ids {
        smartlead::adapters::http::smartlead::path_id("a webhook id", i)?;
    }
    Ok(ids)
}

/// A comma-separated list of event types, each one SmartLead knows.
pub fn event_types(events: &str) -> Result<Vec<String>> {
    let event_types = list(events);
    for e in &event_types {
        if let smartlead::EventType::Unknown(_) = smartlead::EventType::from_wire(e) {
            bail!("unknown event type {e:?}");
        }
    }
    Ok(event_types)
}
