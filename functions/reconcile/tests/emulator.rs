//! The built reconcile `bootstrap` under the Lambda Runtime Interface
//! Emulator, against DynamoDB Local, moto's SQS and the SmartLead stand-in
//! serving one active campaign whose statistics hold one event the table
//! lacks: the invoke answers one gap backfilled, and the queue holds that
//! event's webhook, with the real webhook's key.

use serde_json::{json, Value};
use smartlead::domain::time::EventTime;
use test_support::Function;

const CAMPAIGN: u64 = 77;
const LEAD: &str = "lead@recon.example";

/// The send of step `seq` as SmartLead's webhook carries it.
fn sent(seq: u32, at: EventTime) -> Value {
    json!({"event_type": "EMAIL_SENT", "to_email": LEAD, "to_name": "Lead",
           "from_email": "alex@outreach.example", "campaign_id": CAMPAIGN,
           "campaign_name": "Recon", "sequence_number": seq,
           "time_sent": at.to_string(), "stats_id": format!("st-{seq}"),
           "message_id": format!("<sent-{seq}@mail.outreach.example>"),
           "custom_subject": format!("Step {seq}")})
}

fn key(webhook: &Value) -> String {
    smartlead::SmartleadEvent::from_value(webhook.clone())
        .expect("event")
        .dedup_key()
        .to_string()
}

#[tokio::test]
async fn built_binary_backfills_the_one_gap_through_the_emulator() {
    let ddb = test_support::standins::start_dynamodb_any().unwrap_or_else(|e| panic!("{e}"));
    let moto = test_support::standins::start_moto_any().unwrap_or_else(|e| panic!("{e}"));
    let client = test_support::state_table(&ddb.endpoint(), "state").await;
    let sqs_cfg = smartlead::adapters::aws::local_sdk_config(&moto.endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&sqs_cfg);
    let queue_url = test_support::create_queue(&sqs, "webhooks").await;

    // Four steps sent an hour apart; the last one's webhook never arrived
    // (the three that did establish the form: reconcile::MIN_MATCHES).
    let now = EventTime::now().millis() / 1000 * 1000;
    let at = |h: i64| EventTime::from_millis(now - h * 3_600_000 + 123).expect("time");
    let steps: Vec<(u32, EventTime)> = (1..=4).map(|seq| (seq, at(6 - seq as i64))).collect();
    let second = sent(4, at(2));
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(client.clone(), "state");
    for &(seq, t) in &steps[..3] {
        let ev = smartlead::SmartleadEvent::from_value(sent(seq, t)).expect("event");
        let plan = smartlead::domain::plan::plan(&ev, t, &Default::default());
        smartlead::app::store::Dedup::apply(&store, &plan, &format!("m-{seq}"))
            .await
            .expect("apply");
    }

    let s = test_support::standins::StandIn::start().await;
    s.route(
        "GET /api/v1/campaigns",
        &json!([{"id": CAMPAIGN, "status": "ACTIVE"}]).to_string(),
    );
    let row = |seq: u32, t: EventTime| {
        json!({"lead_name": "Lead", "lead_email": LEAD, "lead_id": 5000,
               "sequence_number": seq, "stats_id": format!("st-{seq}"),
               "email_subject": format!("Step {seq}"), "sent_time": t.to_string(),
               "open_time": null, "click_time": null, "reply_time": null,
               "open_count": 0, "click_count": 0,
               "is_unsubscribed": false, "is_bounced": false})
    };
    s.route(
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/statistics"),
        &json!({"total_stats": "4", "data": steps.iter().map(|&(seq, t)| row(seq, t)).collect::<Vec<_>>(),
                "offset": 0, "limit": 100})
        .to_string(),
    );
    let history: Vec<Value> = steps
        .iter()
        .map(|(seq, t)| {
            json!({"type": "SENT", "message_id": format!("<sent-{seq}@mail.outreach.example>"),
                   "time": t.to_string(), "email_seq_number": seq.to_string()})
        })
        .collect();
    s.route(
        &format!("GET /api/v1/campaigns/{CAMPAIGN}/leads/5000/message-history"),
        &json!({ "history": history }).to_string(),
    );

    let (ddb_url, sqs_url, api) = (ddb.endpoint(), moto.endpoint(), format!("{}/api/v1", s.url));
    let f = Function::start(
        "ReconcileFunction",
        env!("CARGO_BIN_EXE_smartlead-reconcile"),
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB", &ddb_url),
            ("AWS_ENDPOINT_URL_SQS", &sqs_url),
            ("TABLE_NAME", "state"),
            ("QUEUE_URL", &queue_url),
            ("SMARTLEAD_API_KEY", "k"),
            ("SMARTLEAD_API_BASE", &api),
            ("LOOKBACK_HOURS", "48"),
            // Room for its 30 s stop before the deadline (and 20 s more).
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "120"),
        ],
    );
    let out = f
        .invoke(
            &serde_json::from_str(&test_support::fixture("schedule", "reconcile")).expect("json"),
        )
        .await;
    assert_eq!(
        out,
        json!({"gaps": 1, "unverified": 0, "backfilled": 1, "reported_only": 0,
               "count_mismatches": 0, "leads_left": 0})
    );
    let got = test_support::store::receive(&sqs, &queue_url).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let body: Value = serde_json::from_str(got[0].body().unwrap_or_default()).expect("body");
    assert_eq!(key(&body), key(&second), "the missing send, as its webhook");
    let source = got[0]
        .message_attributes()
        .and_then(|a| a.get("source"))
        .and_then(|v| v.string_value());
    assert_eq!(source, Some("reconcile"));
}
