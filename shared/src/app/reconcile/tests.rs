use super::run::{first_item, lead_item, with_counts_of};
use super::*;
use crate::domain::time::EventTime;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

fn row(lead: &str, seq: u32) -> StepStat {
    StepStat {
        lead_email: lead.into(),
        sequence_number: Some(seq),
        stats_id: Some(format!("st-{lead}-{seq}")),
        sent_time: EventTime::parse("2026-11-01T09:00:00.123Z"),
        open_time: EventTime::parse("2026-11-01T10:00:00.456Z"),
        reply_time: EventTime::parse("2026-11-01T11:00:00.789Z"),
        open_count: 1,
        reply_count: 1,
        ..StepStat::default()
    }
}

#[test]
fn both_statistics_shapes_are_read_and_partial_rows_skipped() {
    let per_step = json!({"total_stats": "3", "offset": 0, "limit": 100, "data": [
        {"lead_email": "A@x.example", "sequence_number": 1, "stats_id": "s1",
         "sent_time": "2026-11-01T09:00:00.000Z", "open_time": null, "open_count": "0",
         "is_bounced": false, "is_unsubscribed": true},
        {"lead_name": "no e-mail"},
        "not an object"
    ]});
    let p = parse_page(&per_step).unwrap();
    assert_eq!((p.entries, p.unreadable, p.total), (3, 2, Some(3)));
    assert_eq!(p.rows[0].lead_email, "a@x.example");
    assert!(p.rows[0].is_unsubscribed && p.rows[0].open_time.is_none());
    let per_lead = json!({"leads": [{"email": "b@x.example", "lead_id": 7, "sequences": [
        {"sequence_number": 1, "sent_time": "2026-11-01T09:00:00Z", "open_count": 2},
        {"sequence_number": 2, "sent_time": "2026-11-02T09:00:00Z"}
    ]}, {"email": "c@x.example", "open_count": 4, "click_count": 1}]});
    let p = parse_page(&per_lead).unwrap();
    assert_eq!(p.rows.len(), 3);
    assert_eq!(p.rows[0].lead_id.as_deref(), Some("7"));
    assert_eq!(p.rows[0].open_count, 2);
    assert_eq!(p.rows[2].sequence_number, None);
    // A per-lead summary builds no fact: counts only.
    assert!(facts("5", &p.rows[2..], &[]).is_empty());
}

#[test]
fn both_history_shapes_are_read() {
    let h = parse_history(&json!({"history": [
        {"type": "SENT", "message_id": "<m1@x>", "time": "2026-11-01T09:00:00Z", "email_seq_number": "1"},
        {"type": "REPLY", "message_id": "<r1@x>", "time": "2026-11-01T11:00:00Z"}]}))
    .unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[0].sent && !h[1].sent);
    assert_eq!(h[0].sequence_number, Some(1));
    let h = parse_history(&json!({"messages": [
        {"id": "msg_1", "direction": "outbound", "sent_at": "2025-01-15T10:00:00Z"},
        {"id": "msg_2", "direction": "inbound", "received_at": "2025-01-20T14:00:00Z"}]}))
    .unwrap();
    assert_eq!(h[1].message_id.as_deref(), Some("msg_2"));
}

#[test]
fn every_fact_of_a_lead_is_read_in_the_item_its_plan_writes_first() {
    // A long address: the plan cuts and hashes it in the key.
    let long = format!("{}@x.example", "a".repeat(300));
    for lead in ["a@x.example".to_owned(), long] {
        let mut r = row(&lead, 1);
        r.is_bounced = true;
        r.is_unsubscribed = true;
        let home = lead_item("5", &lead).expect("item");
        assert_eq!(home.1, "CAMPAIGN#5");
        assert_eq!(home.0 == format!("LEAD#{lead}"), lead.len() < 200);
        for f in facts("5", &[r], &[]) {
            for c in &f.candidates {
                assert_eq!(first_item(&c.body).as_ref(), Some(&home), "{f:?}");
            }
        }
    }
}

