//! Reconcile end to end: a random stream delivered as webhooks through the
//! consumer, random events removed, reconcile run against the SmartLead
//! stand-in serving the statistics and message history of the full stream
//! (paged, with a 429 and partial data): the final state equals the full
//! stream's, with no double count; late webhooks after a backfill, backfills
//! after webhooks and a second run change nothing.

mod common;

use async_trait::async_trait;
use common::http::{self, requests, target};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{SEEN_ATTR, SEEN_OLD_ATTR};
use smartlead::app::consumer::Outcome;
use smartlead::app::ingest::{Queue, QueueError};
use smartlead::app::reconcile::{self, Action, Options};
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::domain::message::OutgoingMessage;
use smartlead::domain::time::EventTime;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::sqs::SqsMessage;
use wiremock::MockServer;

const CAMPAIGN: &str = "77";
/// Every delivery's SQS receive time (events without a time of their own
/// use it): this test's start, so that the backfills' `received_at` (the
/// real clock) believes the same event times.
fn received_ms() -> i64 {
    static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T.get_or_init(|| EventTime::now().millis() / 1000 * 1000)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn record(id: String, body: &str, attrs: &[(&str, String)]) -> SqsMessage {
    let attrs: serde_json::Map<String, Value> = attrs
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                json!({"stringValue": v, "dataType": "String"}),
            )
        })
        .collect();
    serde_json::from_value(json!({
        "messageId": id, "body": body, "messageAttributes": attrs,
        "attributes": {"SentTimestamp": received_ms().to_string()}
    }))
    .expect("record")
}

/// The queue as the consumer sees it: each message is processed at once.
struct ConsumerQueue {
    consumer: common::TestConsumer,
    outcomes: Mutex<Vec<Outcome>>,
    sent: Mutex<Vec<String>>,
}

impl ConsumerQueue {
    async fn deliver(&self, body: &str) -> Outcome {
        let n = self.sent.lock().unwrap().len();
        self.sent.lock().unwrap().push(body.to_owned());
        let o = self
            .consumer
            .handle_record(&record(format!("m-{n}"), body, &[]))
            .await;
        assert!(
            matches!(o, Outcome::Processed { .. } | Outcome::Duplicate),
            "{o:?}"
        );
        o
    }
    fn take_outcomes(&self) -> Vec<Outcome> {
        std::mem::take(&mut self.outcomes.lock().unwrap())
    }
}

#[async_trait]
impl Queue for ConsumerQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
        let n = self.sent.lock().unwrap().len();
        self.sent.lock().unwrap().push(msg.body.clone());
        let o = self
            .consumer
            .handle_record(&record(format!("b-{n}"), &msg.body, &msg.attributes))
            .await;
        assert!(
            matches!(o, Outcome::Processed { .. } | Outcome::Duplicate),
            "{o:?}"
        );
        self.outcomes.lock().unwrap().push(o);
        Ok(format!("b-{n}"))
    }
}

async fn queue() -> ConsumerQueue {
    ConsumerQueue {
        consumer: common::consumer_with(
            common::fresh_store().await,
            smartlead::app::effects::Effects::default(),
        ),
        outcomes: Mutex::new(Vec::new()),
        sent: Mutex::new(Vec::new()),
    }
}

fn ms(t: i64) -> String {
    EventTime::from_millis(t).expect("time").to_string()
}

/// One lead's events (webhooks as SmartLead documents them) and the
/// statistics rows and message history SmartLead keeps of them.
struct Lead {
    email: String,
    id: u64,
    events: Vec<(String, Value)>,
    rows: Vec<Value>,
    history: Vec<Value>,
}

