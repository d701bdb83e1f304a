//! The event model over every sample payload in events/payloads.

mod common;

use common::{fixtures, payload};
use proptest::prelude::*;
use serde_json::{json, Value};
use smartlead::domain::event::{probe, EventData, EventError, EventType, SmartleadEvent};
use std::collections::BTreeMap;

/// What each sample must normalize to: type, lead e-mail, campaign, event time, key basis.
/// (fixture, type, lead e-mail, campaign, event time, key basis)
type Expectation = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

const EXPECTED: &[Expectation] = &[
    (
        "campaign_bounce_breach",
        "CAMPAIGN_BOUNCE_BREACH",
        None,
        Some("123"),
        Some("2025-01-20T16:55:00.000Z"),
        "fields",
    ),
    (
        "campaign_status_changed",
        "CAMPAIGN_STATUS_CHANGED",
        None,
        Some("123"),
        Some("2025-01-20T17:00:00.000Z"),
        "fields",
    ),
    (
        "email_account_disconnected",
        "EMAIL_ACCOUNT_DISCONNECTED",
        None,
        None,
        None,
        "body",
    ),
    (
        "email_bounce",
        "EMAIL_BOUNCE",
        Some("gone@defunct-startup.example"),
        Some("123"),
        Some("2025-01-15T09:01:07.000Z"),
        "stats",
    ),
    (
        "email_bounced_alias",
        "EMAIL_BOUNCE",
        Some("nobody@nowhere.example"),
        Some("123"),
        Some("2025-01-15T09:02:00.000Z"),
        "stats",
    ),
    (
        "email_link_click",
        "EMAIL_LINK_CLICK",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T10:45:00.000Z"),
        "fields",
    ),
    (
        "email_open",
        "EMAIL_OPEN",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T10:30:00.000Z"),
        "fields",
    ),
    (
        "email_open_minimal",
        "EMAIL_OPEN",
        Some("min.lead@example.org"),
        Some("123"),
        Some("2025-01-16T08:00:00.000Z"),
        "fields",
    ),
    (
        "email_opened_alias",
        "EMAIL_OPEN",
        Some("sam.lee@globex.example"),
        Some("123"),
        Some("2025-01-15T12:05:00.000Z"),
        "fields",
    ),
    (
        "email_replied_alias",
        "EMAIL_REPLY",
        Some("sam.lee@globex.example"),
        Some("123"),
        Some("2025-01-16T15:20:00.000Z"),
        "fields",
    ),
    // `event_timestamp` over the deprecated `time_replied`.
    (
        "email_reply",
        "EMAIL_REPLY",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T11:00:02.000Z"),
        "msg",
    ),
    // A colleague's reply: filed under the lead that was e-mailed.
    (
        "email_reply_colleague",
        "EMAIL_REPLY",
        Some("jane@acme-example.com"),
        Some("9181"),
        Some("2025-01-21T09:35:01.000Z"),
        "msg",
    ),
    (
        "email_sent",
        "EMAIL_SENT",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T09:00:00.000Z"),
        "msg",
    ),
    (
        "first_email_sent",
        "FIRST_EMAIL_SENT",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T09:00:00.000Z"),
        "msg",
    ),
    (
        "lead_category_updated",
        "LEAD_CATEGORY_UPDATED",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-15T11:05:00.000Z"),
        "fields",
    ),
    (
        "lead_unsubscribed",
        "LEAD_UNSUBSCRIBED",
        Some("sam.lee@globex.example"),
        Some("123"),
        None,
        "fields",
    ),
    (
        "linkedin_disconnected",
        "LINKEDIN_DISCONNECTED",
        None,
        None,
        Some("2025-01-19T06:00:00.000Z"),
        "fields",
    ),
    (
        "manual_step_reached",
        "MANUAL_STEP_REACHED",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-18T09:00:00.000Z"),
        "fields",
    ),
    (
        "unknown_event",
        "LEAD_MEETING_BOOKED",
        Some("jane.doe@acme-corp.com"),
        Some("123"),
        Some("2025-01-16T10:00:00.000Z"),
        "body",
    ),
    (
        "untracked_replies",
        "UNTRACKED_REPLIES",
        Some("someone.else@acme-corp.com"),
        None,
        Some("2025-01-17T08:30:00.000Z"),
        "msg",
    ),
];