#[test]
fn a_gap_is_backfilled_only_in_the_one_form_seen() {
    let rows = [row("a@x.example", 1)];
    let fs = facts("5", &rows, &[]);
    let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
    assert_eq!(
        open.candidates.len(),
        3,
        "with and without stats_id or step"
    );
    let seen = HashSet::new();
    // Nothing seen: report only.
    let g = gaps(&fs, &seen, &Evidence::new());
    assert!(g.iter().all(|g| matches!(g.action, Action::Report { .. })));
    // Opens seen without stats_id elsewhere: that form is backfilled.
    let tally = |forms: &[(Form, usize)], stored| Tally {
        matched: forms.iter().copied().collect(),
        stored,
    };
    let mut ev = Evidence::new();
    ev.insert(("5".into(), Kind::Open), tally(&[(Form::Fields, 3)], 3));
    let g = gaps(&fs, &seen, &ev);
    let o = g.iter().find(|g| g.event_type == "EMAIL_OPEN").unwrap();
    let Action::Backfill { key, body } = &o.action else {
        panic!("{o:?}")
    };
    assert!(body.get("stats_id").is_none() && key.contains(":fields:"));
    assert_eq!(body["source"], "reconcile");
    // Seen in two forms: report only.
    ev.insert(
        ("5".into(), Kind::Open),
        tally(&[(Form::Fields, 3), (Form::FieldsStats, 3)], 6),
    );
    let g = gaps(&fs, &seen, &ev);
    let o = g.iter().find(|g| g.event_type == "EMAIL_OPEN").unwrap();
    assert!(matches!(o.action, Action::Report { .. }));
    // Sends keyed by message id, with no history: not checkable.
    let mut ev = Evidence::new();
    ev.insert(("5".into(), Kind::Sent), tally(&[(Form::Msg, 3)], 3));
    let g = gaps(&fs, &seen, &ev);
    let s = g.iter().find(|g| g.event_type == "EMAIL_SENT").unwrap();
    assert!(matches!(&s.action, Action::Unverified { reason } if reason.contains("Msg")));
}

#[test]
fn a_fact_seen_in_any_form_is_no_gap_and_teaches_its_form() {
    let rows = [row("a@x.example", 1)];
    let fs = facts("5", &rows, &[]);
    let seen: HashSet<String> = fs
        .iter()
        .filter_map(|f| f.candidates.last().map(|c| c.key.clone()))
        .collect();
    let mut ev = Evidence::new();
    learn(&rows, &fs, &seen, &Value::Null, &mut ev);
    assert!(gaps(&fs, &seen, &ev).is_empty());
    assert_eq!(
        ev[&("5".to_owned(), Kind::Open)].matched,
        BTreeMap::from([(Form::Fields, 1)])
    );
}

/// Ten leads, each with one open of step 1 at a whole second (as the
/// statistics give it). `matched` leads' opens are stored under the key
/// the statistics rebuild; the others' item counts an open stored under
/// a key none of the candidates is (its time had milliseconds), except
/// lead 9's, which is missing.
fn opens_of_ten(matched: usize) -> (Vec<Fact>, HashSet<String>, Evidence) {
    let (mut all, mut seen, mut ev) = (Vec::new(), HashSet::new(), Evidence::new());
    for l in 0..10 {
        let mut r = row(&format!("l{l}@x.example"), 1);
        r.open_time = EventTime::parse(&format!("2026-11-01T10:00:0{l}Z"));
        (r.reply_time, r.reply_count) = (None, 0);
        let fs = facts("5", std::slice::from_ref(&r), &[]);
        if l < matched {
            let open = fs.iter().find(|f| f.kind == Kind::Open).unwrap();
            let c = open.candidates.iter().find(|c| c.form == Form::Fields);
            seen.insert(c.unwrap().key.clone());
        }
        let item = if l == 9 {
            json!({"sent": 1})
        } else {
            json!({"sent": 1, "opens": 1})
        };
        learn(&[r], &fs, &seen, &item, &mut ev);
        all.extend(fs);
    }
    (all, seen, ev)
}

fn open_actions(matched: usize) -> Vec<Action> {
    let (all, seen, ev) = opens_of_ten(matched);
    gaps(&all, &seen, &ev)
        .into_iter()
        .filter(|g| g.event_type == "EMAIL_OPEN")
        .map(|g| g.action)
        .collect()
}

#[test]
fn one_coincidental_match_teaches_no_form_and_the_gaps_are_reported() {
    // Webhooks with milliseconds, statistics in whole seconds: the one
    // open at `.000` matches; the eight stored under their real keys
    // must not be backfilled (they would count twice).
    let a = open_actions(1);
    assert_eq!(a.len(), 9);
    assert!(
        a.iter()
            .all(|a| matches!(a, Action::Report { reason } if reason.contains("1 of 9"))),
        "{a:#?}"
    );
    // Three matches of nine stored: still not 90%.
    let a = open_actions(3);
    assert!(
        a.iter().all(|a| matches!(a, Action::Report { .. })),
        "{a:#?}"
    );
}

#[test]
fn a_well_established_form_backfills_the_one_missing() {
    // Nine of nine stored opens matched Fields; lead 9's is missing.
    let a = open_actions(9);
    assert_eq!(a.len(), 1);
    assert!(matches!(&a[0], Action::Backfill { key, .. } if key.contains(":fields:")));
}

