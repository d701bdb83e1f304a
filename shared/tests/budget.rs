//! The rate budgets in DynamoDB Local, shared by several "processes" (each
//! a `DynamoBudget` with its own client and memory, on one table), against
//! stand-ins that count what arrives with sliding windows.
//!
//! The limits only Slack and SmartLead enforce:
//! - Slack's incoming webhooks take one message a second
//!   (<https://api.slack.com/docs/rate-limits>, incoming webhooks);
//! - SmartLead allows the plan's requests a minute per API key across all
//!   endpoints (60 on the standard plan, 10 a second at most), states them
//!   in `x-ratelimit-limit` / `-remaining` / `-reset` and answers 429 with
//!   `Retry-After` past them (<https://api.smartlead.ai/reference/rate-limits>,
//!   <https://api.smartlead.ai/guides/rate-limits>).
//!
//! Bounds are what the budget guarantees with its margin
//! (`smartlead::app::budget::JITTER`), not exact timings.

mod common;

use common::{dynamodb, fresh_store};
use serde_json::json;
use smartlead::adapters::aws::dynamodb::budget::DynamoBudget;
use smartlead::adapters::http::slack::SlackNotifier;
use smartlead::adapters::http::smartlead::{Api, ApiError};
use smartlead::app::budget::{Destination, RateBudget};
use smartlead::app::effects::Notifier;
use smartlead::domain::event::SmartleadEvent;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::standins::limits::{most_in_any, SlackLimit, SmartleadLimit};

/// `n` processes sharing the budgets of one new table: its name, and a
/// budget each (own SDK client, own memory of the items).
async fn processes(n: usize) -> (String, Vec<Arc<DynamoBudget>>) {
    let table = fresh_store().await.table;
    let mut budgets = Vec::new();
    for _ in 0..n {
        let cfg = smartlead::adapters::aws::local_sdk_config(&dynamodb().endpoint()).await;
        let client = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
        budgets.push(Arc::new(DynamoBudget::new(client, table.clone())));
    }
    (table, budgets)
}

fn reply() -> SmartleadEvent {
    let body = json!({"event_type": "EMAIL_REPLY", "to_email": "pat@fx.example", "campaign_id": 9});
    SmartleadEvent::from_slice(body.to_string().as_bytes()).expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smartlead_calls_of_several_processes_stay_inside_the_keys_budget() {
    // 300 a minute for the key, one call every 201.5 ms ((60 s + JITTER) /
    // 299): five a second, where three processes paced alone would send 15
    // and meet the stand-in's 429s past 10.
    let smartlead = SmartleadLimit::start_with(300, 10).await.expect("stand-in");
    let (_, budgets) = processes(3).await;
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for budget in &budgets {
        let api = Arc::new(Api::new(&smartlead.base, "KEY-1").with_budget(budget.clone(), 300));
        for _ in 0..3 {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                loop {
                    match api.get_webhook("1", stop).await {
                        Ok(_) => ok += 1,
                        Err(e) => return (ok, e),
                    }
                }
            }));
        }
    }
    let mut made = 0;
    for t in tasks {
        let (ok, stopped) = t.await.expect("task");
        made += ok;
        // Each caller stops on a slot past its deadline: told when to come
        // back, not lost.
        assert!(
            matches!(stopped, ApiError::Throttled { .. }) && stopped.retry_after().is_some(),
            "{stopped}"
        );
    }
    let calls = smartlead.calls();
    let refused: Vec<_> = calls.iter().filter(|c| !c.accepted()).collect();
    assert!(refused.is_empty(), "over SmartLead's limit: {refused:?}");
    let times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    // 5 a second; 7 with arrivals up to JITTER apart from their slots.
    let most = most_in_any(&times, Duration::from_secs(1));
    assert!(most <= 7, "{most} calls in one second");
    assert_eq!(calls.len(), made);
    // ~20 slots in 4 s: the processes used the budget, not a fraction of it.
    assert!(made >= 12, "only {made} calls in 4 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slack_alerts_of_several_processes_go_one_a_second_and_none_is_lost() {
    let slack = SlackLimit::start().await.expect("stand-in");
    let url = slack.webhook("T0/B0/wave");
    let (_, budgets) = processes(3).await;
    let notifiers: Vec<Arc<SlackNotifier>> = budgets
        .iter()
        .map(|b| Arc::new(SlackNotifier::new(url.clone()).with_budget(b.clone())))
        .collect();
    // Six alerts at once; slots 1.25 s apart; the deadline leaves room for 4.
    let deadline = Instant::now() + Duration::from_millis(4_000);
    let alerts = (0..6).map(|i| {
        let n = notifiers[i % notifiers.len()].clone();
        tokio::spawn(async move { n.notify(&reply(), "k", deadline).await })
    });
    let results: Vec<_> = futures::future::join_all(alerts).await;
    let mut sent = 0;
    for r in results {
        match r.expect("task") {
            Ok(()) => sent += 1,
            Err(e) => {
                let after = e.retry_after().unwrap_or_else(|| panic!("no wait in {e}"));
                assert!(
                    after > Duration::ZERO && after < Duration::from_secs(6),
                    "{after:?}"
                );
            }
        }
    }
    let calls = slack.calls();
    // Slots are 1.25 s apart: only a request held up more than 250 ms
    // on a loaded machine can land inside Slack's second, and then its 429
    // pauses the budget and it is tried again (nothing is lost). One such
    // refusal at most; none on an idle machine.
    let refused = calls.iter().filter(|c| !c.accepted()).count();
    assert!(refused <= 1, "over Slack's limit: {calls:?}");
    let times: Vec<Instant> = calls
        .iter()
        .filter(|c| c.accepted())
        .map(|c| c.at)
        .collect();
    assert!(
        most_in_any(&times, Duration::from_secs(1)) <= 1,
        "{times:?}"
    );
    assert_eq!(calls.len(), sent + refused);
    assert!((2..=4).contains(&sent), "{sent} of 6 sent");
}