/// The nested-lead and envelope shapes (see `shared/src/domain/shape.rs`): each
/// has a flat twin in `events/twins/` with the same stem.
const SHAPES: &[Expectation] = &[
    (
        "envelope_campaign_bounce_threshold",
        "CAMPAIGN_BOUNCE_BREACH",
        None,
        Some("456"),
        Some("2025-01-16T06:00:00.000Z"),
        "fields",
    ),
    (
        "envelope_email_account_disconnected",
        "EMAIL_ACCOUNT_DISCONNECTED",
        None,
        None,
        Some("2025-01-16T08:15:00.000Z"),
        "fields",
    ),
    (
        "envelope_email_replied",
        "EMAIL_REPLY",
        Some("grace.hopper@cobol.example"),
        Some("456"),
        Some("2025-01-16T07:30:00.000Z"),
        "fields",
    ),
    // An unknown type names no lead; like any unknown type, its `email` is read as one.
    (
        "envelope_unknown_type",
        "email.account.warmup_paused",
        Some("outbound@pilot-sender.example"),
        None,
        Some("2025-01-16T08:00:00.000Z"),
        "event",
    ),
    (
        "nested_event_email_bounced",
        "EMAIL_BOUNCE",
        Some("charles.babbage@difference.example"),
        Some("456"),
        Some("2025-01-15T09:01:00.000Z"),
        "msg",
    ),
    (
        "nested_event_email_clicked",
        "EMAIL_LINK_CLICK",
        Some("ada.lovelace@analytical.example"),
        Some("456"),
        Some("2025-01-15T10:45:30.000Z"),
        "fields",
    ),
    (
        "nested_event_email_opened",
        "EMAIL_OPEN",
        Some("ada.lovelace@analytical.example"),
        Some("456"),
        Some("2025-01-15T10:30:00.000Z"),
        "fields",
    ),
    (
        "nested_event_email_replied",
        "EMAIL_REPLY",
        Some("ada.lovelace@analytical.example"),
        Some("456"),
        Some("2025-01-15T11:02:00.000Z"),
        "fields",
    ),
    (
        "nested_event_email_replied_no_lead_email",
        "EMAIL_REPLY",
        None,
        Some("456"),
        Some("2025-01-15T13:00:00.000Z"),
        "body",
    ),
    (
        "nested_event_email_sent",
        "EMAIL_SENT",
        Some("ada.lovelace@analytical.example"),
        Some("456"),
        Some("2025-01-15T09:00:00.000Z"),
        "msg",
    ),
    (
        "nested_event_email_unsubscribed",
        "LEAD_UNSUBSCRIBED",
        Some("ada.lovelace@analytical.example"),
        Some("456"),
        Some("2025-01-15T12:00:00.000Z"),
        "fields",
    ),
    (
        "nested_event_type_email_bounced",
        "EMAIL_BOUNCE",
        Some("dorothy.vaughan@langley.example"),
        Some("456"),
        Some("2025-01-15T09:02:00.000Z"),
        "msg",
    ),
    (
        "nested_event_type_email_clicked",
        "EMAIL_LINK_CLICK",
        Some("alan.turing@bletchley.example"),
        Some("456"),
        Some("2025-01-15T10:15:00.000Z"),
        "fields",
    ),
    (
        "nested_event_type_email_opened",
        "EMAIL_OPEN",
        Some("alan.turing@bletchley.example"),
        Some("456"),
        Some("2025-01-15T10:00:00.000Z"),
        "fields",
    ),
    (
        "nested_event_type_email_replied",
        "EMAIL_REPLY",
        Some("alan.turing@bletchley.example"),
        Some("456"),
        Some("2025-01-15T14:31:00.000Z"),
        "fields",
    ),
    (
        "nested_event_type_email_sent",
        "EMAIL_SENT",
        Some("alan.turing@bletchley.example"),
        Some("456"),
        Some("2025-01-15T09:00:00.000Z"),
        "msg",
    ),
    (
        "nested_event_type_lead_category_updated",
        "LEAD_CATEGORY_UPDATED",
        Some("alan.turing@bletchley.example"),
        Some("456"),
        Some("2025-01-15T14:40:00.000Z"),
        "fields",
    ),
    (
        "nested_event_type_lead_unsubscribed",
        "LEAD_UNSUBSCRIBED",
        Some("dorothy.vaughan@langley.example"),
        Some("456"),
        Some("2025-01-15T16:00:00.000Z"),
        "fields",
    ),
];

#[test]
fn every_payload_is_covered_by_the_expectations() {
    let names: Vec<String> = fixtures("payloads").into_keys().collect();
    let mut expected: Vec<String> = EXPECTED
        .iter()
        .chain(SHAPES)
        .map(|e| e.0.to_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected, "add the new sample to EXPECTED or SHAPES");
    let twins: Vec<String> = fixtures("twins").into_keys().collect();
    let shapes: Vec<String> = SHAPES.iter().map(|e| e.0.to_owned()).collect();
    assert_eq!(twins, shapes, "every shape sample has its flat twin");
}

