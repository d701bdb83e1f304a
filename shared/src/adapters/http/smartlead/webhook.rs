//! A webhook as SmartLead's create and update calls take it.

use super::{path_id, ApiError};
use serde_json::{json, Value};

/// What a webhook is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Association {
    Campaign(String),
    Client(String),
    User,
}

#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub name: String,
    pub url: String,
    pub association: Association,
    pub event_types: Vec<String>,
    pub category_ids: Vec<String>,
}

impl WebhookSpec {
    /// The body of SmartLead's create and update calls.
    pub fn body(&self) -> Value {
        let events: serde_json::Map<String, Value> = self
            .event_types
            .iter()
            .map(|e| (e.clone(), Value::Bool(true)))
            .collect();
        let mut b = json!({
            "name": self.name,
            "webhook_url": self.url,
            "event_type_map": events,
        });
        match &self.association {
            Association::Campaign(id) => {
                b["association_type"] = json!("campaign");
                b["email_campaign_id"] = json!(numeric(id));
            }
            Association::Client(id) => {
                b["association_type"] = json!("client");
                b["client_id"] = json!(numeric(id));
            }
            Association::User => b["association_type"] = json!("user"),
        }
        if !self.category_ids.is_empty() {
            let cats: serde_json::Map<String, Value> = self
                .category_ids
                .iter()
                .map(|c| (c.clone(), Value::Bool(true)))
                .collect();
            b["category_id_map"] = Value::Object(cats);
        }
        b
    }
}

impl WebhookSpec {
    /// The ids it names must be numbers.
    pub(super) fn check(&self) -> Result<(), ApiError> {
        match &self.association {
            Association::Campaign(id) => path_id("the campaign id", id).map(|_| ()),
            Association::Client(id) => path_id("the client id", id).map(|_| ()),
            Association::User => Ok(()),
        }?;
        for c in &self.category_ids {
            path_id("a category id", c)?;
        }
        Ok(())
    }
}

/// Ids go out as numbers when they are numbers, as SmartLead's examples do.
pub(super) fn numeric(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_bodies_follow_smartleads_examples() {
        let spec = WebhookSpec {
            name: "aws".into(),
            url: "https://x.example/webhooks/smartlead/s".into(),
            association: Association::Campaign("123".into()),
            event_types: vec!["EMAIL_REPLY".into(), "LEAD_CATEGORY_UPDATED".into()],
            category_ids: vec!["5".into()],
        };
        let b = spec.body();
        assert_eq!(b["association_type"], "campaign");
        assert_eq!(b["email_campaign_id"], 123);
        assert_eq!(b["event_type_map"]["EMAIL_REPLY"], true);
        assert_eq!(b["category_id_map"]["5"], true);
        let user = WebhookSpec {
            association: Association::User,
            category_ids: vec![],
            ..spec
        };
        assert!(user.body().get("category_id_map").is_none());
        assert_eq!(user.body()["association_type"], "user");
    }
}
