//! An agency's deployment, at the library level: three clients in the
//! registry, the state in DynamoDB Local, the bus in moto, Slack on a
//! stand-in. Each event knows its client (payload, campaign, URL), its
//! alert reaches its client's channel, and an unsubscribe for one client
//! leaves the lead sendable for the others. (The ingest's per-client
//! secrets are `app::ingest`'s unit tests; the local stack's end-to-end
//! run is `xtask/tests/agencies.rs`.)

mod common;

use common::fresh_store;
use common::http::{self, body as text, requests, target};
use common::sqs::{batch, failures, sqs_fixture};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_to_json, DynamoStore};
use smartlead::adapters::http::slack::{ClientChannels, SlackNotifier};
use smartlead::app::clients::Clients;
use smartlead::app::effects::{AlertRules, Effects, HygieneMode, Notifier};
use smartlead::config::refresh::Refreshing;
use smartlead::domain::client::{Client, Registry, Scope};
use smartlead::domain::message::attr;
use test_support::sqs::SqsMessage;

/// Acme (11) and Globex (12) have their own Slack channels, Initech (13)
/// the shared one; campaigns 101, 102 and 103 are theirs.
fn registry() -> Registry {
    let client = |name: &str, slack: Option<&str>| Client {
        name: name.into(),
        slack_param: slack.map(str::to_owned),
        alert_events: None,
    };
    Registry {
        clients: [
            ("11".to_string(), client("Acme", Some("/agency/slack/11"))),
            ("12".to_string(), client("Globex", Some("/agency/slack/12"))),
            ("13".to_string(), client("Initech", None)),
        ]
        .into(),
        campaigns: [("101", "11"), ("102", "12"), ("103", "13")]
            .map(|(c, cl)| (c.to_string(), cl.to_string()))
            .into(),
    }
}

fn record(id: &str, body: &Value, url_client: Option<&str>) -> SqsMessage {
    let mut m = sqs_fixture("email_open").records.remove(0);
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_string());
    if let Some(c) = url_client {
        m.message_attributes
            .insert(attr::CLIENT_ID.into(), test_support::string_attribute(c));
    }
    m
}

fn reply(email: &str, campaign: u64, client: Option<u64>) -> Value {
    let mut v = json!({"event_type": "EMAIL_REPLY", "to_email": email, "campaign_id": campaign,
        "preview_text": "Interested, call me", "time_replied": "2025-04-01T09:00:00Z",
        "message_id": format!("<{email}>")});
    if let Some(c) = client {
        v["client_id"] = json!(c);
    }
    v
}

/// The agency's effects: a bus captured in moto, Slack per client.
async fn agency_effects(slack: &str) -> (Effects, smartlead::aws_sdk_sqs::Client, String) {
    let (publisher, sqs, capture) = common::bus::bus().await;
    let clients = Clients::fixed(registry());
    // Each client's parameter names its channel's URL (SSM in AWS).
    let base = slack.to_owned();
    let channels = ClientChannels::new(
        clients.clone(),
        Box::new(move |param: &str| {
            let id = param.rsplit('/').next().unwrap_or_default();
            Refreshing::fixed(format!("{base}/services/client-{id}"))
        }),
    );
    let shared = Refreshing::fixed(format!("{slack}/services/shared"));
    let effects = Effects {
        publisher: Some(Box::new(publisher)),
        notifiers: vec![Box::new(SlackNotifier::routed(
            Some(shared),
            Some(channels),
        ))],
        alerts: AlertRules::default(),
        clients,
    };
    (effects, sqs, capture)
}

async fn campaign_item(store: &DynamoStore, email: &str, campaign: &str) -> Value {
    let items = store.partition(&format!("LEAD#{email}")).await.unwrap();
    items
        .iter()
        .map(item_to_json)
        .find(|i| i["sk"] == format!("CAMPAIGN#{campaign}"))
        .expect("the lead's campaign item")
}