#[test]
fn every_payload_parses_normalizes_and_keys_as_documented() {
    let mut keys = BTreeMap::new();
    for (name, ty, lead, campaign, time, basis) in EXPECTED.iter().chain(SHAPES) {
        let text = payload(name);
        let ev =
            SmartleadEvent::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ev.event_type.as_str(), *ty, "{name}");
        assert!(
            ev.typed_view_warning.is_none(),
            "{name}: {:?}",
            ev.typed_view_warning
        );
        let n = ev.normalized();
        assert_eq!(n.event_type, *ty, "{name}");
        assert_eq!(
            ev.shape == smartlead::domain::shape::Shape::Flat,
            EXPECTED.iter().any(|e| e.0 == *name),
            "{name}: shape {:?}",
            ev.shape
        );
        assert_eq!(n.lead_email.as_deref(), *lead, "{name} lead");
        assert_eq!(
            n.campaign_id.as_ref().map(|c| c.as_str()),
            *campaign,
            "{name} campaign"
        );
        assert_eq!(
            n.event_time.map(|t| t.to_string()).as_deref(),
            *time,
            "{name} time"
        );
        let key = ev.dedup_key();
        assert_eq!(key.basis(), *basis, "{name} key {key}");
        assert!(key.as_str().starts_with(&format!("{ty}:")), "{key}");
        assert!(
            !key.as_str().contains('@'),
            "keys carry no e-mail address: {key}"
        );
        // The probe the ingest function uses agrees with the full parse.
        assert_eq!(
            probe(text.as_bytes()).expect("probe").event_type,
            ev.event_type,
            "{name}"
        );
        if let Some(other) = keys.insert(key.clone(), name) {
            panic!("{name} and {other} share the key {key}");
        }
    }
}

#[test]
fn every_payload_round_trips_without_losing_a_field() {
    for (name, text) in fixtures("payloads") {
        let mut original: Value = serde_json::from_str(&text).expect("fixture is JSON");
        // Every field but the webhook secret and the URL that holds it,
        // which no copy may carry.
        original
            .as_object_mut()
            .expect("object")
            .retain(|k, _| !smartlead::domain::event::is_secret_field(k));
        let ev = SmartleadEvent::from_slice(text.as_bytes()).expect("parses");
        assert_eq!(
            serde_json::to_value(&ev).expect("serializes"),
            original,
            "{name}"
        );
    }
}

#[test]
fn typed_views_read_the_type_specific_fields() {
    let ev = SmartleadEvent::from_slice(payload("email_link_click").as_bytes()).unwrap();
    let EventData::EmailLinkClick(c) = &ev.data else {
        panic!("{:?}", ev.data)
    };
    assert_eq!(
        c.link_clicked.0,
        vec![
            "https://outreach-co.io/demo",
            "https://outreach-co.io/pricing"
        ]
    );

    let ev = SmartleadEvent::from_slice(payload("lead_category_updated").as_bytes()).unwrap();
    let EventData::LeadCategoryUpdated(c) = &ev.data else {
        panic!()
    };
    assert_eq!(
        c.category.get().and_then(|c| c.name.as_deref()),
        Some("Interested")
    );
    let inner = c
        .lead_data
        .get()
        .and_then(|d| d.category.get())
        .expect("lead_data.category");
    assert_eq!(inner.sentiment.as_deref(), Some("positive"));
    assert_eq!(c.lead_category_id.get().map(|i| i.as_str()), Some("5"));
    assert_eq!(c.history.get().map(Vec::len), Some(2));
    assert!(c.latest_reply().is_some(), "`lastReply`");

    let ev = SmartleadEvent::from_slice(payload("email_account_disconnected").as_bytes()).unwrap();
    let EventData::EmailAccountDisconnected(a) = &ev.data else {
        panic!()
    };
    assert_eq!(a.account_id.get().map(|i| i.as_str()), Some("31337"));
    assert_eq!(
        a.error.text(),
        Some("IMAP authentication failed: invalid credentials")
    );

    let ev = SmartleadEvent::from_slice(payload("email_opened_alias").as_bytes()).unwrap();
    assert_eq!(ev.normalized().sequence_number, Some(2), "\"2\" reads as 2");

    let ev = SmartleadEvent::from_slice(payload("unknown_event").as_bytes()).unwrap();
    assert!(matches!(ev.data, EventData::Unknown));
    assert_eq!(
        ev.event_type,
        EventType::Unknown("LEAD_MEETING_BOOKED".into())
    );
    assert_eq!(ev.raw["calendar"], "https://cal.example/jane");
}

