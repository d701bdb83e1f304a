//! One contract, two stores: every scenario runs against `DynamoStore` on
//! DynamoDB Local and against `test_support::memory::MemoryStore`, checks
//! the contract on each, and the two transcripts (the store's answers and
//! the items read back, bookkeeping included) must be equal.

mod common;

use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{archive_key, SEEN_MAX};
use smartlead::app::effects::{FANOUT, SLACK};
use smartlead::app::store::{ApplyOutcome, Claim, Rejected, Settle, StateStore};
use smartlead::domain::key::DedupKey;
use smartlead::domain::plan::{plan, Plan, ScoreWeights, MAX_KEPT_LINKS};
use smartlead::domain::records::RecordKind;
use smartlead::domain::time::EventTime;
use test_support::memory::MemoryStore;

/// What a scenario saw, step by step.
type Transcript = Vec<(String, Value)>;

/// Epoch ms of the scenarios' first event (2025-01-15T00:13:20Z).
const T0: i64 = 1_736_900_000_000;
const LEAD: &str = "LEAD#pat@contract.example";

fn plan_of(v: Value, sec: i64) -> Plan {
    let ev = smartlead::SmartleadEvent::from_value(v).expect("event");
    // Received a minute after it happened: its own time is believed.
    let received = EventTime::from_millis(T0 + sec * 1000 + 60_000).expect("time");
    plan(&ev, received, &ScoreWeights::default())
}

fn at(sec: i64) -> String {
    EventTime::from_millis(T0 + sec * 1000)
        .expect("time")
        .to_string()
}

fn open(sec: i64) -> Plan {
    let body = json!({"event_type": "EMAIL_OPEN", "to_email": "pat@contract.example",
                      "campaign_id": 7, "sequence_number": 1, "time_opened": at(sec)});
    plan_of(body, sec)
}

fn click(sec: i64, link: &str) -> Plan {
    let body = json!({"event_type": "EMAIL_LINK_CLICK", "to_email": "pat@contract.example",
                      "campaign_id": 7, "sequence_number": 1, "time_clicked": at(sec),
                      "link_clicked": [format!("https://x.example/{link}")]});
    plan_of(body, sec)
}

/// An outcome as JSON, the first item's state included.
fn outcome(o: &ApplyOutcome) -> Value {
    match o {
        ApplyOutcome::Applied {
            transactions,
            write_units,
            state,
            fanout,
            trimmed,
            refused,
        } => json!({"applied": {"transactions": transactions, "write_units": write_units,
            "state": state, "fanout": fanout, "trimmed": trimmed, "refused": refused.len()}}),
        ApplyOutcome::Unchanged {
            state,
            fanout,
            refused,
        } => json!({"unchanged": {"state": state, "fanout": fanout, "refused": refused.len()}}),
        ApplyOutcome::Duplicate => json!("duplicate"),
    }
}

/// `v` with its TTL (epoch seconds: when it is written) as whole days
/// from now (the two stores write it a moment apart).
fn ttl_in_days(mut v: Value) -> Value {
    if let Some(x) = v.get_mut("expires_at") {
        let left = x.as_i64().expect("expires_at, epoch seconds") - chrono::Utc::now().timestamp();
        let days = (left + 43_200).div_euclid(86_400);
        assert!((left - days * 86_400).abs() < 120, "{left} s left");
        *x = json!(format!("{days} days"));
    }
    v
}

/// [`ttl_in_days`], which must be `days`.
fn ttl_days(v: Value, days: u64) -> Value {
    let v = ttl_in_days(v);
    assert_eq!(v["expires_at"], json!(format!("{days} days")), "{v}");
    v
}

/// Applies `p` as message `id` and notes the answer.
async fn apply<S: StateStore>(s: &S, t: &mut Transcript, p: &Plan, id: &str) -> ApplyOutcome {
    let o = s.apply(p, id).await.expect("apply");
    t.push((format!("apply {} as {id}", p.key), outcome(&o)));
    o
}