fn stream(rng: &mut Rng, leads: usize) -> Vec<Lead> {
    let base = received_ms() - 3 * 86_400_000;
    let mut out = Vec::new();
    for l in 0..leads {
        let email = format!("lead{l}@recon.example");
        let id = 5000 + l as u64;
        let (mut events, mut rows, mut history) = (Vec::new(), Vec::new(), Vec::new());
        let unsubscribed = rng.below(4) == 0;
        let steps = 1 + rng.below(3);
        for seq in 1..=steps {
            // Times with milliseconds, as SmartLead's statistics give them.
            let sent = base + (l as i64) * 3_600_000 + (seq as i64) * 86_400_000 + 123;
            let stats_id = format!("st-{l}-{seq}");
            let msg = format!("<sent-{l}-{seq}@mail.outreach.example>");
            let subject = format!("Step {seq} for lead {l}");
            let common = |t: &str| {
                json!({"event_type": t, "to_email": email, "to_name": "Lead", "from_email": "alex@outreach.example",
                       "campaign_id": 77, "campaign_name": "Recon", "sequence_number": seq})
            };
            let mut e = common("EMAIL_SENT");
            e["time_sent"] = json!(ms(sent));
            e["stats_id"] = json!(stats_id);
            e["message_id"] = json!(msg);
            e["custom_subject"] = json!(subject);
            events.push((format!("{email} sent {seq}"), e));
            history.push(json!({"type": "SENT", "message_id": msg, "time": ms(sent),
                                "email_seq_number": seq.to_string(), "subject": subject}));
            let mut row = json!({"lead_name": "Lead", "lead_email": email, "lead_category": null,
                "sequence_number": seq, "stats_id": stats_id, "email_campaign_seq_id": seq,
                "email_subject": subject, "sent_time": ms(sent), "open_time": null,
                "click_time": null, "reply_time": null, "open_count": 0, "click_count": 0,
                "is_unsubscribed": unsubscribed, "is_bounced": false});
            if l % 2 == 0 {
                row["lead_id"] = json!(id);
            }
            if rng.below(3) == 0 && seq == steps {
                let mut e = common("EMAIL_BOUNCE");
                e["stats_id"] = json!(stats_id);
                e["event_timestamp"] = json!(ms(sent + 7_000));
                e["sent_message"] = json!({"message_id": msg, "time": ms(sent)});
                e["bounce_message"] = json!({"text": "550 5.1.1 user unknown"});
                events.push((format!("{email} bounce {seq}"), e));
                row["is_bounced"] = json!(true);
            } else {
                if rng.below(3) > 0 {
                    let t = sent + 1_800_000 + 457;
                    let mut e = common("EMAIL_OPEN");
                    e["time_opened"] = json!(ms(t));
                    events.push((format!("{email} open {seq}"), e));
                    row["open_time"] = json!(ms(t));
                    row["open_count"] = json!(1);
                    if rng.below(3) == 0 {
                        let t = t + 60_000;
                        let mut e = common("EMAIL_LINK_CLICK");
                        e["time_clicked"] = json!(ms(t));
                        e["link_clicked"] = json!(["https://recon.example/demo"]);
                        events.push((format!("{email} click {seq}"), e));
                        row["click_time"] = json!(ms(t));
                        row["click_count"] = json!(1);
                    }
                }
                if rng.below(3) == 0 {
                    let t = sent + 7_200_000 + 789;
                    let reply = format!("<reply-{l}-{seq}@lead.example>");
                    let mut e = common("EMAIL_REPLY");
                    e["time_replied"] = json!(ms(t));
                    e["preview_text"] = json!("Interested");
                    e["reply_message"] =
                        json!({"message_id": reply, "text": "Interested", "time": ms(t)});
                    events.push((format!("{email} reply {seq}"), e));
                    row["reply_time"] = json!(ms(t));
                    history.push(json!({"type": "REPLY", "message_id": reply, "time": ms(t)}));
                }
            }
            rows.push(row);
        }
        if unsubscribed {
            events.push((
                format!("{email} unsubscribe"),
                json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": email, "lead_name": "Lead",
                       "campaign_name": "Recon", "campaign_id": 77, "unsubscribed_client_id_map": {}}),
            ));
        }
        out.push(Lead {
            email,
            id,
            events,
            rows,
            history,
        });
    }
    out
}