#[tokio::test]
async fn each_event_knows_its_client_and_its_alert_reaches_the_client_s_channel() {
    let slack = http::server().await;
    let (effects, sqs, capture) = agency_effects(&slack.uri()).await;
    let store = fresh_store().await;
    let c = common::consumer_with(store.clone(), effects);
    let records = vec![
        // Acme's, known by its campaign.
        record("a", &reply("ann@acme.example", 101, None), None),
        // Globex's, said by the payload.
        record("b", &reply("bob@globex.example", 102, Some(12)), None),
        // Initech's: no channel of its own, the shared one.
        record("c", &reply("cy@initech.example", 103, None), None),
        // A campaign the registry does not know yet: the URL's client.
        record("d", &reply("dee@acme.example", 999, None), Some("11")),
    ];
    assert!(failures(&c.handle_batch(batch(records)).await).is_empty());
    c.run_effects().await;

    // Alerts: each client's channel has its own leads, and no other's.
    let calls = requests(&slack).await;
    let to = |path: &str| -> String {
        calls
            .iter()
            .filter(|r| target(r) == path)
            .map(text)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (acme, globex, shared) = (
        to("/services/client-11"),
        to("/services/client-12"),
        to("/services/shared"),
    );
    assert!(acme.contains("ann@acme.example") && acme.contains("dee@acme.example"));
    assert!(!acme.contains("bob@") && !acme.contains("cy@"), "{acme}");
    assert!(globex.contains("bob@globex.example") && !globex.contains("ann@"));
    assert!(shared.contains("cy@initech.example"));
    assert!(
        !shared.contains("ann@") && !shared.contains("bob@"),
        "{shared}"
    );

    // The bus detail carries the client, for rules by client.
    let events = common::bus::drain_capture(&sqs, &capture).await;
    let client_of = |email: &str| {
        events
            .iter()
            .find(|e| e["detail"]["normalized"]["lead_email"] == email)
            .map(|e| e["detail"]["normalized"]["client_id"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(client_of("ann@acme.example"), "11");
    assert_eq!(client_of("bob@globex.example"), "12");
    assert_eq!(client_of("cy@initech.example"), "13");
    assert_eq!(client_of("dee@acme.example"), "11");

    // The state keeps it too.
    assert_eq!(
        campaign_item(&store, "ann@acme.example", "101").await["client_id"],
        "11"
    );
    assert_eq!(
        campaign_item(&store, "dee@acme.example", "999").await["client_id"],
        "11"
    );
}

#[tokio::test]
async fn an_unsubscribe_for_one_client_leaves_the_lead_sendable_for_the_others() {
    let slack = http::server().await;
    let (effects, _, _) = agency_effects(&slack.uri()).await;
    let store = fresh_store().await;
    let c = common::consumer_with(store.clone(), effects);
    let unsubscribe = |map: Value, campaign: u64| {
        json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "pat@lead.example",
               "campaign_id": campaign, "unsubscribed_client_id_map": map,
               "event_timestamp": "2025-04-02T10:00:00Z"})
    };
    let scope = || async {
        let items = store.partition("LEAD#pat@lead.example").await.unwrap();
        let s = items
            .iter()
            .map(item_to_json)
            .find(|i| i["sk"] == "SUPPRESSION")
            .expect("suppressed");
        let set = |k: &str| -> Vec<String> {
            s[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Scope::of(&set("flags"), &set("clients"))
    };
    let u = unsubscribe(json!({"11": true}), 101);
    assert!(failures(&c.handle_batch(batch(vec![record("u1", &u, None)])).await).is_empty());
    let s = scope().await;
    assert!(s.applies_to(Some("11")));
    assert!(!s.applies_to(Some("12")), "still sendable for Globex");
    assert!(!s.applies_to(Some("13")), "and for Initech");

    // Hygiene acts account-wide: it leaves a scoped unsubscribe alone.
    let hygiene = smartlead::adapters::http::hygiene::Hygiene {
        api: smartlead::adapters::http::smartlead::Api::new("http://127.0.0.1:9", "k"),
        mode: HygieneMode::Unsubscribe,
        soft_bounces: false,
    };
    // As the consumer of an agency's stack reads it.
    let ev = |v: &Value| {
        let mut e = smartlead::SmartleadEvent::from_value(v.clone()).unwrap();
        e.agency = true;
        e
    };
    assert!(!hygiene.applies(&ev(&u), &AlertRules::default()));

    // Globex's too: both, still not Initech.
    let u2 = unsubscribe(json!({"12": true}), 102);
    assert!(failures(&c.handle_batch(batch(vec![record("u2", &u2, None)])).await).is_empty());
    let s = scope().await;
    assert!(s.applies_to(Some("11")) && s.applies_to(Some("12")));
    assert!(!s.applies_to(Some("13")));

    // An unsubscribe SmartLead does not scope (an empty map): everywhere,
    // and hygiene runs for it.
    let all = unsubscribe(json!({}), 103);
    assert!(hygiene.applies(&ev(&all), &AlertRules::default()));
    assert!(failures(&c.handle_batch(batch(vec![record("u3", &all, None)])).await).is_empty());
    assert_eq!(scope().await, Scope::All);
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_for_every_client() {
    let slack = http::server().await;
    let (effects, _, _) = agency_effects(&slack.uri()).await;
    let store = fresh_store().await;
    let c = common::consumer_with(store.clone(), effects);
    let bounce = json!({"event_type": "EMAIL_BOUNCE", "to_email": "dead@lead.example",
        "campaign_id": 101, "bounce_message": "550 5.1.1 user unknown",
        "event_timestamp": "2025-04-02T10:00:00Z"});
    assert!(failures(
        &c.handle_batch(batch(vec![record("b1", &bounce, None)]))
            .await
    )
    .is_empty());
    let items = store.partition("LEAD#dead@lead.example").await.unwrap();
    let s = items
        .iter()
        .map(item_to_json)
        .find(|i| i["sk"] == "SUPPRESSION")
        .expect("suppressed");
    assert_eq!(s["flags"], json!(["bounce"]));
    assert!(s.get("clients").is_none());
}

/// Without clients (no `ClientParameterPath`), an unsubscribe whose map
/// names clients suppresses the lead everywhere, as before agency mode.
#[tokio::test]
async fn without_clients_every_unsubscribe_is_everywhere() {
    let store = fresh_store().await;
    let c = common::consumer_with(store.clone(), Effects::default());
    let u = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "solo@lead.example",
        "campaign_id": 101, "unsubscribed_client_id_map": {"11": true},
        "event_timestamp": "2025-04-02T10:00:00Z"});
    assert!(failures(
        &c.handle_batch(batch(vec![record("s1", &u, Some("11"))]))
            .await
    )
    .is_empty());
    let items = store.partition("LEAD#solo@lead.example").await.unwrap();
    let items: Vec<Value> = items.iter().map(item_to_json).collect();
    let s = items
        .iter()
        .find(|i| i["sk"] == "SUPPRESSION")
        .expect("suppressed");
    assert_eq!(s["flags"], json!(["unsubscribe"]));
    assert!(s.get("clients").is_none());
    let lead = items
        .iter()
        .find(|i| i["sk"] == "CAMPAIGN#101")
        .expect("item");
    assert!(lead.get("client_id").is_none(), "no client kept: {lead}");
}