/// Reads `pk`/`sk` and notes it (`null` if absent).
async fn read<S: StateStore>(s: &S, t: &mut Transcript, pk: &str, sk: &str) -> Value {
    let v = s
        .item(pk, sk)
        .await
        .expect("read")
        .map_or(Value::Null, ttl_in_days);
    t.push((format!("item {pk}|{sk}"), v.clone()));
    v
}

/// A plan applied once changes its items; again, nothing.
async fn apply_once_then_again<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let p = open(1);
    let first = apply(s, &mut t, &p, "m-1").await;
    let ApplyOutcome::Applied { state, fanout, .. } = &first else {
        panic!("applied: {first:?}")
    };
    assert_eq!(state.as_ref().expect("state")["opens"], 1);
    assert!(
        state.as_ref().expect("state").get("ek").is_none(),
        "no bookkeeping"
    );
    assert!(!fanout);
    let again = apply(s, &mut t, &p, "m-2").await;
    assert_eq!(again, ApplyOutcome::Duplicate);
    let item = read(s, &mut t, LEAD, "CAMPAIGN#7").await;
    assert_eq!(item["opens"], 1);
    assert_eq!(item["ek"].as_array().map(Vec::len), Some(1), "{item}");
    t
}

/// Events on one lead in any order: counts add up, registers keep the
/// newest (and earliest), a bounce writes two items, each absorbs once,
/// the `suppressed` index is billed alike.
async fn events_on_one_lead<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let bounce = plan_of(
        json!({"event_type": "EMAIL_BOUNCE", "to_email": "pat@contract.example",
               "campaign_id": 7, "event_timestamp": at(5), "stats_id": "s-1"}),
        5,
    );
    let reply = plan_of(
        json!({"event_type": "EMAIL_REPLY", "to_email": "pat@contract.example",
               "campaign_id": 7, "time_replied": at(4), "preview_text": "Tuesday?"}),
        4,
    );
    // Suppressions: a later bounce and an unsubscribe (the index entry
    // unchanged, then rewritten), an earlier bounce arriving late (moved).
    let more = |ty: &str, n: i64, id: &str| {
        plan_of(
            json!({"event_type": ty, "to_email": "pat@contract.example",
                   "lead_email": "pat@contract.example", "campaign_id": 7,
                   "event_timestamp": at(n), "stats_id": id}),
            n,
        )
    };
    let plans = [
        open(3),
        open(1),
        click(2, "a"),
        reply,
        bounce,
        more("EMAIL_BOUNCE", 6, "s-2"),
        more("LEAD_UNSUBSCRIBED", 7, "s-3"),
        more("EMAIL_BOUNCE", 0, "s-0"),
    ];
    for (i, p) in plans.iter().enumerate() {
        let o = apply(s, &mut t, p, &format!("m-{i}")).await;
        assert!(matches!(o, ApplyOutcome::Applied { .. }), "{o:?}");
    }
    for (i, p) in plans.iter().enumerate().rev() {
        let o = apply(s, &mut t, p, &format!("again-{i}")).await;
        assert_eq!(o, ApplyOutcome::Duplicate);
    }
    let mut keys: Vec<(String, String)> = plans
        .iter()
        .flat_map(|p| p.items.iter().map(|u| (u.pk.clone(), u.sk.clone())))
        .collect();
    keys.sort();
    keys.dedup();
    assert!(keys.len() >= 3, "{keys:?}");
    for (pk, sk) in &keys {
        read(s, &mut t, pk, sk).await;
    }
    let lead = s
        .item(LEAD, "CAMPAIGN#7")
        .await
        .expect("read")
        .expect("lead");
    assert_eq!((&lead["opens"], &lead["clicks"]), (&json!(2), &json!(1)));
    assert_eq!(lead["last_open_at"], json!(at(3)), "the newest open");
    t
}

/// A capped set keeps its newest elements and counts the others, whatever
/// the order they come in.
async fn a_capped_set_keeps_its_newest<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let n = MAX_KEPT_LINKS as i64 + 3;
    for sec in (0..n).rev().chain([n + 1, n]) {
        // Long links: an item of a few KB, billed (and refused) by its size.
        let link = format!("l{sec}-{}", "x".repeat(200));
        let o = apply(s, &mut t, &click(sec, &link), "m").await;
        assert!(matches!(o, ApplyOutcome::Applied { .. }), "{o:?}");
    }
    let lead = read(s, &mut t, LEAD, "CAMPAIGN#7").await;
    let links = lead["links_clicked"].as_array().expect("links");
    assert_eq!(links.len(), MAX_KEPT_LINKS);
    assert_eq!(lead["links_dropped"], n + 2 - MAX_KEPT_LINKS as i64);
    t
}