#[test]
fn unsubscribes_are_reported_never_backfilled() {
    let mut r = row("a@x.example", 1);
    r.is_unsubscribed = true;
    let fs = facts("5", &[r], &[]);
    let mut ev = Evidence::new();
    ev.insert(
        ("5".into(), Kind::Unsubscribe),
        Tally {
            matched: BTreeMap::from([(Form::Fields, 50)]),
            stored: 50,
        },
    );
    let g = gaps(&fs, &HashSet::new(), &ev);
    let u = g
        .iter()
        .find(|g| g.event_type == "LEAD_UNSUBSCRIBED")
        .unwrap();
    assert!(
        matches!(&u.action, Action::Report { reason } if reason.contains("reported only")),
        "{u:?}"
    );
}

#[test]
fn without_the_history_a_send_is_reported_not_backfilled_by_stats_id() {
    let rows = [row("a@x.example", 1)];
    let mut fs = facts("5", &rows, &[]);
    let mut ev = Evidence::new();
    for k in [Kind::Sent, Kind::Reply] {
        let form = if k == Kind::Sent {
            Form::Stats
        } else {
            Form::Fields
        };
        ev.insert(
            ("5".into(), k),
            Tally {
                matched: BTreeMap::from([(form, 5)]),
                stored: 5,
            },
        );
    }
    let backfills = |fs: &[Fact]| {
        gaps(fs, &HashSet::new(), &ev)
            .into_iter()
            .filter(|g| matches!(g.action, Action::Backfill { .. }))
            .count()
    };
    assert_eq!(
        backfills(&fs),
        2,
        "history read, no message id: keyed as learned"
    );
    for f in &mut fs {
        f.history_unavailable = true;
    }
    assert_eq!(backfills(&fs), 0);
    let g = gaps(&fs, &HashSet::new(), &ev);
    assert!(g.iter().filter(|g| g.event_type != "EMAIL_OPEN").all(
        |g| matches!(&g.action, Action::Report { reason } if reason.contains("history unavailable"))
    ));
    // An unknown history shape is an error, not "no history".
    for bad in [json!({"error": "not found"}), json!("text"), json!(null)] {
        assert!(matches!(
            parse_history(&bad),
            Err(ApiError::Unexpected { .. })
        ));
    }
}

#[test]
fn an_unknown_statistics_shape_is_an_error_not_no_rows() {
    for bad in [
        json!({"error": "invalid campaign"}),
        json!({"count": 3}),
        json!("<html>"),
        json!(null),
    ] {
        assert!(
            matches!(parse_page(&bad), Err(ApiError::Unexpected { .. })),
            "{bad}"
        );
    }
    // `count` is not the total.
    let p = parse_page(&json!({"count": 1, "data": [{"lead_email": "a@x.example"}]})).unwrap();
    assert_eq!(p.total, None);
}

#[test]
fn a_lead_id_gives_the_same_facts_without_the_email_filed_by_id() {
    let mut r = row("a@x.example", 1);
    r.lead_id = Some("9001".into());
    for f in facts("5", &[r], &[]) {
        assert_eq!(f.by_id.len(), f.candidates.len(), "{f:?}");
        for c in &f.by_id {
            assert!(c.body.get("to_email").is_none());
            assert_eq!(
                first_item(&c.body),
                Some(("LEAD#id:9001".to_owned(), "CAMPAIGN#5".to_owned()))
            );
        }
    }
}

#[test]
fn the_counts_of_items_filed_by_id_are_added() {
    let v = with_counts_of(
        json!({"opens": 1, "x": "y"}),
        &[json!({"opens": 2, "clicks": 1})],
    );
    assert_eq!(v, json!({"opens": 3.0, "clicks": 1.0, "x": "y"}));
    assert_eq!(
        with_counts_of(Value::Null, &[json!({"sent": 1})]),
        json!({"sent": 1.0})
    );
    assert_eq!(with_counts_of(Value::Null, &[Value::Null]), Value::Null);
}

#[test]
fn counts_without_times_are_reported_never_backfilled() {
    let mut r = row("a@x.example", 1);
    r.open_count = 3;
    r.click_count = 2;
    let g = count_gaps("5", &[r], &json!({"opens": 1, "clicks": 2}), 0);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].missing, "2 of 3 opens (stored 1)");
    let g = count_gaps("5", &[row("a@x.example", 1)], &Value::Null, 1);
    assert!(g.is_empty(), "the backfilled open counts: {g:?}");
}

#[test]
fn the_backfill_message_carries_the_ingest_attributes_and_source() {
    let m = backfill_message(&json!({"event_type": "EMAIL_OPEN"}));
    let names: Vec<&str> = m.attributes.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "event_type",
            "received_at",
            "body_sha256",
            "body_location",
            "source"
        ]
    );
    assert_eq!(
        m.attributes[2].1,
        crate::domain::message::sha256_hex(m.body.as_bytes())
    );
}