/// The stand-in serving the stream's statistics in pages of 7 (whatever
/// the limit asked), an unreadable entry (partial data), each lead's id and
/// message history; `broken_history` answers 404.
async fn smartlead_with(leads: &[Lead], broken_history: Option<u64>) -> MockServer {
    let s = http::server().await;
    let mut rows: Vec<Value> = leads.iter().flat_map(|l| l.rows.clone()).collect();
    rows.insert(
        3,
        json!({"lead_name": "row without an e-mail", "sequence_number": 1}),
    );
    let total = rows.len();
    http::route_fn(
        &s,
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/statistics"),
        move |r| {
            let offset: usize = http::query_param(r, "offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = rows.iter().skip(offset).take(7).cloned().collect();
            json!({"total_stats": total.to_string(), "data": page, "offset": offset, "limit": 7})
                .to_string()
        },
    )
    .await;
    let by_email: BTreeMap<String, u64> = leads.iter().map(|l| (l.email.clone(), l.id)).collect();
    http::route_fn(&s, "GET /api/v1/leads/", move |r| {
        let email = http::query_param(r, "email").unwrap_or_default();
        match by_email.get(&email) {
            Some(id) => json!({"id": id, "email": email}).to_string(),
            None => "{}".into(),
        }
    })
    .await;
    for l in leads {
        let body = if broken_history == Some(l.id) {
            // Not a history: read as none (its message ids are unknown).
            json!({"error": "not found"})
        } else {
            json!({"history": l.history})
        };
        http::route(
            &s,
            &format!(
                "GET /api/v1/campaigns/{CAMPAIGN}/leads/{}/message-history",
                l.id
            ),
            &body.to_string(),
        )
        .await;
    }
    s
}

fn api(s: &MockServer) -> smartlead::adapters::http::smartlead::Api {
    smartlead::adapters::http::smartlead::Api::new(&format!("{}/api/v1", s.uri()), "k").with_budget(
        std::sync::Arc::new(smartlead::app::budget::InProcess::default()),
        100_000,
    )
}

fn options(dry_run: bool) -> Options {
    Options {
        since: None,
        dry_run,
        dedup_ttl_days: smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
        now: EventTime::from_millis(received_ms()).expect("now"),
        deadline: Instant::now() + Duration::from_secs(120),
    }
}

async fn run(
    s: &MockServer,
    q: &ConsumerQueue,
    dry_run: bool,
) -> smartlead::app::reconcile::Report {
    let done = Arc::new(Mutex::new(Vec::new()));
    let d = done.clone();
    let progress = move |i: usize, n: usize| d.lock().unwrap().push((i, n));
    let report = reconcile::reconcile(
        &api(s),
        &q.consumer.store,
        q,
        &[CAMPAIGN.to_owned()],
        &options(dry_run),
        &progress,
    )
    .await
    .expect("reconcile");
    let p = done.lock().unwrap().clone();
    assert_eq!(
        p.last().map(|(i, n)| (*i, *n)),
        Some((report.leads, report.leads))
    );
    report
}

/// Attributes that come from what SmartLead's statistics do not hold: the
/// sender, reply texts, the campaign's name, and the bounce's own time
/// (a backfilled bounce carries none, so its receive time stands in).
const NOT_IN_STATISTICS: &[&str] = &[
    "last_sender",
    "last_reply_preview",
    "last_reply_subject",
    "campaign_name",
    "last_bounce_at",
    "last_bounce_order",
    "bounce_reason",
    "suppressed_at",
    "suppressed_order",
    "reason",
];

/// `(absorbed keys, state)`: the compact keys each item absorbed (`pk|sk|key`,
/// and any `EVENT#` record), and every other item without them.
async fn state(
    store: &smartlead::adapters::aws::dynamodb::DynamoStore,
) -> (BTreeSet<String>, BTreeMap<String, Value>) {
    let items = store.scan_all().await.expect("scan");
    let mut markers = BTreeSet::new();
    let mut rest = BTreeMap::new();
    for i in &items {
        let mut v = smartlead::adapters::aws::dynamodb::item_to_json(i);
        let pk = v["pk"].as_str().unwrap_or_default().to_owned();
        let sk = v["sk"].as_str().unwrap_or_default().to_owned();
        if pk.starts_with("EVENT#") {
            markers.insert(pk);
            continue;
        }
        // The keys each item absorbed (whichever generation holds them).
        let o = v.as_object_mut().expect("item");
        for attr in [SEEN_ATTR, SEEN_OLD_ATTR] {
            for k in o
                .remove(attr)
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                markers.insert(format!("{pk}|{sk}|{}", k.as_str().unwrap_or_default()));
            }
        }
        o.retain(|a, _| !NOT_IN_STATISTICS.contains(&a.as_str()));
        rest.insert(format!("{pk}|{sk}"), v);
    }
    (markers, rest)
}

/// Equal states, or a panic naming the first differing attributes.
fn same(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>, ctx: &str) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        let (Some(Value::Object(x)), Some(Value::Object(y))) = (x, y) else {
            panic!("{ctx}: item {k} only on one side: {x:?} vs {y:?}");
        };
        let diff: Vec<String> = x
            .keys()
            .chain(y.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|a| x.get(*a) != y.get(*a))
            .map(|a| format!("{a}: {:?} vs {:?}", x.get(a), y.get(a)))
            .collect();
        panic!("{ctx}: item {k} differs: {diff:#?}");
    }
}