/// Past [`SEEN_MAX`] events an item's keys rotate, the oldest archived:
/// the first event is still absorbed.
async fn absorbed_keys_rotate_and_archive<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let n = 2 * SEEN_MAX as i64 + 3;
    for sec in 0..n {
        let o = s.apply(&open(sec), "m").await.expect("apply");
        // The writes that rotate show it in their requests.
        t.push((format!("open {sec}"), outcome(&o)));
    }
    assert_eq!(
        apply(s, &mut t, &open(0), "m").await,
        ApplyOutcome::Duplicate
    );
    assert_eq!(
        apply(s, &mut t, &open(n - 1), "m").await,
        ApplyOutcome::Duplicate
    );
    let lead = read(s, &mut t, LEAD, "CAMPAIGN#7").await;
    assert_eq!((&lead["opens"], &lead["ek_gen"]), (&json!(n), &json!(1)));
    let (apk, ask) = archive_key(LEAD, "CAMPAIGN#7", 0);
    let archive = read(s, &mut t, &apk, &ask).await;
    assert_eq!(archive["ek"].as_array().map(Vec::len), Some(SEEN_MAX));
    t
}

/// The fan-out's mark: pending for the message that marked it (again on
/// its redelivery), not for another copy, gone once done.
async fn fanout_mark_then_done<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let mut p = open(1);
    p.effects = vec![FANOUT];
    let first = apply(s, &mut t, &p, "m-1").await;
    assert!(matches!(first, ApplyOutcome::Applied { fanout: true, .. }));
    let again = apply(s, &mut t, &p, "m-1").await;
    let ApplyOutcome::Unchanged { state, fanout, .. } = &again else {
        panic!("still pending: {again:?}")
    };
    assert!(*fanout && state.as_ref().is_some_and(|s| s["opens"] == 1));
    let mut copy = p.clone();
    copy.received_ms += 1;
    assert_eq!(
        apply(s, &mut t, &copy, "m-2").await,
        ApplyOutcome::Duplicate
    );
    assert!(read(s, &mut t, LEAD, "CAMPAIGN#7").await["fo"].is_array());
    s.fanout_done(LEAD, "CAMPAIGN#7", &p.key, p.received_ms)
        .await
        .expect("done");
    assert!(read(s, &mut t, LEAD, "CAMPAIGN#7")
        .await
        .get("fo")
        .is_none());
    assert_eq!(apply(s, &mut t, &p, "m-1").await, ApplyOutcome::Duplicate);
    // Done on an item that is not there creates none.
    s.fanout_done(LEAD, "CAMPAIGN#8", &p.key, p.received_ms)
        .await
        .expect("done");
    assert!(read(s, &mut t, LEAD, "CAMPAIGN#8").await.is_null());
    t
}

/// One first-seen time per key, whatever later deliveries say.
async fn first_seen_keeps_the_first<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let (t1, t2) = (
        EventTime::from_millis(T0).expect("time"),
        EventTime::from_millis(T0 + 5_000).expect("time"),
    );
    assert_eq!(s.first_seen("k-1", t1).await.expect("first"), t1);
    assert_eq!(s.first_seen("k-1", t2).await.expect("first"), t1);
    assert_eq!(s.first_seen("k-2", t2).await.expect("first"), t2);
    for k in ["k-1", "k-2"] {
        let v = s.item(&format!("FIRST#{k}"), "-").await.expect("read");
        t.push((k.to_owned(), ttl_days(v.expect("item"), 105)));
    }
    t
}

/// Notes a claim's answer.
async fn claim<S: StateStore>(s: &S, t: &mut Transcript, c: Claim<'_>) -> bool {
    let ok = s.claim(c).await.expect("claim");
    let what = format!(
        "claim {} by {} until {} at {} create {}",
        c.effect, c.message_id, c.lease_until_ms, c.now_ms, c.create
    );
    t.push((what, json!(ok)));
    ok
}