/// Spellings SmartLead (or a hand-made request) uses, and the type each
/// names: aliases, case and separators, and the dotted names.
const SPELLINGS: &[(&str, EventType)] = &[
    ("EMAIL_OPENED", EventType::EmailOpen),
    ("EMAIL_REPLIED", EventType::EmailReply),
    ("EMAIL_BOUNCED", EventType::EmailBounce),
    ("email_open", EventType::EmailOpen),
    (" LEAD_CATEGORY_UPDATED ", EventType::LeadCategoryUpdated),
    ("campaign-bounce-breach", EventType::CampaignBounceBreach),
    (
        "email.account.disconnected",
        EventType::EmailAccountDisconnected,
    ),
    ("linkedin.disconnected", EventType::LinkedinDisconnected),
    ("email.sent", EventType::EmailSent),
    ("email.opened", EventType::EmailOpen),
    ("email.clicked", EventType::EmailLinkClick),
    ("email.replied", EventType::EmailReply),
    ("email.bounced", EventType::EmailBounce),
    ("lead.unsubscribed", EventType::LeadUnsubscribed),
    ("lead.category.updated", EventType::LeadCategoryUpdated),
    ("campaign.status.changed", EventType::CampaignStatusChanged),
    ("EMAIL_UNSUBSCRIBED", EventType::LeadUnsubscribed),
    ("EMAIL_CLICKED", EventType::EmailLinkClick),
];

/// Each spelling of `SPELLINGS` that `pick` takes maps to its type.
fn assert_spellings(pick: impl Fn(&str) -> bool) {
    for (wire, want) in SPELLINGS.iter().filter(|(w, _)| pick(w)) {
        assert_eq!(&EventType::from_wire(wire), want, "{wire}");
    }
}

#[test]
fn aliases_and_spellings_map_to_canonical_types() {
    assert_spellings(|_| true);
    for k in EventType::KNOWN {
        assert_eq!(&EventType::from_wire(k.as_str()), k);
    }
}

#[test]
fn only_non_objects_and_missing_types_are_errors_and_they_say_why() {
    let cases: &[(&[u8], EventError)] = &[
        (b"[1,2]", EventError::NotAnObject("an array")),
        (b"\"EMAIL_OPEN\"", EventError::NotAnObject("a string")),
        (b"null", EventError::NotAnObject("null")),
        (b"{}", EventError::MissingEventType),
        (b"{\"event_type\": \"  \"}", EventError::MissingEventType),
        (
            b"{\"event_type\": null, \"to_email\": \"a@b.c\"}",
            EventError::MissingEventType,
        ),
        (
            b"{\"event_type\": 7}",
            EventError::EventTypeNotString("event_type"),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            &SmartleadEvent::from_slice(body).unwrap_err(),
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            &probe(body).unwrap_err(),
            want,
            "probe {}",
            String::from_utf8_lossy(body)
        );
    }
    for body in [
        &b"{\"event_type\": \"EMAIL_OPEN\""[..],
        b"",
        b"not json",
        b"{\"a\":1}{",
    ] {
        let e = SmartleadEvent::from_slice(body).unwrap_err();
        assert!(matches!(e, EventError::NotJson(_)), "{e:?}");
        assert!(e.to_string().starts_with("body is not valid JSON"), "{e}");
        assert!(matches!(probe(body).unwrap_err(), EventError::NotJson(_)));
    }
    assert!(EventError::MissingEventType
        .to_string()
        .contains("event_type"));
}

#[test]
fn wrong_types_and_nulls_never_fail_an_event() {
    let ev = SmartleadEvent::from_value(json!({
        "event_type": "EMAIL_OPEN",
        "to_email": 42,
        "campaign_id": {"nested": true},
        "sequence_number": "first",
        "time_opened": null,
        "link_clicked": 5,
        "from_email": null
    }))
    .expect("parses");
    assert!(ev.typed_view_warning.is_none());
    let n = ev.normalized();
    assert_eq!(n.lead_email, None);
    assert_eq!(n.campaign_id, None);
    assert_eq!(n.sequence_number, None);
    assert_eq!(ev.dedup_key().basis(), "body");
}

#[test]
fn colliding_spellings_keep_the_event_and_fall_back_to_raw() {
    let ev = SmartleadEvent::from_value(json!({
        "eventType": "CAMPAIGN_BOUNCE_BREACH", "campaignId": 9, "campaign_id": 9,
        "timestamp": "2025-01-01T00:00:00Z"
    }))
    .expect("parses");
    assert!(ev.typed_view_warning.is_some());
    let n = ev.normalized();
    assert_eq!(n.campaign_id.map(|c| c.to_string()).as_deref(), Some("9"));
    assert!(n.event_time.is_some());
}