#[tokio::test]
async fn reconcile_restores_the_full_streams_state_exactly_once() {
    let mut rng = Rng(0x7ec0_4c11_e5ee_d001);
    // Enough leads that every type's form is well established (three
    // matches at least, see reconcile::MIN_MATCHES).
    let leads = stream(&mut rng, 24);
    let all: Vec<&(String, Value)> = leads.iter().flat_map(|l| &l.events).collect();
    // The reference: every webhook delivered.
    let full = queue().await;
    for (_, e) in &all {
        full.deliver(&e.to_string()).await;
    }
    // The gappy pipeline: a third of the events never arrive (clicks always
    // do: their keys need the clicked links, which statistics lack; see the
    // test below). One of each type is kept so its form can be learned.
    let mut kept_type = BTreeSet::new();
    let mut removed = Vec::new();
    let gappy = queue().await;
    for (name, e) in &all {
        let t = e["event_type"].as_str().unwrap_or_default().to_owned();
        let first_of_type = kept_type.insert(t.clone());
        if !first_of_type && t != "EMAIL_LINK_CLICK" && rng.below(3) == 0 {
            removed.push((name.clone(), e.clone()));
        } else {
            gappy.deliver(&e.to_string()).await;
        }
    }
    let types: BTreeSet<&str> = removed
        .iter()
        .map(|(_, e)| e["event_type"].as_str().unwrap_or_default())
        .collect();
    assert!(removed.len() >= 8, "{removed:?}");
    for t in [
        "EMAIL_SENT",
        "EMAIL_OPEN",
        "EMAIL_REPLY",
        "EMAIL_BOUNCE",
        "LEAD_UNSUBSCRIBED",
    ] {
        assert!(types.contains(t), "no {t} removed: pick another seed");
    }
    assert_ne!(
        state(&full.consumer.store).await,
        state(&gappy.consumer.store).await
    );

    // One 429 on the way: the client waits and goes on.
    let s = smartlead_with(&leads, None).await;
    http::once(&s, 429, Some(1)).await;
    // A dry run reports every gap and changes nothing.
    let before = state(&gappy.consumer.store).await;
    let dry = run(&s, &gappy, true).await;
    assert_eq!(dry.backfilled, 0);
    assert_eq!(dry.gaps.len(), removed.len(), "{:#?}", dry.gaps);
    assert_eq!(dry.unreadable_rows, 1);
    assert_eq!(state(&gappy.consumer.store).await, before);
    // The 429 was answered, once (to the first call: one-off answers go
    // first); the statistics pages after it were answered 200.
    http::verify(&s).await;
    let pages = requests(&s)
        .await
        .iter()
        .skip(1)
        .filter(|r| target(r).contains("/statistics?"))
        .count();
    assert!(pages >= 4, "paged by 7: {pages}");

    // The real run: every gap backfilled, each applied once, but the
    // unsubscribes: only reported (their webhooks may carry a time the
    // statistics lack, and so a key no backfill can share).
    let report = run(&s, &gappy, false).await;
    let unsubscribes: Vec<&Value> = removed
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e["event_type"] == "LEAD_UNSUBSCRIBED")
        .collect();
    assert_eq!(
        report.backfilled,
        removed.len() - unsubscribes.len(),
        "{:#?}",
        report.gaps
    );
    assert_eq!(
        report.reported_only(),
        unsubscribes.len(),
        "{:#?}",
        report.gaps
    );
    assert!(report
        .gaps
        .iter()
        .filter(|g| matches!(g.action, Action::Report { .. }))
        .all(|g| g.event_type == "LEAD_UNSUBSCRIBED"));
    // SmartLead's late unsubscribe webhooks (or the operator acting on the
    // report) complete the state.
    for e in &unsubscribes {
        gappy.deliver(&e.to_string()).await;
    }
    let outcomes = gappy.take_outcomes();
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Processed { .. })));
    let (full_markers, full_state) = state(&full.consumer.store).await;
    let (markers, after) = state(&gappy.consumer.store).await;
    assert!(!markers.is_empty());
    assert_eq!(
        markers, full_markers,
        "the same keys in the same items: each fact once"
    );
    same(&after, &full_state, "after the backfill");

    // Two runs in a row: the second finds nothing and changes nothing.
    let again = run(&s, &gappy, false).await;
    let late_unsubscribes = unsubscribes.len();
    assert!(again.gaps.is_empty(), "{:#?}", again.gaps);
    assert_eq!(again.backfilled, 0);
    assert_eq!(
        state(&gappy.consumer.store).await,
        (markers.clone(), after.clone())
    );

    // SmartLead's late webhooks after the backfill: every one a duplicate.
    assert!(late_unsubscribes > 0);
    for (_, e) in &removed {
        let o = gappy.deliver(&e.to_string()).await;
        assert!(matches!(o, Outcome::Duplicate), "{e}: {o:?}");
    }
    assert_eq!(state(&gappy.consumer.store).await, (markers, after));
}