/// Claims: one holder at a time (its own retry may claim again), a lease
/// that ran out taken over, settled by the lease's holder only.
async fn claims_and_settles<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let key = DedupKey::from_stored("EMAIL_REPLY:event:contract");
    let c = |effect, message_id, lease_until_ms, now_ms, create| Claim {
        key: &key,
        effect,
        message_id,
        lease_until_ms,
        now_ms,
        create,
    };
    assert!(!claim(s, &mut t, c(SLACK, "m-1", 2_000, 1_000, false)).await);
    assert!(claim(s, &mut t, c(SLACK, "m-1", 2_000, 1_000, true)).await);
    assert!(!claim(s, &mut t, c(SLACK, "m-2", 3_000, 1_500, true)).await);
    assert!(claim(s, &mut t, c(SLACK, "m-1", 2_000, 1_600, true)).await);
    // The lease ran out: another delivery takes it over.
    assert!(claim(s, &mut t, c(SLACK, "m-3", 9_000, 2_500, false)).await);
    let settle = |lease, end| s.settle(&key, SLACK, lease, end);
    settle(2_000, Settle::Done).await.expect("settle");
    let pk = format!("EVENT#{key}");
    let held = read(s, &mut t, &pk, "EVENT").await;
    assert_eq!(held["fx_slack"], "running", "not m-1's to settle");
    settle(9_000, Settle::Retry).await.expect("settle");
    assert!(claim(s, &mut t, c(SLACK, "m-4", 12_000, 10_000, false)).await);
    settle(12_000, Settle::Done).await.expect("settle");
    assert!(!claim(s, &mut t, c(SLACK, "m-5", 99_000, 50_000, true)).await);
    // The fan-out, unclaimed, settled by the delivery that applied it.
    s.settle(&key, FANOUT, 5_000, Settle::Done)
        .await
        .expect("settle");
    let item = s.item(&pk, "EVENT").await.expect("read").expect("ledger");
    assert_eq!(
        (&item["fx_slack"], &item["fx_fanout"]),
        (&json!("done"), &json!("done"))
    );
    t.push(("ledger".into(), ttl_days(item, 105)));
    t
}

/// A rejected event: one record a key, the last delivery's.
async fn rejections_are_kept<S: StateStore>(s: &S) -> Transcript {
    let mut t = Transcript::new();
    let received_at = "2025-01-15T09:00:00.000Z";
    for (id, detail) in [("m-1", "expected value"), ("m-2", "")] {
        let r = Rejected {
            key: "UNKNOWN:body:contract",
            message_id: id,
            reason: "not_json",
            detail,
            raw: "{not json",
            received_at,
        };
        s.reject(r).await.expect("reject");
    }
    let sk = format!("{received_at}#UNKNOWN:body:contract");
    let v = s
        .item(&RecordKind::Rejected.pk(&sk), &sk)
        .await
        .expect("read");
    let v = ttl_days(v.expect("kept"), 30);
    assert_eq!(
        (&v["message_id"], &v["detail"]),
        (&json!("m-2"), &json!("-"))
    );
    t.push(("rejected".into(), v));
    t
}

/// Each scenario on both stores: the contract holds on each, and the two
/// transcripts are equal.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $scenario() {
            let dynamo = super::$scenario(&common::fresh_store().await).await;
            let memory = super::$scenario(&MemoryStore::new()).await;
            assert_eq!(dynamo.len(), memory.len());
            for ((step, d), (_, m)) in dynamo.iter().zip(&memory) {
                assert_eq!(m, d, "{step}: memory (left) and DynamoDB (right) differ");
            }
        }
    )*};
}

mod contract {
    use super::*;
    on_both_stores!(
        apply_once_then_again,
        events_on_one_lead,
        a_capped_set_keeps_its_newest,
        absorbed_keys_rotate_and_archive,
        fanout_mark_then_done,
        first_seen_keeps_the_first,
        claims_and_settles,
        rejections_are_kept,
    );
}