#[test]
fn two_deliveries_agree_and_two_events_differ() {
    let open: Value = serde_json::from_str(&payload("email_open")).unwrap();
    let key = |v: &Value| SmartleadEvent::from_value(v.clone()).unwrap().dedup_key();
    let base = key(&open);

    // Same event, other spellings: numeric-string ids, another time format, alias key.
    let mut same = open.clone();
    same["campaign_id"] = json!("123");
    same["time_opened"] = json!("2025-01-15 10:30:00");
    same["to_email"] = json!("Jane.Doe@Acme-Corp.com");
    assert_eq!(key(&same), base);
    let mut aliased = open.clone();
    aliased.as_object_mut().unwrap().remove("event_type");
    aliased["event"] = json!("EMAIL_OPENED");
    assert_eq!(key(&aliased), base);

    // Different events.
    for (field, value) in [
        ("time_opened", json!("2025-01-15T10:31:00Z")),
        ("to_email", json!("someone@else.example")),
        ("campaign_id", json!(124)),
        ("sequence_number", json!(2)),
    ] {
        let mut other = open.clone();
        other[field] = value;
        assert_ne!(key(&other), base, "{field}");
    }
    let mut click = open.clone();
    click["event_type"] = json!("EMAIL_LINK_CLICK");
    click["time_clicked"] = open["time_opened"].clone();
    assert_ne!(key(&click), base, "type is part of the key");
}

/// The normalized view without what only a shape carries (SmartLead's event
/// id, the webhook level, the shape itself, the sending account of a lead event).
fn comparable(mut n: smartlead::Normalized, twin: &smartlead::Normalized) -> smartlead::Normalized {
    n.event_id = None;
    n.webhook_level = None;
    n.shape = None;
    if twin.account_id.is_none() {
        n.account_id = None;
    }
    n
}

#[test]
fn every_shape_normalizes_as_its_flat_twin() {
    let twins = fixtures("twins");
    for (name, ..) in SHAPES {
        let ev = SmartleadEvent::from_slice(payload(name).as_bytes()).unwrap();
        let twin = SmartleadEvent::from_slice(twins[*name].as_bytes()).unwrap();
        assert_eq!(
            twin.shape,
            smartlead::domain::shape::Shape::Flat,
            "{name}: the twin is flat"
        );
        assert!(twin.typed_view_warning.is_none(), "{name} twin");
        let t = twin.normalized();
        assert_eq!(comparable(ev.normalized(), &t), t, "{name}");
    }
    // Lead and account ids, reply text, link and reason, read from the nested fields.
    let n = SmartleadEvent::from_slice(payload("nested_event_email_replied").as_bytes())
        .unwrap()
        .normalized();
    assert_eq!(n.lead_id.map(|i| i.to_string()).as_deref(), Some("9001"));
    assert_eq!(n.account_id.map(|i| i.to_string()).as_deref(), Some("77"));
    assert_eq!(
        n.reply_text.as_deref(),
        Some("Interesting. Send me the numbers and we can talk Friday.")
    );
    assert_eq!(n.shape, Some(smartlead::domain::shape::Shape::Nested));
    let n = SmartleadEvent::from_slice(payload("nested_event_type_email_clicked").as_bytes())
        .unwrap()
        .normalized();
    assert_eq!(
        n.link.as_deref(),
        Some("https://pilot-sender.example/case-study")
    );
    assert_eq!(n.lead_id.map(|i| i.to_string()).as_deref(), Some("9101"));
    let n = SmartleadEvent::from_slice(payload("envelope_email_account_disconnected").as_bytes())
        .unwrap()
        .normalized();
    assert_eq!(n.reason.as_deref(), Some("SMTP Failure - Host unavailable"));
    assert_eq!(
        n.account_id.map(|i| i.to_string()).as_deref(),
        Some("31338")
    );
    assert_eq!(n.event_id.as_deref(), Some("evt_pilot_0001"));
    assert_eq!(n.webhook_level.as_deref(), Some("user"));
    assert_eq!(n.app_url.as_deref(), Some("https://app.smartlead.ai"));
}

#[test]
fn the_envelope_type_counts_only_in_the_envelope_and_probe_and_parse_agree() {
    let cases: &[(Value, Result<EventType, EventError>)] = &[
        (
            json!({"type": "email.account.disconnected", "data": {}}),
            Ok(EventType::EmailAccountDisconnected),
        ),
        (json!({"type": "email.replied"}), Ok(EventType::EmailReply)),
        (
            json!({"type": "campaign.bounce.breach", "data": {"campaign_id": 1}}),
            Ok(EventType::CampaignBounceBreach),
        ),
        (
            json!({"type": "email.account.warmup_paused", "data": {}}),
            Ok(EventType::Unknown("email.account.warmup_paused".into())),
        ),
        (
            json!({"type": "EMAIL_OPEN", "data": {"x": 1}}),
            Ok(EventType::EmailOpen),
        ),
        // A generic `type` is not an event type.
        (
            json!({"type": "person", "to_email": "a@b.c"}),
            Err(EventError::MissingEventType),
        ),
        (
            json!({"type": "EMAIL_OPEN", "data": "text"}),
            Err(EventError::MissingEventType),
        ),
        (
            json!({"type": 5, "data": {}}),
            Err(EventError::MissingEventType),
        ),
        (
            json!({"type": "  ", "data": {}}),
            Err(EventError::MissingEventType),
        ),
        (
            json!({"type": "Email.Replied"}),
            Err(EventError::MissingEventType),
        ),
        // A real type key wins over `type`.
        (
            json!({"event_type": "EMAIL_OPEN", "type": "email.replied", "data": {}}),
            Ok(EventType::EmailOpen),
        ),
    ];
    for (body, want) in cases {
        let text = body.to_string();
        let parsed = SmartleadEvent::from_slice(text.as_bytes()).map(|e| e.event_type);
        let probed = probe(text.as_bytes()).map(|p| p.event_type);
        assert_eq!(&parsed, want, "{text}");
        assert_eq!(&probed, want, "probe {text}");
    }
}