#[tokio::test]
async fn a_backfill_after_the_webhook_is_a_duplicate() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let leads = stream(&mut rng, 6);
    let all: Vec<&(String, Value)> = leads.iter().flat_map(|l| &l.events).collect();
    let s = smartlead_with(&leads, None).await;
    // Reconcile computes its backfills while the webhooks are still on their way...
    let late = queue().await;
    let mut held = Vec::new();
    for (i, (_, e)) in all.iter().enumerate() {
        let t = e["event_type"].as_str().unwrap_or_default();
        // Unsubscribes are only reported (see above): none held.
        if i > 6 && i % 2 == 0 && t != "EMAIL_LINK_CLICK" && t != "LEAD_UNSUBSCRIBED" {
            held.push(e.clone());
        } else {
            late.deliver(&e.to_string()).await;
        }
    }
    let dry = run(&s, &late, true).await;
    let bodies: Vec<Value> = dry
        .gaps
        .iter()
        .filter_map(|g| match &g.action {
            Action::Backfill { body, .. } => Some(body.clone()),
            Action::Report { .. } | Action::Unverified { .. } => None,
        })
        .collect();
    assert_eq!(bodies.len(), held.len(), "{:#?}", dry.gaps);
    // ... then the webhooks arrive, then the backfills: all duplicates.
    for e in &held {
        assert!(matches!(
            late.deliver(&e.to_string()).await,
            Outcome::Processed { .. }
        ));
    }
    let before = state(&late.consumer.store).await;
    for b in &bodies {
        late.send(reconcile::backfill_message(b))
            .await
            .expect("send");
    }
    assert!(late
        .take_outcomes()
        .iter()
        .all(|o| matches!(o, Outcome::Duplicate)));
    assert_eq!(state(&late.consumer.store).await, before);
}

#[tokio::test]
async fn what_statistics_cannot_key_is_reported_never_backfilled() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let leads = stream(&mut rng, 8);
    let all: Vec<&(String, Value)> = leads.iter().flat_map(|l| &l.events).collect();
    // Lead 3's message history is missing (partial data): its sends cannot be
    // keyed by their message ids. Every click is missing: no links.
    let broken = &leads[3];
    let s = smartlead_with(&leads, Some(broken.id)).await;
    let q = queue().await;
    let mut removed_clicks = 0;
    let mut removed_sends_of_broken = 0;
    let mut kept_sends_of_broken = 0;
    let mut kept_type = BTreeSet::new();
    for (name, e) in &all {
        let t = e["event_type"].as_str().unwrap_or_default().to_owned();
        let first = kept_type.insert(t.clone());
        let of_broken = name.starts_with(&format!("{} ", broken.email));
        if !first && t == "EMAIL_LINK_CLICK" {
            removed_clicks += 1;
        } else if !first && of_broken && t == "EMAIL_SENT" && removed_sends_of_broken == 0 {
            removed_sends_of_broken += 1;
        } else {
            if of_broken && t == "EMAIL_SENT" {
                kept_sends_of_broken += 1;
            }
            q.deliver(&e.to_string()).await;
        }
    }
    assert!(removed_clicks > 0 && removed_sends_of_broken > 0);
    let before = state(&q.consumer.store).await;
    let report = run(&s, &q, false).await;
    assert_eq!(report.backfilled, 0, "{:#?}", report.gaps);
    let reported = |t: &str| {
        report
            .gaps
            .iter()
            .filter(|g| g.event_type == t && matches!(g.action, Action::Report { .. }))
            .count()
    };
    let unverified = report
        .gaps
        .iter()
        .filter(|g| g.event_type == "EMAIL_SENT" && matches!(g.action, Action::Unverified { .. }))
        .count();
    // Only the lead without a history has events that cannot be checked.
    assert!(report
        .gaps
        .iter()
        .filter(|g| matches!(g.action, Action::Unverified { .. }))
        .all(|g| g.lead == broken.email));
    assert_eq!(unverified, removed_sends_of_broken + kept_sends_of_broken);
    assert_eq!(reported("EMAIL_SENT"), 0);
    // Click counts are count mismatches, not gaps.
    assert_eq!(reported("EMAIL_LINK_CLICK"), 0);
    assert!(report
        .count_mismatches
        .iter()
        .any(|g| g.event_type == "EMAIL_LINK_CLICK"));
    assert_eq!(state(&q.consumer.store).await, before);
}

