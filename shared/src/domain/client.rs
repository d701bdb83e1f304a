//! Agencies: the clients of one SmartLead account, kept apart.
//!
//! A deployment without clients has an empty [`Registry`] and behaves as
//! one without this module. With clients (`smartlead clients sync`), each
//! event is told its client ([`Registry::resolve`]), the lead's items keep
//! it, alerts follow the client's settings, and an unsubscribe suppresses
//! the lead only for the clients SmartLead names ([`unsubscribe_scope`]).

use crate::domain::event::{EventData, SmartleadEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The clients and which campaign belongs to which: one item in the state
/// table (`CLIENTS` / `REGISTRY`), written by `smartlead clients`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub clients: BTreeMap<String, Client>,
    /// Campaign id → client id (empty for a campaign of no client: the
    /// agency's own, known, so not counted as unknown).
    #[serde(default)]
    pub campaigns: BTreeMap<String, String>,
}

/// One client and its own settings (each optional: the shared one applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    #[serde(default)]
    pub name: String,
    /// The SSM parameter holding the client's Slack incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_param: Option<String>,
    /// The events that alert for this client (`ALERT_EVENTS`'s form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_events: Option<String>,
}

/// Where an event's client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    Payload,
    Campaign,
    Url,
}

impl ClientSource {
    /// As metrics and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            ClientSource::Payload => "payload",
            ClientSource::Campaign => "campaign",
            ClientSource::Url => "url",
        }
    }
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// A campaign the registry knows to have no client.
    pub fn unassigned(&self, campaign: &str) -> bool {
        self.campaigns.get(campaign).is_some_and(|c| c.is_empty())
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    /// An event's client: the payload's `client_id`, else its campaign's
    /// client, else the client the webhook's URL names.
    pub fn resolve(
        &self,
        payload: Option<&str>,
        campaign: Option<&str>,
        url: Option<&str>,
    ) -> Option<(String, ClientSource)> {
        payload
            .map(|c| (c.to_owned(), ClientSource::Payload))
            .or_else(|| {
                campaign
                    .and_then(|c| self.campaigns.get(c))
                    .filter(|c| !c.is_empty())
                    .map(|c| (c.clone(), ClientSource::Campaign))
            })
            .or_else(|| url.map(|c| (c.to_owned(), ClientSource::Url)))
    }
}

/// A client id as URLs, SSM names and keys carry it: 1 to 64 ASCII letters,
/// digits, `-` or `_` (SmartLead's are numbers).
pub fn valid_client_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The clients an unsubscribe applies to, from `unsubscribed_client_id_map`,
/// in an agency's deployment ([`SmartleadEvent::agency`]): `None` means
/// every client (the map absent, empty or unreadable, as in an account
/// without clients, or a deployment without clients). SmartLead documents the field's name, not
/// its form: an object is read as client id → flag (a key counts unless
/// its value is `false`, `0`, `null` or empty, or the text `false` or
/// `0`), an array as client ids (an entry that is not one: every client).
/// At most [`MAX_SCOPED_CLIENTS`] are kept; more reads as every client.
pub fn unsubscribe_scope(ev: &SmartleadEvent) -> Option<BTreeSet<String>> {
    let EventData::LeadUnsubscribed(u) = &ev.data else {
        return None;
    };
    // A deployment without clients suppresses everywhere, map or not.
    if !ev.agency {
        return None;
    }
    let ids: BTreeSet<String> = match u.unsubscribed_client_id_map.get()? {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| truthy(v))
            .map(|(k, _)| k.trim().to_owned())
            .collect(),
        // An entry that is not an id scopes nothing: every client.
        Value::Array(a) => a
            .iter()
            .map(|v| crate::domain::field_types::Id::from_value(v).map(|i| i.as_str().to_owned()))
            .collect::<Option<BTreeSet<String>>>()?,
        _ => return None,
    };
    (!ids.is_empty() && ids.len() <= MAX_SCOPED_CLIENTS && ids.iter().all(|i| valid_client_id(i)))
        .then_some(ids)
}

/// The most clients one suppression names; a wider unsubscribe is everywhere.
pub const MAX_SCOPED_CLIENTS: usize = 100;

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) => true,
    }
}

/// Whom a suppression applies to, read from a `SUPPRESSION` item: every
/// client once a bounce or an unscoped unsubscribe wrote its flag, else
/// the clients scoped unsubscribes named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    All,
    Clients(BTreeSet<String>),
}

impl Scope {
    /// From the item's `flags` and `clients` sets.
    pub fn of(flags: &[String], clients: &[String]) -> Scope {
        if clients.is_empty() || flags.iter().any(|f| f == "bounce" || f == "unsubscribe") {
            Scope::All
        } else {
            Scope::Clients(clients.iter().cloned().collect())
        }
    }