#[test]
fn an_event_that_names_itself_keeps_its_key_and_smartleads_id_stands_in_for_the_body_hash() {
    let key = |v: &Value| SmartleadEvent::from_value(v.clone()).unwrap().dedup_key();
    // An envelope whose event names itself (account + time): its natural key,
    // the same on a retry with a higher attempt and whatever the `id`.
    let envelope: Value =
        serde_json::from_str(&payload("envelope_email_account_disconnected")).unwrap();
    let first = key(&envelope);
    assert_eq!(first.basis(), "fields");
    let mut retry = envelope.clone();
    retry["meta"]["attempt"] = json!(2);
    assert_eq!(key(&retry), first, "a retry is the same event");
    // An envelope with nothing but its id to go by (an unknown type): the id.
    let unknown: Value = serde_json::from_str(&payload("envelope_unknown_type")).unwrap();
    let first = key(&unknown);
    assert_eq!(first.basis(), "event");
    let mut retry = unknown.clone();
    retry["meta"]["attempt"] = json!(2);
    retry["links"] = json!({"app": "https://app.smartlead.ai/elsewhere"});
    assert_eq!(
        key(&retry),
        first,
        "a retry with a higher attempt is the same event"
    );
    let mut numeric = unknown.clone();
    numeric["id"] = json!(90210);
    assert_eq!(key(&numeric).basis(), "event", "a numeric id is an id");
    let mut other = unknown.clone();
    other["id"] = json!("evt_pilot_9999");
    assert_ne!(key(&other), first, "another id, another event");
    // Without an id, the body hash leaves out what a retry changes.
    let mut no_id = unknown.clone();
    no_id.as_object_mut().unwrap().remove("id");
    let mut no_id_retry = no_id.clone();
    no_id_retry["meta"]["attempt"] = json!(3);
    assert_eq!(key(&no_id).basis(), "body");
    assert_eq!(key(&no_id), key(&no_id_retry));

    // X-Request-Id, as the consumer gets it from the message attribute.
    let with_id = |body: &str, id: Option<&str>| {
        SmartleadEvent::from_slice(body.as_bytes())
            .unwrap()
            .with_delivery(id, Some("Campaign"))
            .dedup_key()
    };
    // An open names itself: the header changes nothing (a manual re-send
    // without it, or with another one, stays a duplicate).
    let open = payload("email_open");
    let plain = SmartleadEvent::from_slice(open.as_bytes())
        .unwrap()
        .dedup_key();
    assert_eq!(with_id(&open, Some("req-0001")), plain);
    assert_eq!(with_id(&open, Some("req-0002")), plain);
    // A body with nothing to name it: the header is the key basis.
    let bare = json!({"event_type": "SOMETHING_NEW", "note": "x"}).to_string();
    let bare_plain = SmartleadEvent::from_slice(bare.as_bytes())
        .unwrap()
        .dedup_key();
    assert_eq!(
        with_id(&bare, None),
        bare_plain,
        "no request id: today's key"
    );
    assert_eq!(
        with_id(&bare, Some("   ")),
        bare_plain,
        "a blank id is no id"
    );
    assert_eq!(with_id(&bare, Some("bad id\u{7}")), bare_plain);
    let a = with_id(&bare, Some("req-0001"));
    assert_eq!(a.basis(), "event");
    let changed =
        json!({"event_type": "SOMETHING_NEW", "note": "x", "extra": "differs"}).to_string();
    assert_eq!(
        with_id(&changed, Some("req-0001")),
        a,
        "same X-Request-Id, other bytes: a duplicate"
    );
    assert_ne!(with_id(&bare, Some("req-0002")), a);
    assert_eq!(
        SmartleadEvent::from_slice(open.as_bytes())
            .unwrap()
            .with_delivery(None, Some(" Campaign "))
            .normalized()
            .webhook_level
            .as_deref(),
        Some("campaign")
    );
    assert!(
        !a.as_str().contains("req-0001"),
        "the id is hashed into the key"
    );
}

