//! What doctor reads: SmartLead's campaigns and webhooks, each webhook
//! as SmartLead lists it.

use anyhow::Result;
use serde_json::Value;
use smartlead::adapters::http::smartlead::Api;
use std::collections::BTreeSet;

/// What a webhook is attached to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    User,
    Client(String),
    Campaign(String),
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: BTreeSet<String>,
    pub categories: Vec<String>,
    pub active: bool,
    pub level: Level,
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

fn keys_set_true(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter(|(_, on)| on.as_bool().unwrap_or(true))
            .map(|(k, _)| k.clone())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned).or_else(|| id_of(Some(x))))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// A webhook as SmartLead lists it (field names as in its create call; a
/// list under a campaign without an association is that campaign's).
pub fn parse_hook(v: &Value, listed_under: Option<&str>) -> Option<Hook> {
    let id = id_of(v.get("id"))?;
    let campaign = id_of(v.get("email_campaign_id")).or_else(|| id_of(v.get("campaign_id")));
    let client = id_of(v.get("client_id"));
    let level = match v.get("association_type") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("user") => Level::User,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Level::User,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("client") => {
            Level::Client(client.clone().unwrap_or_default())
        }
        Some(Value::Number(n)) if n.as_u64() == Some(2) => {
            Level::Client(client.clone().unwrap_or_default())
        }
        _ => match (campaign, listed_under) {
            (Some(c), _) => Level::Campaign(c),
            (None, Some(c)) => Level::Campaign(c.to_owned()),
            (None, None) => match client {
                Some(c) => Level::Client(c),
                None => Level::User,
            },
        },
    };
    let mut events: BTreeSet<String> = keys_set_true(v.get("event_type_map")).into_iter().collect();
    events.extend(keys_set_true(v.get("event_types")));
    let active = match (v.get("is_active"), v.get("active"), v.get("status")) {
        (Some(Value::Bool(b)), _, _) | (_, Some(Value::Bool(b)), _) => *b,
        (_, _, Some(Value::String(s))) => !s.eq_ignore_ascii_case("inactive"),
        _ => true,
    };
    Some(Hook {
        id,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        url: v
            .get("webhook_url")
            .or_else(|| v.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        events,
        categories: keys_set_true(v.get("category_id_map")),
        active,
        level,
    })
}

/// A campaign: its id and its client's.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub client: Option<String>,
}

/// Reads every campaign and webhook: campaigns, each campaign's webhooks,
/// and the webhooks named by `extra` (user- or client-level ones).
pub async fn read(
    api: &Api,
    extra: &[String],
    deadline: std::time::Instant,
    progress: &indicatif::ProgressBar,
) -> Result<(Vec<Campaign>, Vec<Hook>)> {
    let mut campaigns = Vec::new();
    let mut hooks = Vec::new();
    let listed = api.campaigns(deadline).await?;
    for (i, c) in listed.iter().enumerate() {
        let Some(id) = id_of(c.get("id")) else {
            continue;
        };
        progress.set_message(format!("campaign {}/{}: {id}", i + 1, listed.len()));
        for h in api.campaign_webhooks(&id, deadline).await? {
            hooks.extend(parse_hook(&h, Some(&id)));
        }
        campaigns.push(Campaign {
            id,
            client: id_of(c.get("client_id")),
        });
    }
    for id in extra {
        let v = api.get_webhook(id, deadline).await?;
        hooks.extend(parse_hook(&v, None));
    }
    Ok((campaigns, hooks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhooks_parse_from_either_shape_smartlead_uses() {
        let h = parse_hook(
            &json!({"id": "7", "association_type": 2, "client_id": 9, "event_types": ["EMAIL_OPEN"], "status": "INACTIVE"}),
            Some("1"),
        )
        .unwrap();
        assert_eq!(h.level, Level::Client("9".into()));
        assert!(h.events.contains("EMAIL_OPEN"));
        assert!(!h.active);
        let h = parse_hook(
            &json!({"id": 8, "event_type_map": {"EMAIL_OPEN": true, "EMAIL_SENT": false}}),
            Some("3"),
        )
        .unwrap();
        assert_eq!(h.level, Level::Campaign("3".into()));
        assert_eq!(h.events.len(), 1);
        assert!(h.active);
        assert!(parse_hook(&json!({"id": "../x"}), None).is_none());
    }
}