#[tokio::test]
async fn the_scheduled_run_covers_active_campaigns_over_the_lookback_and_queues_backfills() {
    let mut rng = Rng(0x5c4e_d01e_0000_0001);
    let leads = stream(&mut rng, 4);
    let s = smartlead_with(&leads, None).await;
    http::route(
        &s,
        "GET /api/v1/campaigns",
        &json!([{"id": 77, "status": "ACTIVE"}, {"id": 78, "status": "PAUSED"},
                {"id": 79, "status": "DRAFTED"}])
        .to_string(),
    )
    .await;
    // Every webhook arrived but one send (lead 1's first, two days ago;
    // the lookback is four days).
    let q = queue().await;
    let all: Vec<&(String, Value)> = leads.iter().flat_map(|l| &l.events).collect();
    let missing = "lead1@recon.example sent 1";
    for (name, e) in &all {
        if name != missing {
            q.deliver(&e.to_string()).await;
        }
    }
    let sqs_cfg = smartlead::adapters::aws::local_sdk_config(&common::moto().endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&sqs_cfg);
    let url = common::new_queue(&sqs, "recon-sched").await;
    let job = reconcile::Scheduled {
        api: api(&s),
        store: smartlead::adapters::aws::dynamodb::DynamoStore::new(
            q.consumer.store.client.clone(),
            q.consumer.store.table.clone(),
        ),
        queue: smartlead::adapters::aws::SqsQueue {
            client: sqs.clone(),
            queue_url: url.clone(),
        },
        lookback_hours: 4 * 24,
        dedup_ttl_days: smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
        metrics: smartlead::metrics::Metrics::disabled(),
    };
    let report = job
        .run(Instant::now() + Duration::from_secs(60))
        .await
        .expect("run");
    assert_eq!(report.campaigns, 1, "only the active campaign");
    assert!(requests(&s)
        .await
        .iter()
        .all(|r| !target(r).contains("/campaigns/78")));
    assert_eq!(report.backfilled, 1, "{:#?}", report.gaps);
    let values = reconcile::metric_values(&report);
    assert_eq!(values[0], ("GapsFound", 1.0));
    assert_eq!(values[1], ("EventsBackfilled", 1.0));
    let got = common::receive(&sqs, &url).await;
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    let (_, want) = all.iter().find(|(n, _)| n == missing).unwrap();
    assert_eq!(
        smartlead::SmartleadEvent::from_value(body)
            .unwrap()
            .dedup_key(),
        smartlead::SmartleadEvent::from_value(want.clone())
            .unwrap()
            .dedup_key()
    );
    // A lookback of an hour does not reach back to it (still unapplied:
    // the message waits in the queue).
    let narrow = reconcile::Scheduled {
        lookback_hours: 1,
        ..job
    };
    let report = narrow
        .run(Instant::now() + Duration::from_secs(60))
        .await
        .expect("run");
    assert_eq!(report.backfilled, 0, "{:#?}", report.gaps);
}

#[tokio::test]
async fn out_of_time_it_stops_checking_and_says_how_many_leads_are_left() {
    let mut rng = Rng(0x7ec0_4c11_e5ee_d001);
    let leads = stream(&mut rng, 3);
    let s = smartlead_with(&leads, None).await;
    let q = queue().await;
    let mut opts = options(true);
    // Too close to the deadline to check any lead.
    opts.deadline = Instant::now() + reconcile::STOP_BEFORE_DEADLINE / 2;
    let report = reconcile::reconcile(
        &api(&s),
        &q.consumer.store,
        &q,
        &[CAMPAIGN.to_owned()],
        &opts,
        &|_, _| {},
    )
    .await
    .expect("reconcile");
    assert_eq!(report.leads_left, 3);
    assert_eq!(report.facts_checked, 0);
    // Published, for the alarm: leads left unchecked are not "no gaps".
    assert!(reconcile::metric_values(&report).contains(&("LeadsLeft", 3.0)));
}

/// A reply SmartLead delivered naming the lead by id only (filed under
/// `LEAD#id:<id>`) is stored: no gap, nothing backfilled.
#[tokio::test]
async fn a_fact_filed_under_the_lead_id_is_stored() {
    let t = ms(received_ms() - 86_400_000 + 789);
    let sent = ms(received_ms() - 2 * 86_400_000);
    let q = queue().await;
    for i in 0..4 {
        // Replies of other leads, by e-mail: the form is well established.
        let body = json!({"event_type": "EMAIL_REPLY", "campaign_id": 77, "sequence_number": 1,
            "to_email": format!("other{i}@recon.example"), "time_replied": t,
            "reply_message": {"message_id": format!("<r{i}@lead.example>"), "time": t}});
        q.deliver(&body.to_string()).await;
    }
    let by_id = json!({"event_type": "EMAIL_REPLY", "campaign_id": 77, "sequence_number": 1,
        "lead_id": 9001, "time_replied": t,
        "reply_message": {"message_id": "<r-9001@lead.example>", "time": t}});
    q.deliver(&by_id.to_string()).await;
    let s = http::server().await;
    let mut rows = vec![
        json!({"lead_email": "idonly@recon.example", "lead_id": 9001,
        "sequence_number": 1, "sent_time": sent, "reply_time": t, "reply_count": 1}),
    ];
    for i in 0..4 {
        rows.push(
            json!({"lead_email": format!("other{i}@recon.example"), "lead_id": 9100 + i,
            "sequence_number": 1, "sent_time": sent, "reply_time": t, "reply_count": 1}),
        );
    }
    http::route(
        &s,
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/statistics"),
        &json!({"data": rows}).to_string(),
    )
    .await;
    http::route(
        &s,
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/leads/9001/message-history"),
        &json!({"history": [{"type": "REPLY", "message_id": "<r-9001@lead.example>", "time": t}]})
            .to_string(),
    )
    .await;
    for i in 0..4 {
        http::route(
            &s,
            &format!("GET /api/v1/campaigns/{CAMPAIGN}/leads/{}/message-history", 9100 + i),
            &json!({"history": [{"type": "REPLY", "message_id": format!("<r{i}@lead.example>"), "time": t}]})
                .to_string(),
        )
        .await;
    }
    let report = run(&s, &q, false).await;
    let replies: Vec<_> = report
        .gaps
        .iter()
        .filter(|g| g.event_type == "EMAIL_REPLY")
        .collect();
    assert!(replies.is_empty(), "{replies:#?}");
    assert!(q.take_outcomes().is_empty(), "nothing backfilled");
}