#[test]
fn dotted_names_map_to_the_catalogue() {
    assert_spellings(|w| w.contains('.') || ["EMAIL_UNSUBSCRIBED", "EMAIL_CLICKED"].contains(&w));
    assert_eq!(
        EventType::from_wire("email.account.warmup_paused"),
        EventType::Unknown("email.account.warmup_paused".into()),
        "unknown dotted names are kept as sent"
    );
}

#[test]
fn the_secret_is_scrubbed_in_every_shape() {
    for body in [
        json!({"type": "email.replied", "id": "evt_1", "data": {"lead_email": "a@b.c", "secret_key": "s3cr3t"}}),
        json!({"event": "EMAIL_REPLIED", "secretKey": "s3cr3t", "lead": {"email": "a@b.c", "SECRET_KEY": "s3cr3t"}}),
    ] {
        let ev = SmartleadEvent::from_value(body).unwrap();
        let text = serde_json::to_string(&ev).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!serde_json::to_string(&ev.normalized())
            .unwrap()
            .contains("s3cr3t"));
        assert!(!format!("{:?}", ev.view()).contains("s3cr3t"));
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Writes `v` with object keys in an order and white space chosen by `seed`.
/// `items`, each written by `write`, with commas between.
fn comma_separated<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(T, &mut String),
) {
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(x, out);
    }
}