    /// Whether the lead is suppressed for `client` (`None`: any client).
    pub fn applies_to(&self, client: Option<&str>) -> bool {
        match (self, client) {
            (Scope::All, _) => true,
            (Scope::Clients(c), Some(id)) => c.contains(id),
            (Scope::Clients(_), None) => false,
        }
    }

    /// `all clients`, or `clients 11, 12`.
    pub fn describe(&self) -> String {
        match self {
            Scope::All => "all clients".into(),
            Scope::Clients(c) => format!(
                "client{} {}",
                if c.len() == 1 { "" } else { "s" },
                c.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unsubscribe(map: Value) -> SmartleadEvent {
        let mut ev = SmartleadEvent::from_value(json!({
            "event_type": "LEAD_UNSUBSCRIBED",
            "lead_email": "a@example.com",
            "unsubscribed_client_id_map": map,
        }))
        .expect("event");
        ev.agency = true;
        ev
    }

    fn set(ids: &[&str]) -> Option<BTreeSet<String>> {
        Some(ids.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_map_names_the_clients_and_an_empty_one_means_all() {
        assert_eq!(unsubscribe_scope(&unsubscribe(json!({}))), None);
        assert_eq!(unsubscribe_scope(&unsubscribe(json!(null))), None);
        assert_eq!(
            unsubscribe_scope(&unsubscribe(
                json!({"11": true, "12": 1, "13": false, "14": 0})
            )),
            set(&["11", "12"])
        );
        assert_eq!(
            unsubscribe_scope(&unsubscribe(json!([11, "12"]))),
            set(&["11", "12"])
        );
        assert_eq!(
            unsubscribe_scope(&unsubscribe(
                json!({"11": "true", "12": "false", "13": "0", "14": [], "15": {}})
            )),
            set(&["11"])
        );
        assert_eq!(
            unsubscribe_scope(&unsubscribe(json!([11, {"id": 12}]))),
            None
        );
        // A key that could not be a client id scopes nothing: everywhere.
        assert_eq!(unsubscribe_scope(&unsubscribe(json!({"a b": true}))), None);
        let wide: serde_json::Map<String, Value> = (0..=MAX_SCOPED_CLIENTS)
            .map(|i| (i.to_string(), json!(true)))
            .collect();
        assert_eq!(unsubscribe_scope(&unsubscribe(Value::Object(wide))), None);
        let bounce = SmartleadEvent::from_value(json!({"event_type": "EMAIL_BOUNCE"})).unwrap();
        assert_eq!(unsubscribe_scope(&bounce), None);
        // A deployment without clients: everywhere, whatever the map says.
        let mut plain = unsubscribe(json!({"11": true}));
        plain.agency = false;
        assert_eq!(unsubscribe_scope(&plain), None);
    }

    #[test]
    fn a_scope_is_everywhere_once_a_bounce_or_unscoped_unsubscribe_flagged_it() {
        let s = |f: &[&str], c: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            Scope::of(&v(f), &v(c))
        };
        let a = s(&[], &["11"]);
        assert!(a.applies_to(Some("11")));
        assert!(!a.applies_to(Some("12")));
        assert!(!a.applies_to(None));
        assert_eq!(a.describe(), "client 11");
        assert_eq!(s(&["bounce"], &["11"]), Scope::All);
        assert_eq!(s(&["unsubscribe"], &["11"]), Scope::All);
        assert_eq!(s(&[], &[]), Scope::All);
        assert!(Scope::All.applies_to(Some("12")));
    }

    #[test]
    fn the_payload_wins_then_the_campaign_then_the_url() {
        let r = Registry {
            campaigns: [("7", "11"), ("9", "")]
                .map(|(c, cl)| (c.to_string(), cl.to_string()))
                .into(),
            ..Registry::default()
        };
        // A campaign of no client: known, and it gives none.
        assert!(r.unassigned("9") && !r.unassigned("7") && !r.unassigned("8"));
        assert_eq!(r.resolve(None, Some("9"), None), None);
        assert_eq!(
            r.resolve(Some("12"), Some("7"), Some("13")),
            Some(("12".into(), ClientSource::Payload))
        );
        assert_eq!(
            r.resolve(None, Some("7"), Some("13")),
            Some(("11".into(), ClientSource::Campaign))
        );
        assert_eq!(
            r.resolve(None, Some("8"), Some("13")),
            Some(("13".into(), ClientSource::Url))
        );
        assert_eq!(r.resolve(None, None, None), None);
        assert!(valid_client_id("12_a-b"));
        assert!(
            !valid_client_id("") && !valid_client_id("1/2") && !valid_client_id(&"9".repeat(65))
        );
    }
}