/// Webhooks carry milliseconds, the statistics whole seconds: only the
/// opens that came at `.000` match (three: enough matches, but not 90% of
/// the stored). The others, stored under their real keys (the items count
/// them), must not be backfilled: reported only.
#[tokio::test]
async fn one_coincidental_match_backfills_nothing_when_times_are_coarser() {
    let q = queue().await;
    let base = received_ms() / 1000 * 1000 - 86_400_000;
    let mut rows = Vec::new();
    for l in 0..8i64 {
        let email = format!("ms{l}@recon.example");
        let second = base + l * 60_000;
        let webhook_ms = if l < 3 { second } else { second + 457 };
        // Lead 7's open never arrived.
        if l != 7 {
            let e = json!({"event_type": "EMAIL_OPEN", "campaign_id": 77, "sequence_number": 1,
                "to_email": email, "time_opened": ms(webhook_ms)});
            q.deliver(&e.to_string()).await;
        }
        rows.push(json!({"lead_email": email, "sequence_number": 1,
            "open_time": ms(second), "open_count": 1}));
    }
    let s = http::server().await;
    http::route(
        &s,
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/statistics"),
        &json!({"data": rows}).to_string(),
    )
    .await;
    let before = state(&q.consumer.store).await;
    let report = run(&s, &q, false).await;
    assert_eq!(report.backfilled, 0, "{:#?}", report.gaps);
    let opens: Vec<_> = report
        .gaps
        .iter()
        .filter(|g| g.event_type == "EMAIL_OPEN")
        .collect();
    assert_eq!(opens.len(), 5, "{opens:#?}");
    assert!(opens
        .iter()
        .all(|g| matches!(g.action, Action::Report { .. })));
    assert_eq!(state(&q.consumer.store).await, before);
}

async fn statistics_answer(
    body: &'static str,
) -> Result<reconcile::Report, reconcile::ReconcileError> {
    let s = http::server().await;
    http::route(
        &s,
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/statistics"),
        body,
    )
    .await;
    let q = queue().await;
    tokio::time::timeout(
        Duration::from_secs(30),
        reconcile::reconcile(
            &api(&s),
            &q.consumer.store,
            &q,
            &[CAMPAIGN.to_owned()],
            &options(true),
            &|_, _| {},
        ),
    )
    .await
    .expect("ends")
}

#[tokio::test]
async fn unknown_statistics_and_repeating_pages_are_errors_not_no_gaps() {
    for bad in [
        r#"{"error": "campaign not found"}"#,
        r#"{"ok": true}"#,
        "not json",
    ] {
        let e = statistics_answer(bad).await.expect_err(bad);
        assert!(
            matches!(
                e,
                reconcile::ReconcileError::Api(
                    smartlead::adapters::http::smartlead::ApiError::Unexpected { .. }
                )
            ),
            "{bad}: {e}"
        );
    }
    // A full page served whatever the offset, with a `count` of its own size
    // (not a total): the second page repeats the first.
    let page: Vec<Value> = (0..reconcile::PAGE_SIZE)
        .map(|i| json!({"lead_email": format!("l{i}@x.example"), "stats_id": format!("s{i}"), "sequence_number": 1}))
        .collect();
    let body: &'static str = Box::leak(
        json!({"count": reconcile::PAGE_SIZE, "data": page})
            .to_string()
            .into_boxed_str(),
    );
    let e = statistics_answer(body).await.expect_err("repeats");
    assert!(e.to_string().contains("repeating"), "{e}");
    // An empty page ends.
    let r = statistics_answer(r#"{"data": []}"#).await.expect("empty");
    assert_eq!(r.leads, 0);
}

/// Every event of a 4-lead stream delivered but lead 1's first send; then
/// the tests change the table before reconciling.
async fn one_missing_send() -> (MockServer, ConsumerQueue, Value) {
    let mut rng = Rng(0x5c4e_d01e_0000_0001);
    let leads = stream(&mut rng, 4);
    let s = smartlead_with(&leads, None).await;
    let q = queue().await;
    let missing = "lead1@recon.example sent 1";
    let mut gone = Value::Null;
    for (name, e) in leads.iter().flat_map(|l| &l.events) {
        if name == missing {
            gone = e.clone();
        } else {
            q.deliver(&e.to_string()).await;
        }
    }
    (s, q, gone)
}

