//! A backfilled event and the real webhook for the same fact get the same
//! idempotency key: for every webhook fixture of a type reconcile builds,
//! the statistics and message history SmartLead keeps of that fact
//! synthesize a candidate whose key is exactly the fixture's.

mod common;

use smartlead::app::reconcile::{facts, Form, HistoryMessage, Kind, StepStat};
use smartlead::SmartleadEvent;

/// The statistics row and history SmartLead keeps of the fact a webhook tells.
fn statistics_of(ev: &SmartleadEvent) -> (String, StepStat, Vec<HistoryMessage>) {
    let n = ev.normalized();
    let campaign = n
        .campaign_id
        .as_ref()
        .map(|c| c.to_string())
        .expect("campaign");
    let mut row = StepStat {
        lead_email: n.lead_email.clone().expect("lead e-mail"),
        // SmartLead's statistics always name the step.
        sequence_number: n.sequence_number.or(Some(1)),
        stats_id: n.stats_id.as_ref().map(|s| s.to_string()),
        sent_time: smartlead::domain::time::EventTime::parse("2025-01-15T08:00:00Z"),
        ..StepStat::default()
    };
    let mut history = Vec::new();
    match ev.event_type.as_str() {
        "EMAIL_SENT" => {
            row.sent_time = n.event_time;
            history.push(HistoryMessage {
                sent: true,
                message_id: n.message_id.clone(),
                time: n.event_time,
                sequence_number: n.sequence_number,
            });
        }
        "EMAIL_OPEN" => row.open_time = n.event_time,
        "EMAIL_REPLY" => {
            row.reply_time = n.event_time;
            history.push(HistoryMessage {
                sent: false,
                message_id: n.message_id.clone(),
                time: n.event_time,
                sequence_number: None,
            });
        }
        "EMAIL_BOUNCE" => {
            row.is_bounced = true;
            history.push(HistoryMessage {
                sent: true,
                message_id: n.message_id.clone(),
                time: None,
                sequence_number: n.sequence_number,
            });
        }
        "LEAD_UNSUBSCRIBED" => row.is_unsubscribed = true,
        other => panic!("not a reconciled type: {other}"),
    }
    (campaign, row, history)
}

fn kind_of(t: &str) -> Option<Kind> {
    Some(match t {
        "EMAIL_SENT" => Kind::Sent,
        "EMAIL_OPEN" => Kind::Open,
        "EMAIL_REPLY" => Kind::Reply,
        "EMAIL_BOUNCE" => Kind::Bounce,
        "LEAD_UNSUBSCRIBED" => Kind::Unsubscribe,
        _ => return None,
    })
}

#[test]
fn every_reconciled_webhook_fixture_has_a_synthesized_twin_with_its_key() {
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    let mut no_twin = Vec::new();
    for (name, body) in common::fixtures("payloads") {
        let ev = SmartleadEvent::from_slice(body.as_bytes()).expect("fixture parses");
        let Some(kind) = kind_of(ev.event_type.as_str()) else {
            continue;
        };
        let key = ev.dedup_key();
        if ev.normalized().lead_email.is_none()
            || !["msg", "stats", "fields"].contains(&key.basis())
        {
            // Keyed by a lead id or a body hash: nothing statistics hold.
            unmatched.push(name);
            continue;
        }
        let (campaign, row, history) = statistics_of(&ev);
        let fs = facts(&campaign, &[row], &history);
        let fact = fs
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("{name}: no {kind:?} fact"));
        let Some(twin) = fact.candidates.iter().find(|c| c.key == key.as_str()) else {
            no_twin.push(name);
            continue;
        };
        // The twin, sent through the queue, parses to the same key.
        let again = SmartleadEvent::from_value(twin.body.clone()).expect("twin parses");
        assert_eq!(again.dedup_key(), key, "{name}");
        assert_eq!(twin.body["source"], "reconcile");
        matched.push((name, twin.form));
    }
    let form = |n: &str| matched.iter().find(|(m, _)| m == n).map(|(_, f)| *f);
    // The documented payloads, each in the form its key is built from.
    assert_eq!(form("email_sent"), Some(Form::Msg));
    assert_eq!(form("email_open"), Some(Form::Fields));
    assert_eq!(form("email_opened_alias"), Some(Form::Fields));
    assert_eq!(form("email_reply"), Some(Form::Msg));
    assert_eq!(form("email_replied_alias"), Some(Form::Fields));
    assert_eq!(form("email_bounce"), Some(Form::Stats));
    assert_eq!(form("email_bounced_alias"), Some(Form::Stats));
    assert_eq!(form("lead_unsubscribed"), Some(Form::Fields));
    assert_eq!(form("email_open_minimal"), Some(Form::FieldsNoStep));
    assert!(matched.len() >= 15, "{matched:?}");
    assert_eq!(unmatched, ["nested_event_email_replied_no_lead_email"]);
    // Unsubscribes that carry a time are keyed by it; the statistics only
    // say "unsubscribed": these are reported, never backfilled.
    assert_eq!(
        no_twin,
        [
            "nested_event_email_unsubscribed",
            "nested_event_type_lead_unsubscribed"
        ]
    );
}

/// The `email_open` payload with `field` set to `value`.
fn email_open_with(field: &str, value: &str) -> SmartleadEvent {
    let mut v: serde_json::Value = serde_json::from_str(&common::payload("email_open")).unwrap();
    v[field] = value.into();
    SmartleadEvent::from_value(v).unwrap()
}

#[test]
fn an_open_webhook_with_stats_id_matches_the_stats_form_only() {
    let ev = email_open_with("stats_id", "st-9");
    let (campaign, row, history) = statistics_of(&ev);
    let fs = facts(&campaign, &[row], &history);
    let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
    let hits: Vec<Form> = open
        .candidates
        .iter()
        .filter(|c| c.key == ev.dedup_key().as_str())
        .map(|c| c.form)
        .collect();
    assert_eq!(hits, [Form::FieldsStats]);
}

#[test]
fn statistics_with_coarser_times_match_no_form() {
    // Webhook time with milliseconds, statistics with whole seconds: the
    // keys differ, so no evidence is ever learned and such gaps stay reports.
    let ev = email_open_with("time_opened", "2025-01-15T10:30:00.618881+00:00");
    let (campaign, mut row, history) = statistics_of(&ev);
    row.open_time = smartlead::domain::time::EventTime::parse("2025-01-15T10:30:00Z");
    let fs = facts(&campaign, &[row], &history);
    let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
    assert!(open
        .candidates
        .iter()
        .all(|c| c.key != ev.dedup_key().as_str()));
}