fn scrambled_json(v: &Value, seed: &mut u64, out: &mut String) {
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }
    let ws = |n: u64| [" ", "\n", "\t", "", "  "][(n % 5) as usize];
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            for i in (1..entries.len()).rev() {
                let j = (next(seed) % (i as u64 + 1)) as usize;
                entries.swap(i, j);
            }
            out.push('{');
            comma_separated(out, entries, |(k, val), out| {
                out.push_str(ws(next(seed)));
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(ws(next(seed)));
                out.push(':');
                out.push_str(ws(next(seed)));
                scrambled_json(val, seed, out);
            });
            out.push_str(ws(next(seed)));
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            comma_separated(out, a, |x, out| {
                out.push_str(ws(next(seed)));
                scrambled_json(x, seed, out);
            });
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "EMAIL_OPEN",
            "EMAIL_REPLY",
            "EMAIL_BOUNCE",
            "2025-01-15T10:30:00Z",
            "123",
            "a@b.c",
            ""
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop::sample::select(vec![
            "event_type",
            "event",
            "eventType",
            "to_email",
            "lead_email",
            "campaign_id",
            "campaignId",
            "time_opened",
            "time_replied",
            "stats_id",
            "message_id",
            "lead_data",
            "email",
            "category",
            "link_clicked",
            "sequence_number",
            "reply_message",
            "sent_message",
            "history",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_never_panics_on_any_json(v in arb_json(), kind in prop::sample::select(EventType::KNOWN.to_vec())) {
        let _ = SmartleadEvent::from_value(v.clone()).map(|e| (e.normalized(), e.dedup_key()));
        let text = v.to_string();
        let _ = probe(text.as_bytes());
        // Also with every known type forced in, so each typed view meets junk.
        if let Value::Object(mut m) = v {
            m.insert("event_type".into(), Value::String(kind.as_str().into()));
            let ev = SmartleadEvent::from_value(Value::Object(m)).expect("object with a type parses");
            let _ = (ev.normalized(), ev.dedup_key());
        }
    }

    /// Wherever the type sits (`event_type`, `eventType`, `event`, the
    /// envelope's `type` with or without `data`), the ingest's probe and the
    /// consumer's parse find the same type or refuse alike.
    #[test]
    fn probe_and_parse_agree_on_every_type_key(
        fields in prop::collection::btree_map(
            prop::sample::select(vec!["event_type", "eventType", "event", "type", "data", "lead"]),
            prop_oneof![
                Just(json!(null)), Just(json!(7)), Just(json!({})), Just(json!({"email": "a@b.c"})),
                Just(json!("")), Just(json!(" ")), Just(json!("EMAIL_OPEN")), Just(json!("email.replied")),
                Just(json!("email.account.warmup_paused")), Just(json!("person")), Just(json!("Email.Sent")),
                Just(json!("a.b c")), Just(json!([1])),
            ],
            0..6,
        )
    ) {
        let body = Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string();
        let parsed = SmartleadEvent::from_slice(body.as_bytes()).map(|e| e.event_type);
        let probed = probe(body.as_bytes()).map(|p| p.event_type);
        prop_assert_eq!(parsed, probed, "{}", body);
    }

    #[test]
    fn parsing_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = SmartleadEvent::from_slice(&bytes);
        let _ = probe(&bytes);
    }

    #[test]
    fn key_is_stable_under_reordering_and_white_space(
        name in prop::sample::select(fixtures("payloads").into_keys().collect::<Vec<_>>()),
        seed in 1u64..u64::MAX,
    ) {
        let text = payload(&name);
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut s = seed;
        let mut scrambled = String::new();
        scrambled_json(&v, &mut s, &mut scrambled);
        let a = SmartleadEvent::from_slice(text.as_bytes()).unwrap().dedup_key();
        let b = SmartleadEvent::from_slice(scrambled.as_bytes()).unwrap().dedup_key();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn body_keys_are_stable_for_arbitrary_objects(v in arb_json(), seed in 1u64..u64::MAX) {
        if let Value::Object(mut m) = v {
            m.insert("event_type".into(), json!("SOMETHING_NEW"));
            let v = Value::Object(m);
            let mut s = seed;
            let mut scrambled = String::new();
            scrambled_json(&v, &mut s, &mut scrambled);
            let a = SmartleadEvent::from_value(v).unwrap().dedup_key();
            let b = SmartleadEvent::from_slice(scrambled.as_bytes()).unwrap().dedup_key();
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn edge_shapes_read_as_a_careful_reader_would() {
    use smartlead::domain::event::probe;
    // The secret inside an envelope's `data` or a nested `lead` is found for
    // body auth (and scrubbed from the parsed event).
    let env = json!({"id": "evt_1", "type": "email.replied", "data": {"lead_email": "a@b.example", "secret_key": "s1"}});
    assert_eq!(
        probe(env.to_string().as_bytes())
            .unwrap()
            .secret_key
            .as_deref(),
        Some("s1")
    );
    let nested =
        json!({"event": "EMAIL_REPLIED", "lead": {"email": "a@b.example", "secret_key": "s2"}});
    assert_eq!(
        probe(nested.to_string().as_bytes())
            .unwrap()
            .secret_key
            .as_deref(),
        Some("s2")
    );
    // A field given twice: the probe, like the full parse, keeps the last.
    let twice = r#"{"event_type":"EMAIL_OPEN","type":"a","type":"b","data":1,"data":{},"to_email":"a@b.example"}"#;
    assert_eq!(
        probe(twice.as_bytes()).unwrap().event_type,
        EventType::EmailOpen
    );
    assert!(SmartleadEvent::from_slice(twice.as_bytes()).is_ok());
    // A flat body that names its lead stays flat, even with an `email` object.
    let flat = json!({"event_type": "EMAIL_SENT", "to_email": "a@b.example", "stats_id": "s-9",
                      "email": {"message_id": "<m@x>"}});
    let ev = SmartleadEvent::from_value(flat).unwrap();
    assert_eq!(ev.shape, smartlead::domain::shape::Shape::Flat);
    assert_eq!(ev.dedup_key().basis(), "stats");
    // A blank `event_type` is no type: the envelope is read as one.
    let blank = json!({"event_type": "", "id": "evt_2", "type": "email.replied",
                       "created_at": "2025-01-16T07:30:00Z",
                       "data": {"lead_email": "b@c.example", "created_at": "2020-01-01T00:00:00Z"}});
    let ev = SmartleadEvent::from_value(blank).unwrap();
    assert_eq!(ev.shape, smartlead::domain::shape::Shape::Envelope);
    let n = ev.normalized();
    assert_eq!(n.lead_email.as_deref(), Some("b@c.example"));
    // The envelope's own time, not `data.created_at` (the lead's).
    assert_eq!(
        n.event_time.map(|t| t.to_string()).as_deref(),
        Some("2025-01-16T07:30:00.000Z")
    );
}

/// Current fields in the forms people write them: a correspondence that
/// names `Name <addr>` (or a list), a `to_name` that is the colleague's, a
/// blank bounce text beside its HTML.
#[test]
fn current_fields_read_as_a_careful_reader_would() {
    let reply = json!({"event_type": "EMAIL_REPLY", "campaign_id": 7, "to_name": "Tom Baker",
        "leadCorrespondence": {"targetLeadEmail": "Jane Roe <Jane@X.example>, ops@x.example",
                               "replyReceivedFrom": "Tom Baker <tom@x.example>"},
        "event_timestamp": "2025-01-21T09:35:01Z"});
    let n = SmartleadEvent::from_value(reply).unwrap().normalized();
    assert_eq!(n.lead_email.as_deref(), Some("jane@x.example"));
    assert_eq!(n.replied_by.as_deref(), Some("tom@x.example"));
    assert_eq!(n.lead_name, None, "Tom's name is not the lead's");
    let bounce = json!({"event_type": "EMAIL_BOUNCE", "to_email": "a@x.example", "campaign_id": 7,
        "bounce_message": {"text": "  ", "html": "<p>550 5.1.1 no such user</p>"}});
    let n = SmartleadEvent::from_value(bounce).unwrap().normalized();
    assert!(
        n.reason.as_deref().is_some_and(|r| r.contains("550 5.1.1")),
        "{:?}",
        n.reason
    );
}