/// A SmartLead stand-in whose first answer is a 429 with `Retry-After: 2`:
/// the arrival times of all requests.
async fn throttled_once() -> (wiremock::MockServer, Arc<Mutex<Vec<Instant>>>) {
    use wiremock::{matchers::any, Mock, MockServer, Request, ResponseTemplate};
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    Mock::given(any())
        .respond_with(move |_: &Request| {
            let mut t = seen.lock().expect("lock");
            t.push(Instant::now());
            match t.len() {
                1 => ResponseTemplate::new(429).insert_header("retry-after", "2"),
                _ => ResponseTemplate::new(200).set_body_string(r#"{"ok":true}"#),
            }
        })
        .mount(&server)
        .await;
    (server, times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_with_retry_after_to_one_process_makes_every_process_wait() {
    let (server, times) = throttled_once().await;
    let (_, budgets) = processes(2).await;
    let base = format!("{}/api/v1", server.uri());
    let api = |b: &Arc<DynamoBudget>| Api::new(&base, "KEY-1").with_budget(b.clone(), 600);
    let (a, b) = (api(&budgets[0]), api(&budgets[1]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = tokio::spawn(async move { a.get_webhook("1", deadline).await });
    while times.lock().expect("lock").is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Process A has its 429 (and writes the pause); B calls now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.get_webhook("2", deadline).await.expect("B's call");
    first.await.expect("task").expect("A's retry");
    let t = times.lock().expect("lock").clone();
    assert_eq!(t.len(), 3, "the 429, A's retry, B's call");
    for later in &t[1..] {
        let gap = later.duration_since(t[0]);
        assert!(
            gap >= Duration::from_millis(1_900),
            "a call {gap:?} after the 429"
        );
    }
}

#[tokio::test]
async fn a_lower_limit_smartlead_states_slows_every_process() {
    use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).insert_header("x-ratelimit-limit", "30"))
        .mount(&server)
        .await;
    let (_, budgets) = processes(2).await;
    let a =
        Api::new(&format!("{}/api/v1", server.uri()), "KEY-1").with_budget(budgets[0].clone(), 60);
    let far = Instant::now() + Duration::from_secs(3600);
    a.get_webhook("1", far).await.expect("ok");
    // Another process, configured for 60 a minute, spaces its calls for 30.
    let dest = Destination::smartlead("KEY-1", 60);
    let slot = || async { Instant::now() + budgets[1].reserve(&dest, far).await.expect("slot") };
    let (s1, s2) = (slot().await, slot().await);
    let gap = s2.duration_since(s1);
    assert!(gap >= Duration::from_millis(1_990), "{gap:?}");
    // (plus the first reservation's extra round trip, when it finds the
    // budget busy: its wait is counted from its last attempt)
    assert!(gap <= Duration::from_millis(3_000), "{gap:?}");
}

#[tokio::test]
async fn a_slot_past_the_deadline_reserves_nothing_and_says_when_it_comes() {
    let (table, budgets) = processes(3).await;
    let dest = Destination::slack("https://hooks.slack.com/services/T0/B0/late");
    let far = Instant::now() + Duration::from_secs(3600);
    for _ in 0..3 {
        budgets[0].reserve(&dest, far).await.expect("slot");
    }
    // The next slot is ~3.75 s away: not within a second.
    let soon = || Instant::now() + Duration::from_secs(1);
    let e = budgets[1]
        .reserve(&dest, soon())
        .await
        .expect_err("too late");
    let after = e.retry_after().expect("a wait");
    assert!(after > Duration::from_millis(3_000), "{after:?}");
    // Asked again (this time without a write), the same answer.
    assert!(budgets[1].reserve(&dest, soon()).await.is_err());
    // Nothing was reserved: a third process gets that very slot.
    let w = budgets[2].reserve(&dest, far).await.expect("slot");
    // (within a second: the two reads are apart by a loaded machine's
    // scheduling, and the slot after it is 1.25 s later)
    assert!(
        w <= after && w + Duration::from_millis(1_000) >= after,
        "{w:?} {after:?}"
    );
    // The item names no secret and goes away when idle.
    let item = common::item(
        &smartlead::adapters::aws::dynamodb::DynamoStore::new(budgets_client().await, table),
        &format!("BUDGET#{}", dest.id),
        "-",
    )
    .await;
    assert!(!item.to_string().contains("late"), "{item}");
    let expires = item["expires_at"].as_i64().expect("TTL");
    let in_two_days = chrono::Utc::now().timestamp() + 2 * 86_400;
    assert!(
        (in_two_days - 60..=in_two_days).contains(&expires),
        "{item}"
    );
}

async fn budgets_client() -> smartlead::aws_sdk_dynamodb::Client {
    let cfg = smartlead::adapters::aws::local_sdk_config(&dynamodb().endpoint()).await;
    smartlead::aws_sdk_dynamodb::Client::new(&cfg)
}