#[tokio::test]
async fn keys_in_the_archive_count_as_stored_and_a_gap_beside_them_is_backfilled_once() {
    let (s, q, _) = one_missing_send().await;
    // The lead's campaign item has archived every key it absorbed, as the
    // store does after rotations (`SEEN#<pk>` item, `ek_gen` counting the
    // generations): the delivered events are known only to the archive.
    let store = &q.consumer.store;
    let (pk, sk) = (
        "LEAD#lead1@recon.example".to_owned(),
        format!("CAMPAIGN#{CAMPAIGN}"),
    );
    let item = common::raw_item(store, &pk, &sk).await;
    let keys = item[SEEN_ATTR].clone();
    let (apk, ask) = smartlead::adapters::aws::dynamodb::archive_key(&pk, &sk, 0);
    store
        .client
        .update_item()
        .table_name(&store.table)
        .key("pk", AttributeValue::S(apk))
        .key("sk", AttributeValue::S(ask))
        .update_expression("ADD #ek :keys")
        .expression_attribute_names("#ek", SEEN_ATTR)
        .expression_attribute_values(":keys", keys)
        .send()
        .await
        .expect("archive");
    store
        .client
        .update_item()
        .table_name(&store.table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S(sk.clone()))
        .update_expression("SET #gen = :one REMOVE #ek, #old")
        .expression_attribute_names("#ek", SEEN_ATTR)
        .expression_attribute_names("#old", SEEN_OLD_ATTR)
        .expression_attribute_names("#gen", smartlead::adapters::aws::dynamodb::SEEN_GEN_ATTR)
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("rotate");
    let report = run(&s, &q, false).await;
    assert_eq!(report.gaps.len(), 1, "{:#?}", report.gaps);
    let g = &report.gaps[0];
    assert_eq!(
        (g.lead.as_str(), g.event_type),
        ("lead1@recon.example", "EMAIL_SENT")
    );
    assert_eq!(report.backfilled, 1, "{:#?}", report.gaps);
    let after = state(store).await;
    let again = run(&s, &q, false).await;
    assert!(again.gaps.is_empty(), "{:#?}", again.gaps);
    assert_eq!(again.backfilled, 0);
    assert_eq!(state(store).await, after, "a second run changes nothing");
}

/// A regression: the scheduled reconcile read its API key once, at cold
/// start, so after a rotation a warm instance called SmartLead with the
/// old key (401) until it was recycled. Wired as the function wires it
/// (`smartlead_reconcile::wire` from its environment, SSM and SQS on moto), a run
/// after the parameter changed and `SECRET_REFRESH_SECONDS` passed sends
/// the new key.
#[tokio::test]
async fn a_warm_scheduled_run_uses_the_rotated_api_key() {
    use smartlead::config::FromEnv;
    let s = http::server().await;
    http::route(&s, "GET /api/v1/campaigns", "[]").await;
    let moto = common::moto().endpoint();
    let ssm = aws_sdk_ssm::Client::new(&smartlead::adapters::aws::local_sdk_config(&moto).await);
    let param = format!("/{}/smartlead-key", common::unique("recon"));
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name(&param)
            .value(value)
            .overwrite(true)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
    };
    put("key-1").await.expect("put");
    let table = common::unique("state");
    common::store_at(&common::dynamodb().endpoint(), &table).await;
    let sdk = common::sdk_with_endpoints(
        &common::dynamodb().endpoint(),
        &[("SSM", moto.clone()), ("SQS", moto.clone())],
    )
    .await;
    let queue_url =
        common::new_queue(&smartlead::aws_sdk_sqs::Client::new(&sdk), "recon-key").await;
    let base = format!("{}/api/v1", s.uri());
    let env = smartlead::config::Env::from_pairs(&[
        ("TABLE_NAME", &table),
        ("QUEUE_URL", &queue_url),
        ("SMARTLEAD_API_KEY_PARAM", &param),
        ("SMARTLEAD_API_BASE", &base),
        ("SECRET_REFRESH_SECONDS", "1"),
        ("METRICS_DISABLED", "1"),
    ]);
    let config = smartlead::config::ReconcileConfig::from_env(env).expect("config");
    let job = smartlead_reconcile::wire(&sdk, config)
        .await
        .expect("wired");
    let deadline = || Instant::now() + Duration::from_secs(30);
    job.run(deadline()).await.expect("first run");
    put("key-2").await.expect("rotate");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    job.run(deadline()).await.expect("run after the rotation");
    let keys: Vec<Option<String>> = requests(&s)
        .await
        .iter()
        .map(|r| http::query_param(r, "api_key"))
        .collect();
    assert_eq!(keys, [Some("key-1".into()), Some("key-2".into())]);
}
