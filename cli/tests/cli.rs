//! The `smartlead` binary against a stand-in SmartLead API and moto (SQS,
//! SSM, CloudFormation, EventBridge).

use serde_json::{json, Value};
use std::process::Output;
use test_support::standins;
use test_support::standins::{Scripted, StandIn};
use test_support::store::{dynamodb, moto};

const KEY: &str = "sl-test-key-0123456789";
/// The deployed webhook URL the test stacks name, less its secret.
const WEBHOOK_BASE: &str = "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead";

async fn smartlead(args: &[&str], api: &str, key: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_smartlead"));
    cmd.args(args)
        .env("SMARTLEAD_API_BASE", format!("{api}/api/v1"))
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("SMARTLEAD_API_KEY");
    if let Some(k) = key {
        cmd.env("SMARTLEAD_API_KEY", k);
    }
    cmd.output().await.expect("run smartlead")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `smartlead` on AWS alone: no SmartLead API, no key.
async fn aws_only(args: &[&str]) -> Output {
    smartlead(args, "http://unused", None).await
}

/// A stack in moto with queues `Q` and `D` and the outputs given.
async fn create_stack(cfg: &aws_config::SdkConfig, stack: &str, outputs: &[(&str, Value)]) {
    create_stack_with(cfg, stack, json!({}), outputs).await
}

/// [`create_stack`] with more resources (`{"LogicalId": {"Type": ...}}`).
async fn create_stack_with(
    cfg: &aws_config::SdkConfig,
    stack: &str,
    more: Value,
    outputs: &[(&str, Value)],
) {
    let outputs: serde_json::Map<String, Value> = outputs
        .iter()
        .map(|(k, v)| (k.to_string(), json!({ "Value": v })))
        .collect();
    let mut resources = json!({"Q": {"Type": "AWS::SQS::Queue"}, "D": {"Type": "AWS::SQS::Queue"}});
    if let (Some(r), Some(m)) = (resources.as_object_mut(), more.as_object()) {
        r.extend(m.clone());
    }
    let template = json!({ "Resources": resources, "Outputs": outputs });
    aws_sdk_cloudformation::Client::new(cfg)
        .create_stack()
        .stack_name(stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
}

/// A SecureString parameter in moto, as the webhook secret is kept.
async fn put_secret(cfg: &aws_config::SdkConfig, param: &str, value: &str) {
    aws_sdk_ssm::Client::new(cfg)
        .put_parameter()
        .name(param)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn register_list_and_delete_call_smartlead_as_documented() {
    let api = StandIn::start().await;
    let url = "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead/s3cret";
    let o = smartlead(
        &[
            "register",
            "--campaign",
            "123",
            "--url",
            url,
            "--events",
            "EMAIL_REPLY,EMAIL_BOUNCE",
            "--categories",
            "5,6",
        ],
        &api.url,
        Some(KEY),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let calls = api.recorded();
    assert_eq!(calls[0].method, "POST");
    assert_eq!(
        calls[0].target,
        format!("/api/v1/webhook/create?api_key={KEY}")
    );
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(body["webhook_url"], url);
    assert_eq!(body["association_type"], "campaign");
    assert_eq!(body["email_campaign_id"], 123);
    assert_eq!(
        body["event_type_map"],
        json!({"EMAIL_REPLY": true, "EMAIL_BOUNCE": true})
    );
    assert_eq!(body["category_id_map"], json!({"5": true, "6": true}));

    let o = smartlead(
        &["register", "--user", "--url", url, "--id", "77"],
        &api.url,
        Some(KEY),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = smartlead(&["list", "--campaign", "123"], &api.url, Some(KEY)).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = smartlead(&["delete", "--id", "77"], &api.url, Some(KEY)).await;
    assert!(o.status.success(), "{}", text(&o));
    let calls: Vec<(String, String)> = api
        .recorded()
        .into_iter()
        .skip(1)
        .map(|r| (r.method, r.target.split('?').next().unwrap().to_owned()))
        .collect();
    assert_eq!(
        calls,
        [
            ("PUT".into(), "/api/v1/webhook/update/77".into()),
            ("GET".into(), "/api/v1/campaigns/123/webhooks".into()),
            ("DELETE".into(), "/api/v1/webhook/delete".into()),
        ]
    );
}

#[tokio::test]
async fn the_api_key_is_required_and_never_printed() {
    let api = StandIn::start().await;
    let o = smartlead(&["list", "--campaign", "1"], &api.url, None).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("SMARTLEAD_API_KEY"), "{}", text(&o));

    // Refused, then unreachable: the errors say what failed, not the key.
    api.push(Scripted::status(401));
    let o = smartlead(&["list", "--campaign", "1"], &api.url, Some(KEY)).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("401"), "{}", text(&o));
    assert!(!text(&o).contains(KEY));
    let dead = format!("http://127.0.0.1:{}", standins::free_port());
    let o = smartlead(&["delete", "--id", "1"], &dead, Some(KEY)).await;
    assert!(!o.status.success());
    assert!(!text(&o).contains(KEY), "{}", text(&o));
    // Unknown event types are refused before any call.
    let before = api.recorded().len();
    let o = smartlead(
        &[
            "register",
            "--user",
            "--url",
            "https://x",
            "--events",
            "EMAIL_OPEN,NOPE",
        ],
        &api.url,
        Some(KEY),
    )
    .await;
    assert!(!o.status.success());
    assert_eq!(api.recorded().len(), before);
}

async fn sqs() -> smartlead::aws_sdk_sqs::Client {
    smartlead::aws_sdk_sqs::Client::new(
        &smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await,
    )
}

/// The first message a queue gives, with all its attributes.
async fn first_message(
    sqs: &smartlead::aws_sdk_sqs::Client,
    queue: &str,
) -> smartlead::aws_sdk_sqs::types::Message {
    sqs.receive_message()
        .queue_url(queue)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap()
        .remove(0)
}

/// A message onto a queue.
async fn send(sqs: &smartlead::aws_sdk_sqs::Client, queue: &str, body: &str) {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// A state table in moto, named for `name` and this process.
async fn moto_table(name: &str) -> (smartlead::aws_sdk_dynamodb::Client, String) {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(&cfg);
    let table = format!("{name}-{}", std::process::id());
    smartlead::adapters::aws::dynamodb::create_table(&ddb, &table)
        .await
        .unwrap();
    (ddb, table)
}

/// The CLI's SmartLead calls take their slots in the key's rate budget in
/// the stack's table, shared with its functions: a pause another process
/// wrote (a 429 to the consumer) holds them too. SmartLead's limit is per
/// API key across every caller (<https://api.smartlead.ai/reference/rate-limits>).
#[tokio::test]
async fn smartlead_calls_wait_in_the_stacks_shared_rate_budget() {
    use smartlead::app::budget::{now_ms, Destination, RateBudget};
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let (ddb, table) = moto_table("cli-budget").await;
    let stack = format!("cli-budget-{}", std::process::id());
    create_stack(&cfg, &stack, &[("StateTableName", json!(table))]).await;
    let budget = smartlead::adapters::aws::dynamodb::budget::DynamoBudget::new(ddb, table);
    let dest = Destination::smartlead(KEY, 60);
    budget.pause(&dest, now_ms() + 2_500).await.expect("pause");
    let api = StandIn::start().await;
    let started = std::time::Instant::now();
    let args = ["list", "--campaign", "1", "--stack", &stack];
    let o = smartlead(&args, &api.url, Some(KEY)).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("alone"), "{}", text(&o));
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(api.recorded().len(), 1);
    // Its slot is taken: the next one is an interval after it.
    let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let next = budget.reserve(&dest, far).await.expect("slot");
    assert!(next >= std::time::Duration::from_millis(500), "{next:?}");
}

/// A new queue in moto, named for this process.
async fn queue(sqs: &smartlead::aws_sdk_sqs::Client, name: &str) -> String {
    test_support::create_queue(sqs, &format!("{name}-{}", std::process::id())).await
}

async fn depth(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> String {
    use smartlead::aws_sdk_sqs::types::QueueAttributeName as A;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&A::ApproximateNumberOfMessages]
        .clone()
}

/// Runs `redrive` from `dlq` to `queue` and checks all `n` messages moved.
async fn redrive_moves_all(sqs: &smartlead::aws_sdk_sqs::Client, dlq: &str, queue: &str, n: usize) {
    let o = aws_only(&["redrive", "--dlq-url", dlq, "--queue-url", queue]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("moved {n} message(s)")),
        "{}",
        text(&o)
    );
    assert_eq!(depth(sqs, queue).await, n.to_string());
    assert_eq!(depth(sqs, dlq).await, "0");
}

/// A message with one string attribute.
async fn send_with_attribute(
    sqs: &smartlead::aws_sdk_sqs::Client,
    queue: &str,
    body: String,
    (name, value): (&str, &str),
) {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .message_attributes(
            name,
            smartlead::aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn redrive_moves_every_dlq_message_back_with_its_attributes() {
    let sqs = sqs().await;
    let (queue, dlq) = (queue(&sqs, "cli-queue").await, queue(&sqs, "cli-dlq").await);
    for i in 0..25 {
        send_with_attribute(
            &sqs,
            &dlq,
            format!("{{\"event_type\":\"EMAIL_OPEN\",\"n\":{i}}}"),
            ("event_type", "EMAIL_OPEN"),
        )
        .await;
    }
    redrive_moves_all(&sqs, &dlq, &queue, 25).await;
    let m = first_message(&sqs, &queue).await;
    assert_eq!(
        m.message_attributes().unwrap()["event_type"].string_value(),
        Some("EMAIL_OPEN")
    );
}

#[tokio::test]
async fn the_stack_outputs_give_the_url_with_its_secret_and_the_queues() {
    let (_, stack) = webhook_stack("cli-stack", "a b/c", &stack_queues()).await;
    assert_eq!(
        registered_url(&stack).await,
        "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead/a%20b%2Fc"
    );
    let o = aws_only(&["redrive", "--stack", &stack]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("moved 0 message(s)"));
}

/// The outputs naming a state table, a queue and a DLQ.
fn table_and_queues(table: &str, queue: &str, dlq: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("StateTableName", json!(table)),
        ("QueueUrl", json!(queue)),
        ("DeadLetterQueueUrl", json!(dlq)),
    ]
}

/// The outputs naming a test stack's queues `Q` and `D`.
fn stack_queues() -> [(&'static str, Value); 2] {
    [
        ("QueueUrl", json!({"Ref": "Q"})),
        ("DeadLetterQueueUrl", json!({"Ref": "D"})),
    ]
}

/// A secret parameter holding `secret` and a stack with its webhook URL
/// and parameter name among its outputs, both named for `name` and this
/// process: their names.
async fn webhook_stack(name: &str, secret: &str, outputs: &[(&str, Value)]) -> (String, String) {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let param = format!("/{name}-{}/secret", std::process::id());
    put_secret(&cfg, &param, secret).await;
    let stack = format!("{name}-{}", std::process::id());
    let mut all = vec![
        ("WebhookUrl", json!(format!("{WEBHOOK_BASE}/<secret>"))),
        ("WebhookSecretParameterName", json!(param)),
    ];
    all.extend_from_slice(outputs);
    create_stack(&cfg, &stack, &all).await;
    (param, stack)
}

/// The URL `register --stack` gives SmartLead for a campaign webhook.
async fn registered_url(stack: &str) -> Value {
    let api = StandIn::start().await;
    let o = smartlead(
        &["register", "--campaign", "9", "--stack", stack],
        &api.url,
        Some(KEY),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let body: Value = serde_json::from_str(&api.recorded()[0].body).unwrap();
    body["webhook_url"].clone()
}

/// A test bus and the archive of everything it gets.
struct TestBus {
    name: String,
    arn: String,
    archive: String,
}

/// A bus and its archive, named for `name` and this process.
async fn bus_with_archive(eb: &aws_sdk_eventbridge::Client, name: &str) -> TestBus {
    let bus_name = format!("{name}-bus-{}", std::process::id());
    let archive_name = format!("{name}-archive-{}", std::process::id());
    let arn = eb
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let archive = eb
        .create_archive()
        .archive_name(archive_name)
        .event_source_arn(&arn)
        .send()
        .await
        .unwrap()
        .archive_arn
        .unwrap();
    TestBus {
        name: bus_name,
        arn,
        archive,
    }
}

/// `replay` of the bus' archive onto the bus with `flags` (`--from ...`,
/// separated by spaces).
async fn replay_archive(bus: &TestBus, flags: &str) -> Output {
    let mut args = vec![
        "replay",
        "--archive-arn",
        &bus.archive,
        "--bus-arn",
        &bus.arn,
    ];
    args.extend(flags.split_whitespace());
    aws_only(&args).await
}

async fn describe_replay(
    eb: &aws_sdk_eventbridge::Client,
    name: &str,
) -> aws_sdk_eventbridge::operation::describe_replay::DescribeReplayOutput {
    eb.describe_replay().replay_name(name).send().await.unwrap()
}

/// No temporary replay rule is left on the bus.
async fn assert_no_replay_rules(eb: &aws_sdk_eventbridge::Client, bus_name: &str) {
    let left = eb
        .list_rules()
        .event_bus_name(bus_name)
        .send()
        .await
        .unwrap();
    assert!(
        left.rules().iter().all(|r| !r
            .name()
            .unwrap_or_default()
            .starts_with("smartlead-replay-")),
        "{left:?}"
    );
}

/// A pipeline event put on the bus.
async fn put_event(
    eb: &aws_sdk_eventbridge::Client,
    bus_name: &str,
    detail_type: &str,
    detail: Value,
) {
    eb.put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus_name)
                .source("smartlead.webhooks")
                .detail_type(detail_type)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn replay_starts_an_archive_replay_onto_the_bus() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let bus = bus_with_archive(&eb, "cli").await;
    let o = replay_archive(
        &bus,
        "--from 2025-01-01T00:00:00Z --to 2025-02-01T00:00:00Z",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let name = out
        .split_whitespace()
        .nth(1)
        .expect("replay name")
        .to_owned();
    let r = describe_replay(&eb, &name).await;
    assert_eq!(r.event_source_arn(), Some(bus.archive.as_str()));
    assert_eq!(r.destination().map(|d| d.arn()), Some(bus.arn.as_str()));
    let o = replay_archive(&bus, "--from yesterday").await;
    assert!(!o.status.success());
    assert!(text(&o).contains("RFC 3339"));
}

#[tokio::test]
async fn redrive_packs_batches_by_size_and_counts_exactly() {
    let sqs = sqs().await;
    let (queue, dlq) = (queue(&sqs, "big-queue").await, queue(&sqs, "big-dlq").await);
    // Ten ~200 KB messages, 2 MB, far over one SendMessageBatch request, and
    // one of 300 KB, over the 256 KiB a batch may carry: it goes alone.
    for i in 0..11 {
        let kb = if i == 5 { 300 } else { 200 };
        let body = format!(
            "{{\"event_type\":\"EMAIL_REPLY\",\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat(kb * 1024)
        );
        send(&sqs, &dlq, &body).await;
    }
    redrive_moves_all(&sqs, &dlq, &queue, 11).await;
}

/// A redrive that moved `moved` messages and refused `refused`: it failed.
fn assert_moved_and_refused(o: &Output, moved: usize, refused: usize) {
    assert!(!o.status.success(), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("moved {moved} message(s)")),
        "{}",
        text(o)
    );
    assert!(
        text(o).contains(&format!("{refused} message(s) refused")),
        "{}",
        text(o)
    );
}

/// Puts messages in `dlq`, one per age in days (by the ingest's `received_at`).
async fn old_messages(sqs: &smartlead::aws_sdk_sqs::Client, dlq: &str, ages: &[i64]) {
    for (i, age) in ages.iter().enumerate() {
        let at = chrono::Utc::now() - chrono::Duration::days(*age);
        send_with_attribute(
            sqs,
            dlq,
            format!("{{\"event_type\":\"EMAIL_OPEN\",\"n\":{i}}}"),
            ("received_at", &at.to_rfc3339()),
        )
        .await;
    }
}

#[tokio::test]
async fn redrive_refuses_messages_older_than_their_dedup_markers_unless_forced() {
    let sqs = sqs().await;
    let (queue, dlq) = (queue(&sqs, "old-queue").await, queue(&sqs, "old-dlq").await);
    old_messages(&sqs, &dlq, &[0, 1, 2, 30, 99, 200]).await;
    let run = |extra: &'static [&'static str]| {
        let (dlq, queue) = (dlq.clone(), queue.clone());
        async move {
            let mut args = vec!["redrive", "--dlq-url", &dlq, "--queue-url", &queue];
            args.extend_from_slice(extra);
            aws_only(&args).await
        }
    };
    // A 20-day TTL: only what is younger than 5 days (20 less the margin, 15) moves.
    let o = run(&["--dedup-ttl-days", "20"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("moved 3 message(s)"), "{}", text(&o));
    assert_eq!(out.matches("refused ").count(), 3, "{}", text(&o));
    assert!(text(&o).contains("3 message(s) refused"), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(depth(&sqs, &queue).await, "3");
    assert_eq!(
        depth(&sqs, &dlq).await,
        "3",
        "refused messages stay (visible) in the DLQ"
    );
    // The default TTL (the template's): the 30-day one moves.
    let o = run(&[]).await;
    assert_moved_and_refused(&o, 1, 2);
    assert_eq!(depth(&sqs, &dlq).await, "2");
    // Forced: the rest.
    let o = run(&["--force"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("moved 2 message(s)"),
        "{}",
        text(&o)
    );
    assert_eq!(depth(&sqs, &queue).await, "6");
    assert_eq!(depth(&sqs, &dlq).await, "0");
}

#[tokio::test]
async fn redrive_reads_the_dedup_ttl_from_the_stack() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let sqs = sqs().await;
    let stack = format!("cli-ttl-stack-{}", std::process::id());
    let [queue, dlq] = stack_queues();
    create_stack(&cfg, &stack, &[queue, dlq, ("DedupTtlDays", json!("20"))]).await;
    let o = aws_sdk_cloudformation::Client::new(&cfg)
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let url = |k: &str| {
        o.stacks()[0]
            .outputs()
            .iter()
            .find(|x| x.output_key() == Some(k))
            .and_then(|x| x.output_value())
            .unwrap()
            .to_owned()
    };
    let (queue, dlq) = (url("QueueUrl"), url("DeadLetterQueueUrl"));
    // 20 days less the 15-day margin: the 7-day-old message stays.
    old_messages(&sqs, &dlq, &[1, 7]).await;
    let o = aws_only(&["redrive", "--stack", &stack]).await;
    assert_moved_and_refused(&o, 1, 1);
    assert!(text(&o).contains("TTL, 20 days"), "{}", text(&o));
    assert_eq!(depth(&sqs, &queue).await, "1");
    assert_eq!(depth(&sqs, &dlq).await, "1");
}

#[tokio::test]
async fn ids_that_are_not_numbers_never_reach_a_request() {
    let api = StandIn::start().await;
    for args in [
        &["list", "--id", "../leads/1/unsubscribe"][..],
        &["list", "--campaign", "1/../../webhook/delete"],
        &["delete", "--id", "7 OR 1"],
        &["register", "--campaign", "12?x=1", "--url", "https://x/y"],
        &["register", "--user", "--url", "https://x/y", "--id", "../9"],
    ] {
        let o = smartlead(args, &api.url, Some(KEY)).await;
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("must be a number"), "{}", text(&o));
    }
    assert!(api.recorded().is_empty(), "{:?}", api.recorded());
}

#[tokio::test]
async fn a_secret_with_a_trailing_newline_and_base64_characters_registers_a_working_url() {
    let (_, stack) = webhook_stack("cli-b64", "Ab+c/d9z=\n", &[]).await;
    // Trimmed as the ingest trims it, one path segment, decodable once.
    assert_eq!(
        registered_url(&stack).await,
        "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead/Ab%2Bc%2Fd9z%3D"
    );
}

#[tokio::test]
async fn rotate_secret_writes_the_next_secret_re_registers_and_finishes() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    let (param, stack) = webhook_stack("cli-rotate", "old-secret", &[]).await;
    let read = || async {
        ssm.get_parameter()
            .name(&param)
            .with_decryption(true)
            .send()
            .await
            .unwrap()
            .parameter
            .unwrap()
            .value
            .unwrap()
    };
    let api = StandIn::start().await;
    let rotate = |extra: &[&str]| {
        let mut args = vec![
            "rotate-secret",
            "--stack",
            stack.as_str(),
            "--wait-secs",
            "0",
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let url = api.url.clone();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            smartlead(&a, &url, Some(KEY)).await
        }
    };
    // Nothing changes when the API key is missing or an id is bad.
    let o = smartlead(
        &[
            "rotate-secret",
            "--stack",
            &stack,
            "--id",
            "77",
            "--wait-secs",
            "0",
        ],
        &api.url,
        None,
    )
    .await;
    assert!(!o.status.success());
    let o = rotate(&["--id", "../7"]).await;
    assert!(!o.status.success());
    assert_eq!(read().await, "old-secret");

    // Step 1: the next secret joins the current one, webhook 77 gets the new URL.
    let o = rotate(&["--id", "77", "--campaign", "9", "--events", "EMAIL_REPLY"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let value = read().await;
    let (current, next) = value.split_once(',').expect("current,next");
    assert_eq!(current, "old-secret");
    assert_eq!(next.len(), 64);
    assert!(!text(&o).contains(next), "the secret is not printed");
    let new_url =
        format!("https://abc.execute-api.us-east-1.amazonaws.com/webhooks/smartlead/{next}");
    let calls = api.recorded();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "PUT");
    assert!(calls[0].target.starts_with("/api/v1/webhook/update/77?"));
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(body["webhook_url"], new_url.as_str());
    assert_eq!(body["email_campaign_id"], 9);
    assert_eq!(body["event_type_map"], json!({"EMAIL_REPLY": true}));

    // Run again for another webhook: same next secret, parameter unchanged.
    let o = rotate(&["--id", "78", "--user"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read().await, value);
    let body: Value = serde_json::from_str(&api.recorded()[1].body).unwrap();
    assert_eq!(body["webhook_url"], new_url.as_str());

    // Registering during the rotation uses the next secret.
    let o = smartlead(
        &["register", "--campaign", "5", "--stack", &stack],
        &api.url,
        Some(KEY),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let body: Value = serde_json::from_str(&api.recorded()[2].body).unwrap();
    assert_eq!(body["webhook_url"], new_url.as_str());

    // Step 2: the old secret is retired.
    let o = rotate(&["--finish"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read().await, next);
    let o = rotate(&["--finish"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("no rotation under way"), "{}", text(&o));
}

/// The local stack's table in this test's DynamoDB Local, made once.
async fn local_table() -> smartlead::aws_sdk_dynamodb::Client {
    static MADE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(
        &smartlead::adapters::aws::local_sdk_config(&dynamodb().endpoint()).await,
    );
    MADE.get_or_init(|| async {
        smartlead::adapters::aws::dynamodb::create_table(&ddb, smartlead::local_stack::TABLE)
            .await
            .unwrap()
    })
    .await;
    ddb
}

/// Applies fixture events (events/payloads) to a table as the consumer does.
async fn apply_fixtures(ddb: &smartlead::aws_sdk_dynamodb::Client, table: &str, names: &[&str]) {
    let bodies: Vec<(String, Value)> = names
        .iter()
        .map(|n| {
            let body = test_support::fixture("payloads", n.trim_end_matches(".json"));
            (format!("m-{n}"), serde_json::from_str(&body).unwrap())
        })
        .collect();
    apply_bodies(ddb, table, &bodies).await
}

/// Applies event bodies, each with its message id, to a table as the
/// consumer does.
async fn apply_bodies(
    ddb: &smartlead::aws_sdk_dynamodb::Client,
    table: &str,
    bodies: &[(String, Value)],
) {
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), table);
    for (id, b) in bodies {
        test_support::store::apply_body(&store, b.clone(), id)
            .await
            .unwrap();
    }
}

fn port_of(endpoint: &str) -> String {
    endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test]
async fn lead_shows_every_item_of_a_local_lead_readably_and_as_json() {
    let ddb = local_table().await;
    apply_fixtures(
        &ddb,
        smartlead::local_stack::TABLE,
        &[
            "email_reply.json",
            "lead_category_updated.json",
            "manual_step_reached.json",
            "email_bounce.json",
        ],
    )
    .await;
    let port = port_of(&dynamodb().endpoint());
    let local = ["--local", "--dynamodb-port", &port];
    let args = |extra: &[&'static str]| {
        let mut a = vec!["lead", "Jane.Doe@Acme-Corp.com"];
        a.extend_from_slice(&local);
        a.extend_from_slice(extra);
        a
    };
    let o = aws_only(&args(&[])).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for want in ["campaign ", "profile", "open task: campaign ", "replies"] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
    assert!(!out.contains("SUPPRESSED"), "{out}");
    let o = aws_only(&args(&["--json"])).await;
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pk"], "LEAD#jane.doe@acme-corp.com");
    let items = v["items"].as_object().unwrap();
    assert!(items.contains_key("PROFILE"), "{v}");
    assert!(items.keys().any(|k| k.starts_with("TASK#")), "{v}");
    assert!(items.keys().any(|k| k.starts_with("CAMPAIGN#")), "{v}");

    // The bounced lead is suppressed; an unknown one has nothing.
    for (lead, want) in [
        ("gone@defunct-startup.example", "SUPPRESSED"),
        ("nobody@nowhere.example", "no items"),
    ] {
        let o = aws_only(&["lead", lead, "--local", "--dynamodb-port", &port]).await;
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(want), "{}", text(&o));
    }
}

#[tokio::test]
async fn lead_reads_the_table_named_by_the_deployed_stack() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let (ddb, table) = moto_table("cli-state").await;
    apply_fixtures(&ddb, &table, &["email_reply.json"]).await;
    let stack = format!("cli-lead-stack-{}", std::process::id());
    create_stack(&cfg, &stack, &[("StateTableName", json!(table))]).await;
    let o = aws_only(&["lead", "jane.doe@acme-corp.com", "--stack", &stack]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("replies"), "{}", text(&o));
    // A stack without the output: said so, not a panic.
    let o = aws_only(&["lead", "jane.doe@acme-corp.com", "--stack", "no-such-stack"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("no-such-stack"), "{}", text(&o));
}

/// REJECTED records and unknown events of the last four days, eight a day
/// an hour apart, each written twice (a redelivery): the times written,
/// oldest first. Each day's records spread over shards (partitions).
async fn records_over_four_days(
    ddb: &smartlead::aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<String> {
    use smartlead::app::store::{Dedup, RejectSink};
    use smartlead::domain::time::EventTime;
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), table);
    let now = EventTime::now().millis();
    let mut times = Vec::new();
    for i in 0..32i64 {
        let t =
            EventTime::from_millis(now - (i / 8) * 86_400_000 - (i % 8 + 1) * 3_600_000).unwrap();
        let key = format!("REJECTED:body:{i:04}");
        let at = t.to_string();
        let ev = smartlead::SmartleadEvent::from_value(json!({
            "event_type": "LEAD_MEETING_BOOKED", "n": i, "event_timestamp": at
        }))
        .unwrap();
        let plan = smartlead::domain::plan::plan(&ev, t, &Default::default());
        for m in ["m-1", "m-2"] {
            store
                .reject(smartlead::app::store::Rejected {
                    key: &key,
                    message_id: m,
                    reason: "not_json",
                    detail: "expected value at line 1",
                    raw: "<html>",
                    received_at: &at,
                })
                .await
                .unwrap();
            store.apply(&plan, m).await.unwrap();
        }
        times.push(at);
    }
    times.sort();
    times
}

#[tokio::test]
async fn records_lists_each_kind_over_its_days_and_shards_in_time_order() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let (ddb, table) = moto_table("cli-records").await;
    let times = records_over_four_days(&ddb, &table).await;
    let stack = format!("cli-records-stack-{}", std::process::id());
    create_stack(&cfg, &stack, &[("StateTableName", json!(table))]).await;
    // Spread: more than one partition a kind.
    let pks: std::collections::BTreeSet<String> = ddb
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|i| i.get("pk")?.as_s().ok().cloned())
        .collect();
    for kind in ["REJECTED#", "UNKNOWN#"] {
        let n = pks.iter().filter(|p| p.starts_with(kind)).count();
        assert!(n > 4, "{kind}: {pks:?}");
    }
    // Listed oldest first, once each, from --since on.
    let since_36h = |t: &&String| {
        let cut = smartlead::domain::time::EventTime::from_millis(
            smartlead::domain::time::EventTime::now().millis() - 36 * 3_600_000,
        )
        .unwrap()
        .to_string();
        **t >= cut
    };
    let recent: Vec<&String> = times.iter().filter(since_36h).collect();
    for kind in ["rejected", "unknown"] {
        let o = aws_only(&["records", kind, "--stack", &stack, "--since", "7d"]).await;
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(out.starts_with("32 "), "{out}");
        let listed: Vec<&str> = out.lines().skip(1).map(|l| &l.trim_start()[..24]).collect();
        assert_eq!(listed, times, "{kind}: oldest first\n{out}");
        let o = aws_only(&[
            "records", kind, "--stack", &stack, "--since", "36h", "--json",
        ])
        .await;
        assert!(o.status.success(), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let listed: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["sk"].as_str().unwrap()[..24])
            .collect();
        assert_eq!(listed, recent, "{kind} --since 36h");
    }
    let o = aws_only(&["records", "rejects", "--stack", &stack]).await;
    assert!(!o.status.success(), "an unknown kind is refused");
}

/// A REJECTED record and an event that names no lead (UNATTRIBUTED), now.
async fn rejected_and_unattributed(ddb: &smartlead::aws_sdk_dynamodb::Client, table: &str) {
    use smartlead::app::store::RejectSink;
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), table);
    let now = smartlead::domain::time::EventTime::now().to_string();
    store
        .reject(smartlead::app::store::Rejected {
            key: "REJECTED:body:0123",
            message_id: "m-rejected-1",
            reason: "not_json",
            detail: "expected value at line 1",
            raw: "<html>",
            received_at: &now,
        })
        .await
        .unwrap();
    let body = json!({"event_type": "EMAIL_OPEN", "campaign_id": 7, "stats_id": "no-lead-1"});
    test_support::store::apply_body(&store, body, "m-unattributed-1")
        .await
        .unwrap();
}

/// A stack's DLQ alarm, declared as template.yaml declares it (no name:
/// CloudFormation names it `<stack>-DeadLetterQueueAlarm-<suffix>`).
fn dlq_alarm() -> Value {
    json!({"DeadLetterQueueAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["D", "QueueName"]}}],
        "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold"}}})
}

/// `stack`'s DLQ alarm ([`dlq_alarm`]), put in ALARM: its name.
async fn dlq_alarm_fires(cw: &aws_sdk_cloudwatch::Client, stack: &str) -> String {
    let found = cw
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-DeadLetterQueueAlarm-"))
        .send()
        .await
        .unwrap();
    let [alarm] = found.metric_alarms() else {
        panic!("{stack}: {:?}", found.metric_alarms())
    };
    let name = alarm.alarm_name().unwrap().to_owned();
    cw.set_alarm_state()
        .alarm_name(&name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 datapoint")
        .send()
        .await
        .unwrap();
    name
}

/// A count in `ns` with `Function=consumer`, as the consumer's EMF publishes it.
async fn put_count(cw: &aws_sdk_cloudwatch::Client, ns: &str, name: &str, value: f64) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    cw.put_metric_data()
        .namespace(ns)
        .metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(
                    Dimension::builder()
                        .name("Function")
                        .value("consumer")
                        .build(),
                )
                .value(value)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn status_reads_queues_metrics_alarms_and_the_table_of_a_deployed_stack() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let sqs = sqs().await;
    let (queue, dlq) = (queue(&sqs, "st-queue").await, queue(&sqs, "st-dlq").await);
    send(&sqs, &dlq, "{}").await;
    let (ddb, table) = moto_table("cli-status").await;
    rejected_and_unattributed(&ddb, &table).await;
    let stack = format!("cli-status-stack-{}", std::process::id());
    let outputs = table_and_queues(&table, &queue, &dlq);
    create_stack_with(&cfg, &stack, dlq_alarm(), &outputs).await;
    // What the functions publish, as EMF would.
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let ns = smartlead::metrics::stack_namespace(&stack);
    put_count(&cw, &ns, "Processed", 5.0).await;
    put_count(&cw, &ns, "EffectsFailed", 2.0).await;
    let alarm = dlq_alarm_fires(&cw, &stack).await;

    let o = aws_only(&["status", "--stack", &stack]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    for want in [
        "DLQ          1",
        &format!("alarm        {alarm} in ALARM"),
        "processed 5",
        "effect failures 2",
        "unattributed 1 in the last hour",
        "message m-rejected-1: not_json (expected value at line 1)",
        "EMAIL_OPEN: the event names neither",
        "1 message(s) in the DLQ",
        "2 effect failures in the last hour",
    ] {
        assert!(out.contains(want), "{want:?} missing in\n{out}");
    }
    let o = aws_only(&["status", "--stack", &stack, "--json"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dlq"], 1);
    assert_eq!(v["last_hour"]["processed"], 5.0);
    assert_eq!(v["attention"].as_array().unwrap().len(), 3, "{v}");
}

/// Two stacks in one account (staging, production)
/// share no metric and no alarm (each stack's metrics are in a namespace
/// of its own:
/// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html).
/// `status` names the alarms among its stack's own resources
/// (ListStackResources), not those whose name starts with the stack's:
/// stack `x-b`'s alarms are named `x-b-...`. (The namespace `status` reads
/// is checked against the template's by the template test: moto 5.2.5
/// answers a metric query with dimensions from every namespace.)
#[tokio::test]
async fn status_names_the_alarms_of_its_own_stack_only() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let sqs = sqs().await;
    let (queue, dlq) = (queue(&sqs, "own-queue").await, queue(&sqs, "own-dlq").await);
    let (_, table) = moto_table("cli-own").await;
    let ours = format!("cli-own-{}", std::process::id());
    let other = format!("{ours}-b");
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let outputs = table_and_queues(&table, &queue, &dlq);
    for s in [&ours, &other] {
        create_stack_with(&cfg, s, dlq_alarm(), &outputs).await;
    }
    let (our_alarm, other_alarm) = (
        dlq_alarm_fires(&cw, &ours).await,
        dlq_alarm_fires(&cw, &other).await,
    );
    let o = aws_only(&["status", "--stack", &ours, "--json"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["alarms"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["alarms"][0][0], json!(our_alarm), "{other_alarm}: {v}");
}

#[tokio::test]
async fn status_of_the_local_stack_exits_zero_when_healthy_and_two_with_a_dlq() {
    let ddb = local_table().await;
    let sqs = sqs().await;
    let dlq = sqs
        .create_queue()
        .queue_name(smartlead::local_stack::DLQ)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.create_queue()
        .queue_name(smartlead::local_stack::QUEUE)
        .send()
        .await
        .unwrap();
    let (d, m) = (port_of(&dynamodb().endpoint()), port_of(&moto().endpoint()));
    let args = [
        "status",
        "--local",
        "--dynamodb-port",
        &d,
        "--moto-port",
        &m,
    ];
    let o = aws_only(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("OK: nothing needs attention"),
        "{}",
        text(&o)
    );
    // Rejected and unattributed events are shown, not alarming by themselves.
    rejected_and_unattributed(&ddb, smartlead::local_stack::TABLE).await;
    send(&sqs, &dlq, "{}").await;
    let o = aws_only(&args).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("last REJECTED"), "{}", text(&o));
    assert!(text(&o).contains("1 message(s) in the DLQ"), "{}", text(&o));
    // Someone reading it (tail, a redrive under way) does not hide it.
    let got = sqs
        .receive_message()
        .queue_url(&dlq)
        .visibility_timeout(120)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);
    let o = aws_only(&args).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("1 message(s) in the DLQ"), "{}", text(&o));
    // Nothing listening: exit 1, and says what.
    let free = standins::free_port().to_string();
    let o = aws_only(&[
        "status",
        "--local",
        "--dynamodb-port",
        &d,
        "--moto-port",
        &free,
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("local stack running"), "{}", text(&o));
}

#[tokio::test]
async fn doctor_reports_every_finding_with_its_fix_and_fixes_the_safe_ones() {
    let (_, stack) = webhook_stack("cli-doctor", "cur", &[]).await;
    let base = WEBHOOK_BASE;
    let all: Value = "EMAIL_SENT,FIRST_EMAIL_SENT,EMAIL_OPEN,EMAIL_LINK_CLICK,EMAIL_REPLY,EMAIL_BOUNCE,LEAD_UNSUBSCRIBED,LEAD_CATEGORY_UPDATED,CAMPAIGN_STATUS_CHANGED,UNTRACKED_REPLIES,MANUAL_STEP_REACHED"
        .split(',')
        .map(|e| (e.to_owned(), json!(true)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let api = StandIn::start().await;
    api.route(
        "GET /api/v1/campaigns",
        &json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4, "client_id": 9}]).to_string(),
    );
    // 1: the stack's URL with an old secret, one event type only.
    api.route(
        "GET /api/v1/campaigns/1/webhooks",
        &json!([{"id": 11, "name": "AWS webhook pipeline", "webhook_url": format!("{base}/old-secret"),
                 "association_type": "campaign", "email_campaign_id": 1,
                 "event_type_map": {"EMAIL_REPLY": true}, "category_id_map": {"5": true}}])
        .to_string(),
    );
    // 2: the pipeline's webhook on another host; an inactive one.
    api.route(
        "GET /api/v1/campaigns/2/webhooks",
        &json!([{"id": 21, "name": "AWS webhook pipeline", "webhook_url": "https://old-stack.example.com/webhooks/smartlead/cur", "event_type_map": all},
                {"id": 22, "name": "spare", "webhook_url": format!("{base}/cur"), "is_active": false, "event_type_map": all}])
        .to_string(),
    );
    // 3: nothing at all.
    api.route("GET /api/v1/campaigns/3/webhooks", "[]");
    // 4: healthy.
    api.route(
        "GET /api/v1/campaigns/4/webhooks",
        &json!([{"id": 41, "name": "AWS webhook pipeline", "webhook_url": format!("{base}/cur"), "event_type_map": all}]).to_string(),
    );
    // A user-level webhook elsewhere, for EMAIL_REPLY.
    api.route(
        "GET /api/v1/webhook/99",
        &json!({"id": 99, "name": "zap", "association_type": "user", "webhook_url": "https://hooks.zapier.com/hooks/catch/1/zap-secret",
                "event_type_map": {"EMAIL_REPLY": true}})
        .to_string(),
    );

    let o = smartlead(&["doctor", "--stack", &stack], &api.url, Some(KEY)).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    for want in [
        "read 4 campaign(s) and 4 webhook(s)",
        "webhook 11 carries a secret the stack no longer accepts",
        "campaign 1: no webhook of this stack subscribes to CAMPAIGN_STATUS_CHANGED,EMAIL_BOUNCE",
        "add them to webhook 11",
        "webhook 21 is this pipeline's but points at old-stack.example.com",
        "webhook 22 is inactive",
        "campaign 3 has no webhook at all",
        &format!("smartlead register --campaign 3 --stack {stack}"),
        "run again with --fix",
    ] {
        assert!(out.contains(want), "{want:?} missing in\n{out}");
    }
    assert!(!out.contains("campaign 4"), "{out}");
    assert!(api.recorded().iter().all(|r| r.method == "GET"));

    // The user-level webhook shadows this stack's for EMAIL_REPLY.
    let o = smartlead(
        &["doctor", "--stack", &stack, "--webhook", "99"],
        &api.url,
        Some(KEY),
    )
    .await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("user-level webhook 99 (hooks.zapier.com) receives EMAIL_REPLY for every campaign, so SmartLead does not send them to this stack's webhook(s) 11, 21, 41"),
        "{out}"
    );
    assert!(out.contains("smartlead delete --id 99"), "{out}");

    // --fix: webhook 11 gets the current secret and every event type (its
    // categories kept); 21, at another URL, may be another stack's and is
    // left for the operator; nothing else is touched.
    let before = api.recorded().len();
    let o = smartlead(&["doctor", "--stack", &stack, "--fix"], &api.url, Some(KEY)).await;
    let out = text(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "inactive and no-webhook remain\n{out}"
    );
    assert!(out.contains("3 finding(s) left to fix by hand"), "{out}");
    let puts: Vec<_> = api.recorded()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .cloned()
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    let body = |r: &standins::Recorded| -> Value { serde_json::from_str(&r.body).unwrap() };
    assert!(puts[0].target.starts_with("/api/v1/webhook/update/11?"));
    assert_eq!(body(&puts[0])["webhook_url"], format!("{base}/cur"));
    assert_eq!(body(&puts[0])["event_type_map"], all);
    assert_eq!(body(&puts[0])["category_id_map"], json!({"5": true}));
    assert_eq!(body(&puts[0])["email_campaign_id"], 1);
    // No secret, old or new, and no key in what it printed.
    for leak in ["old-secret", "zap-secret", "/cur", KEY] {
        assert!(!out.contains(leak), "{leak} in\n{out}");
    }
}

const DONE_REPLY: &str = r#"{"level":"INFO","message":"record done","outcome":"applied","ms":3,"span":{"message_id":"m-1","event_type":"EMAIL_REPLY","dedup_key":"EMAIL_REPLY:msg:abc","name":"record"}}"#;
const DUP_OPEN: &str = r#"{"level":"INFO","message":"record done","outcome":"duplicate","ms":1,"span":{"message_id":"m-2","event_type":"EMAIL_OPEN","dedup_key":"EMAIL_OPEN:stats:xyz","name":"record"}}"#;
const FX_REPLY: &str = r#"{"level":"INFO","message":"effect done","message_id":"m-1","dedup_key":"EMAIL_REPLY:msg:abc","effect":"slack"}"#;
const EMF: &str = r#"{"_aws":{"Timestamp":1},"Processed":1}"#;

#[tokio::test]
async fn tail_follows_the_deployed_log_groups_with_filters() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    let stack = format!("cli-tail-{}", std::process::id());
    let now = chrono::Utc::now().timestamp_millis();
    for (f, lines) in [
        ("ingest", vec![]),
        ("consumer", vec![DONE_REPLY, DUP_OPEN, FX_REPLY, EMF]),
    ] {
        let group = format!("/aws/lambda/{stack}-{f}");
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name("s")
            .send()
            .await
            .unwrap();
        if lines.is_empty() {
            continue;
        }
        let mut put = logs
            .put_log_events()
            .log_group_name(&group)
            .log_stream_name("s");
        for (i, l) in lines.iter().enumerate() {
            put = put.log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now + i as i64)
                    .message(*l)
                    .build()
                    .unwrap(),
            );
        }
        put.send().await.unwrap();
    }
    let o = aws_only(&["tail", "--stack", &stack, "--for", "1"]).await;
    assert!(o.status.success(), "{}", text(&o));
    // moto has no live tail: it says so and polls.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("polling every 2 s instead"),
        "{}",
        text(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("consumer")
            && lines[0].contains("EMAIL_REPLY")
            && lines[0].contains("applied")
            && lines[0].contains("key=EMAIL_REPLY:msg:abc"),
        "{out}"
    );
    assert!(lines[2].contains("effect slack"), "{out}");
    let o = aws_only(&[
        "tail",
        "--stack",
        &stack,
        "--for",
        "1",
        "--type",
        "EMAIL_OPEN",
        "--outcome",
        "duplicate",
    ])
    .await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("key=EMAIL_OPEN:stats:xyz"), "{out}");
    let o = aws_only(&["tail", "--stack", "no-such-tail", "--for", "1"]).await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("/aws/lambda/no-such-tail-ingest"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn tail_follows_the_local_stacks_log_files_as_they_grow() {
    let dir = std::env::temp_dir().join(format!("cli-tail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let consumer = dir.join("lambda-rie-9100.log");
    std::fs::write(
        &consumer,
        format!("START RequestId: 1\n{DONE_REPLY}\n{EMF}\n"),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_smartlead"))
        .args(["tail", "--local", "--for", "3", "--key", "msg:abc"])
        .env("SMARTLEAD_LOG_DIR", &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    // A line written while it follows, split across two writes.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&consumer)
        .unwrap();
    let (a, b) = FX_REPLY.split_at(20);
    f.write_all(a.as_bytes()).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    writeln!(f, "{b}\n{DUP_OPEN}").unwrap();
    let o = child.wait_with_output().await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("applied"), "{out}");
    assert!(lines[1].contains("effect slack"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn replay_of_one_lead_goes_through_temporary_rules_narrowed_to_it() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let sqs = sqs().await;
    let q = queue(&sqs, "replay-sub").await;
    let q_arn = sqs
        .get_queue_attributes()
        .queue_url(&q)
        .attribute_names(smartlead::aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&smartlead::aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let bus = bus_with_archive(&eb, "cli-replay").await;
    // A subscriber: every pipeline event to a queue.
    eb.put_rule()
        .name("crm")
        .event_bus_name(&bus.name)
        .event_pattern(r#"{"source":["smartlead.webhooks"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("crm")
        .event_bus_name(&bus.name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&q_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for (key, lead) in [("K-A", "jane@acme.example"), ("K-B", "bob@other.example")] {
        put_event(
            &eb,
            &bus.name,
            "EMAIL_REPLY",
            json!({"id": key, "normalized": {"lead_email": lead, "campaign_id": "7"}}),
        )
        .await;
    }
    let ids = |sqs: smartlead::aws_sdk_sqs::Client, q: String| async move {
        let got = test_support::take_all(&sqs, &q).await;
        let id = |v: &Value| v["detail"]["id"].as_str().unwrap().to_owned();
        got.iter().map(id).collect::<Vec<String>>()
    };
    let mut first = ids(sqs.clone(), q.clone()).await;
    first.sort();
    assert_eq!(first, ["K-A", "K-B"]);

    let o = replay_archive(&bus, "--from 2020-01-01T00:00:00Z --lead Jane@Acme.example").await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains(
            "COMPLETED: the events of lead Jane@Acme.example went to the targets of 1 rule(s)"
        ),
        "{out}"
    );
    let name = out.split_whitespace().nth(1).unwrap().to_owned();
    // The replay went only to the temporary rule ...
    let r = describe_replay(&eb, &name).await;
    let filters = r.destination().unwrap().filter_arns().to_vec();
    assert_eq!(filters.len(), 1, "{filters:?}");
    assert!(filters[0].ends_with(&format!("{name}-0")), "{filters:?}");
    // ... which matched only Jane's event (moto replays to every rule, the
    // original too, so Jane's arrives twice and Bob's once) ...
    let mut again = ids(sqs.clone(), q.clone()).await;
    again.sort();
    assert_eq!(again, ["K-A", "K-A", "K-B"]);
    // ... and is gone.
    assert_no_replay_rules(&eb, &bus.name).await;
    // Bad input is refused before any call.
    let o = replay_archive(&bus, "--from 2020-01-01T00:00:00Z --campaign 7?x").await;
    assert!(!o.status.success());
}

#[tokio::test]
async fn the_day_two_verbs_help_carries_an_example() {
    for verb in ["lead", "status", "doctor", "tail", "replay"] {
        let o = aws_only(&[verb, "--help"]).await;
        assert!(o.status.success(), "{verb}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(out.contains("Example: `smartlead"), "{verb}:\n{out}");
    }
}

/// The `Policy` of every temporary replay queue (`smartlead-replay-*`) seen
/// while `run` runs (the CLI deletes its queue before it ends).
async fn replay_queue_policies(
    run: impl std::future::Future<Output = Output>,
) -> (Output, Vec<String>) {
    use smartlead::aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = sqs().await;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while stopped.try_recv().is_err() {
            let listed = sqs
                .list_queues()
                .queue_name_prefix("smartlead-replay-")
                .send()
                .await;
            for url in listed.map(|l| l.queue_urls().to_vec()).unwrap_or_default() {
                let attrs = sqs
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(A::Policy)
                    .send()
                    .await;
                if let Some(p) = attrs.ok().and_then(|a| a.attributes?.remove(&A::Policy)) {
                    seen.push(p);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        seen
    });
    let out = run.await;
    let _ = stop.send(());
    (out, watcher.await.unwrap())
}

/// A queue policy with a Deny of every SQS action without TLS
/// (`aws:SecureTransport` false), as AWS advises:
/// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-security-best-practices.html
fn denies_insecure_transport(policy: &str) -> bool {
    let p: Value = serde_json::from_str(policy).unwrap();
    p["Statement"].as_array().into_iter().flatten().any(|s| {
        s["Effect"] == "Deny"
            && s["Principal"] == "*"
            && s["Action"] == "sqs:*"
            && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    })
}

#[tokio::test]
async fn lead_events_come_from_the_archive_through_a_temporary_rule_and_queue() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let (_, table) = moto_table("cli-events").await;
    let bus = bus_with_archive(&eb, "cli-events").await;
    for (key, lead, t) in [
        (
            "EMAIL_OPEN:stats:1",
            "jane@acme.example",
            "2026-11-20T10:00:00.000Z",
        ),
        (
            "EMAIL_REPLY:msg:2",
            "jane@acme.example",
            "2026-11-21T10:00:00.000Z",
        ),
        (
            "EMAIL_OPEN:stats:3",
            "bob@other.example",
            "2026-11-22T10:00:00.000Z",
        ),
    ] {
        let ty = key.split(':').next().unwrap();
        put_event(&eb, &bus.name, ty, json!({"id": key, "dedup_key": key, "event_type": ty,
                                   "normalized": {"lead_email": lead, "campaign_id": "7", "event_time": t}})).await;
    }
    let stack = format!("cli-events-stack-{}", std::process::id());
    create_stack(
        &cfg,
        &stack,
        &[
            ("StateTableName", json!(table)),
            ("EventArchiveArn", json!(bus.archive)),
            ("EventBusArn", json!(bus.arn)),
        ],
    )
    .await;
    let (o, policies) = replay_queue_policies(aws_only(&[
        "lead",
        "Jane@Acme.example",
        "--events",
        "--stack",
        &stack,
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    // The temporary queue refuses requests without TLS, as the template's do.
    assert!(!policies.is_empty(), "no temporary queue policy seen");
    for p in &policies {
        assert!(denies_insecure_transport(p), "{p}");
    }
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("archived events (2):"), "{out}");
    let open = out
        .find("2026-11-20T10:00:00.000Z  EMAIL_OPEN")
        .expect(&out);
    let reply = out.find("key=EMAIL_REPLY:msg:2").expect(&out);
    assert!(open < reply, "{out}");
    assert!(!out.contains("stats:3"), "{out}");
    // Nothing temporary is left behind.
    assert_no_replay_rules(&eb, &bus.name).await;
    let queues = sqs()
        .await
        .list_queues()
        .queue_name_prefix("smartlead-replay-")
        .send()
        .await
        .unwrap();
    assert!(queues.queue_urls().is_empty(), "{queues:?}");
    let o = aws_only(&["lead", "a@b.co", "--events", "--local"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("local stack has none"), "{}", text(&o));
}

#[tokio::test]
async fn reconcile_reports_gaps_as_a_table_and_queues_their_backfills() {
    use smartlead::app::store::Dedup;
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let (ddb, table) = moto_table("cli-recon").await;
    let sqs = sqs().await;
    let (q, dlq) = (queue(&sqs, "recon-q").await, queue(&sqs, "recon-dlq").await);
    let stack = format!("cli-recon-stack-{}", std::process::id());
    let mut outputs = table_and_queues(&table, &q, &dlq);
    outputs.push(("DedupTtlDays", json!("100")));
    create_stack(&cfg, &stack, &outputs).await;
    // Four leads sent step 1 an hour ago; b's webhook never arrived (the
    // three that did establish the form: reconcile::MIN_MATCHES).
    let t = smartlead::domain::time::EventTime::from_millis(
        smartlead::domain::time::EventTime::now().millis() - 3_600_000,
    )
    .unwrap()
    .to_string();
    let sent = |lead: &str, n: u32| {
        json!({"event_type": "EMAIL_SENT", "to_email": lead, "campaign_id": 77, "sequence_number": 1,
               "time_sent": t, "stats_id": format!("st-{n}"), "message_id": format!("<m{n}@x.example>")})
    };
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), &table);
    let leads = [
        ("a@recon.example", 1),
        ("b@recon.example", 2),
        ("c@recon.example", 3),
        ("e@recon.example", 5),
    ];
    for (lead, n) in leads.iter().filter(|(_, n)| *n != 2) {
        let ev = smartlead::SmartleadEvent::from_value(sent(lead, *n)).unwrap();
        let plan = smartlead::domain::plan::plan(
            &ev,
            smartlead::domain::time::EventTime::now(),
            &Default::default(),
        );
        store.apply(&plan, &format!("m-{n}")).await.unwrap();
    }
    let api = StandIn::start().await;
    let rows: Vec<Value> = leads
        .iter()
        .map(|(l, n)| {
            json!({"lead_email": l, "lead_id": 900 + n, "sequence_number": 1,
                             "stats_id": format!("st-{n}"), "sent_time": t, "open_count": 0})
        })
        .collect();
    api.route(
        "GET /api/v1/campaigns/77/statistics",
        &json!({"total_stats": 4, "data": rows}).to_string(),
    );
    for (_, n) in leads {
        api.route(
            &format!("GET /api/v1/campaigns/77/leads/{}/message-history", 900 + n),
            &json!({"history": [{"type": "SENT", "message_id": format!("<m{n}@x.example>"),
                                 "time": t, "email_seq_number": 1}]})
            .to_string(),
        );
    }
    let args = [
        "reconcile",
        "--campaign",
        "77",
        "--since",
        "1d",
        "--stack",
        &stack,
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let o = smartlead(&dry, &api.url, Some(KEY)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("LEAD"), "{out}");
    assert!(out.contains("b@recon.example"), "{out}");
    assert!(out.contains("send of step 1 (EMAIL_SENT)"), "{out}");
    assert!(out.contains("would backfill"), "{out}");
    assert!(!out.contains("a@recon.example"), "{out}");
    assert_eq!(depth(&sqs, &q).await, "0");
    assert!(!text(&o).contains(KEY));
    // --dedup-ttl-days past the stack's DedupTtlDays (100) is capped; a
    // negative span is refused.
    let mut long = dry.clone();
    long.extend(["--dedup-ttl-days", "400"]);
    let o = smartlead(&long, &api.url, Some(KEY)).await;
    assert!(
        text(&o).contains("longer than the stack's DedupTtlDays 100: using 100"),
        "{}",
        text(&o)
    );
    let negative = [
        "reconcile",
        "--campaign",
        "77",
        "--since=-3d",
        "--dry-run",
        "--stack",
        &stack,
    ];
    let o = smartlead(&negative, &api.url, Some(KEY)).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be negative"), "{}", text(&o));

    let o = smartlead(&args, &api.url, Some(KEY)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("1 backfilled through the queue"),
        "{}",
        text(&o)
    );
    let m = first_message(&sqs, &q).await;
    let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(body["source"], "reconcile");
    assert_eq!(body["message_id"], "<m2@x.example>");
    let attrs = m.message_attributes().unwrap();
    assert_eq!(attrs["source"].string_value(), Some("reconcile"));
    assert_eq!(attrs["event_type"].string_value(), Some("EMAIL_SENT"));
    // The synthesized event has the key the real webhook for it has.
    assert_eq!(
        smartlead::SmartleadEvent::from_value(body)
            .unwrap()
            .dedup_key(),
        smartlead::SmartleadEvent::from_value(sent("b@recon.example", 2))
            .unwrap()
            .dedup_key()
    );
    // JSON for scripts.
    let mut j = dry.clone();
    j.push("--json");
    let o = smartlead(&j, &api.url, Some(KEY)).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["gaps"][0]["action"], "backfill", "{v}");
    assert_eq!(v["gaps"][0]["event_type"], "EMAIL_SENT");
}

#[tokio::test]
async fn suppression_lists_suppressed_addresses_newest_first_from_the_index() {
    let ddb = local_table().await;
    let bounce = |to: &str, c: u64, t: &str| {
        json!({"event_type": "EMAIL_BOUNCE", "to_email": to, "campaign_id": c,
               "event_timestamp": t, "bounce_message": "550 5.1.1 no such user"})
    };
    let unsub = |to: &str, c: u64, t: &str| {
        json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": to, "campaign_id": c,
               "event_timestamp": t})
    };
    let open = json!({"event_type": "EMAIL_OPEN", "to_email": "c@supp-list.example",
                      "campaign_id": 7, "time_opened": "2025-03-01T12:00:00Z"});
    let bodies = [
        bounce("a@supp-list.example", 7, "2025-03-01T10:00:00Z"),
        unsub("b@supp-list.example", 8, "2025-03-02T10:00:00Z"),
        // A second reason, later: a's first suppression stays the bounce.
        unsub("a@supp-list.example", 8, "2025-03-03T10:00:00Z"),
        open,
    ];
    let bodies: Vec<(String, Value)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("supp-{i}"), b))
        .collect();
    apply_bodies(&ddb, smartlead::local_stack::TABLE, &bodies).await;
    let port = port_of(&dynamodb().endpoint());
    let run = |extra: &[&str]| {
        let mut a = vec!["suppression", "--local", "--dynamodb-port", &port];
        a.extend_from_slice(extra);
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            aws_only(&a).await
        }
    };
    // Other tests share the table: look at this test's addresses only.
    let ours = |o: &Output| -> Vec<String> {
        assert!(o.status.success(), "{}", text(o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("@supp-list.example") || l.starts_with("email,"))
            .map(str::to_owned)
            .collect()
    };
    let o = run(&["--csv", "--since", "2025-03-01T00:00:00Z"]).await;
    assert_eq!(
        ours(&o),
        [
            "email,reason,reasons,campaign_id,suppressed_at",
            "b@supp-list.example,unsubscribe,unsubscribe,8,2025-03-02T10:00:00.000Z",
            "a@supp-list.example,bounce,bounce;unsubscribe,7,2025-03-01T10:00:00.000Z",
        ]
    );
    let o = run(&["--csv", "--since", "2025-03-02T00:00:00Z"]).await;
    assert_eq!(ours(&o).len(), 2, "{:?}", ours(&o));
    let o = run(&["--json"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == "a@supp-list.example")
        .expect("a listed");
    assert_eq!(a["reasons"], json!(["bounce", "unsubscribe"]));
    let o = run(&[]).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("a@supp-list.example  bounce+unsubscribe  campaign 7"),
        "{out}"
    );
    assert!(!out.contains("c@supp-list.example"), "{out}");
}

/// A small campaign (9101) for the list verbs: each lead a different path
/// through the statuses, and one event of another campaign (9102).
fn lists_book() -> Vec<(String, Value)> {
    let ev = |ty: &str, to: &str, t: &str, seq: u64| {
        json!({"event_type": ty, "to_email": to, "lead_email": to, "campaign_id": 9101,
               "sequence_number": seq, "event_timestamp": t,
               "stats_id": format!("lists-{ty}-{to}-{t}")})
    };
    let reply = |to: &str, t: &str, text: &str| {
        let mut r = ev("EMAIL_REPLY", to, t, 1);
        r["preview_text"] = json!(text);
        r
    };
    let category = |to: &str, t: &str, c: &str| {
        json!({"event_type": "LEAD_CATEGORY_UPDATED", "lead_email": to, "campaign_id": 9101,
               "category": c, "event_timestamp": t})
    };
    let (r1, r2) = ("r1@lists.example", "r2@lists.example");
    let mut other = reply(r1, "2025-04-09T09:00:00Z", "other campaign");
    other["campaign_id"] = json!(9102);
    let mut bounced_elsewhere = ev(
        "EMAIL_BOUNCE",
        "bu@lists.example",
        "2025-04-01T09:00:00Z",
        1,
    );
    bounced_elsewhere["campaign_id"] = json!(9102);
    let bodies = [
        ev("EMAIL_SENT", r1, "2025-04-01T09:00:00Z", 1),
        ev("EMAIL_SENT", r1, "2025-04-03T09:00:00Z", 2),
        ev("EMAIL_OPEN", r1, "2025-04-03T10:00:00Z", 2),
        reply(r1, "2025-04-03T11:00:00Z", "Yes, let's talk"),
        category(r1, "2025-04-03T12:00:00Z", "Interested"),
        ev("EMAIL_SENT", r2, "2025-04-01T09:00:00Z", 1),
        ev("EMAIL_OPEN", r2, "2025-04-01T10:00:00Z", 1),
        ev("EMAIL_OPEN", r2, "2025-04-02T10:00:00Z", 1),
        ev("EMAIL_LINK_CLICK", r2, "2025-04-02T10:05:00Z", 1),
        reply(r2, "2025-04-05T08:00:00Z", "Not now"),
        category(r2, "2025-04-05T09:00:00Z", "Not Interested"),
        ev("EMAIL_OPEN", "o1@lists.example", "2025-04-02T11:00:00Z", 1),
        ev(
            "EMAIL_LINK_CLICK",
            "c1@lists.example",
            "2025-04-04T11:00:00Z",
            1,
        ),
        ev(
            "EMAIL_BOUNCE",
            "b1@lists.example",
            "2025-04-01T09:01:00Z",
            1,
        ),
        ev(
            "LEAD_UNSUBSCRIBED",
            "u1@lists.example",
            "2025-04-02T09:00:00Z",
            1,
        ),
        // A hostile preview: a formula for whoever opens the CSV.
        reply(
            "late@lists.example",
            "2025-04-04T15:00:00Z",
            "-1+1 Who is this?",
        ),
        // Opened before the tests' --since, clicked after: engaged before it.
        ev("EMAIL_OPEN", "oc@lists.example", "2025-04-01T12:00:00Z", 1),
        ev(
            "EMAIL_LINK_CLICK",
            "oc@lists.example",
            "2025-04-05T10:00:00Z",
            1,
        ),
        // Suppressed first by a bounce elsewhere: not an unsubscribe here.
        bounced_elsewhere,
        ev(
            "LEAD_UNSUBSCRIBED",
            "bu@lists.example",
            "2025-04-02T09:30:00Z",
            1,
        ),
        other,
        json!({"eventType": "EMAIL_ACCOUNT_DISCONNECTED", "accountId": 910101,
               "email": "sender@lists.example", "error": "IMAP authentication failed",
               "timestamp": "2025-04-06T07:00:00Z"}),
        json!({"eventType": "CAMPAIGN_BOUNCE_BREACH", "campaignId": 9101,
               "campaignName": "Lists", "bounceRate": 7.5, "threshold": 5,
               "message": "Bounce rate 7.5% exceeded 5%", "timestamp": "2025-04-06T08:00:00Z"}),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("lists-{i}"), b))
        .collect()
}

/// `args` against the local stack in this test's DynamoDB Local.
async fn local_verb(args: &[&str]) -> Output {
    let port = port_of(&dynamodb().endpoint());
    let mut a = args.to_vec();
    a.extend_from_slice(&["--local", "--dynamodb-port", &port]);
    aws_only(&a).await
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn emails(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn leads_campaign_and_accounts_answer_from_the_indexes() {
    let ddb = local_table().await;
    apply_bodies(&ddb, smartlead::local_stack::TABLE, &lists_book()).await;
    let leads = |extra: &'static [&'static str]| async move {
        let mut a = vec!["leads", "--campaign", "9101", "--json"];
        a.extend_from_slice(extra);
        json_of(&local_verb(&a).await)
    };
    // Replied (the default), newest first, with step, category and preview.
    let v = leads(&[]).await;
    assert_eq!(
        emails(&v),
        ["r2@lists.example", "late@lists.example", "r1@lists.example"]
    );
    let r1 = &v[2];
    assert_eq!(r1["at"], "2025-04-03T11:00:00.000Z");
    assert_eq!(r1["step"], 2);
    assert_eq!(r1["category"], "Interested");
    assert_eq!(r1["reply_preview"], "Yes, let's talk");
    for (status, want) in [
        ("interested", vec!["r1@lists.example"]),
        ("bounced", vec!["b1@lists.example"]),
        ("unsubscribed", vec!["u1@lists.example"]),
        (
            "clicked",
            vec!["oc@lists.example", "c1@lists.example", "r2@lists.example"],
        ),
        (
            "engaged",
            vec![
                "c1@lists.example",
                "r1@lists.example",
                "o1@lists.example",
                "oc@lists.example",
                "r2@lists.example",
            ],
        ),
    ] {
        let v = json_of(
            &local_verb(&["leads", "--campaign", "9101", "--json", "--status", status]).await,
        );
        assert_eq!(emails(&v), want, "{status}");
    }
    let v = leads(&["--category", "not interested"]).await;
    assert_eq!(emails(&v), ["r2@lists.example"]);
    let v = leads(&["--since", "2025-04-04T00:00:00Z"]).await;
    assert_eq!(emails(&v), ["r2@lists.example", "late@lists.example"]);
    // Pages: each lead once, in order, the next page's --after on stderr.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut a = vec![
            "leads",
            "--campaign",
            "9101",
            "--json",
            "--status",
            "engaged",
            "--limit",
            "3",
        ];
        let given = after.clone().map(|a| format!("--after={a}"));
        if let Some(g) = &given {
            a.push(g);
        }
        let o = local_verb(&a).await;
        seen.extend(emails(&json_of(&o)));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        match err.split("more: --after '").nth(1) {
            Some(rest) => after = Some(rest.split('\'').next().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "c1@lists.example",
            "r1@lists.example",
            "o1@lists.example",
            "oc@lists.example",
            "r2@lists.example"
        ]
    );
    // Engaged since: by the earlier of open and click (oc opened before).
    let v = json_of(
        &local_verb(&[
            "leads",
            "--campaign",
            "9101",
            "--json",
            "--status",
            "engaged",
            "--since",
            "2025-04-04T00:00:00Z",
        ])
        .await,
    );
    assert_eq!(emails(&v), ["c1@lists.example"]);
    let o = local_verb(&["leads", "--campaign", "9101", "--csv"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let csv = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        csv.starts_with("email,lead,status,at,step,category,replied_at,reply_preview\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains(
            "r1@lists.example,r1@lists.example,replied,2025-04-03T11:00:00.000Z,2,Interested,"
        ),
        "{csv}"
    );
    // Free text that starts like a formula is defused.
    assert!(csv.contains(",'-1+1 Who is this?\r\n"), "{csv}");

    // The funnel.
    let f = json_of(&local_verb(&["campaign", "9101", "--json"]).await);
    let totals = json!({"engaged": 5, "opened": 4, "clicked": 3, "replied": 3,
                        "interested": 1, "bounced": 1, "unsubscribed": 1});
    assert_eq!(f["totals"], totals);
    assert_eq!(f["replies_by_step"], json!({"1": 1, "2": 1, "?": 1}));
    assert_eq!(
        f["categories"],
        json!({"Interested": 1, "Not Interested": 1})
    );
    assert_eq!(f["per_day"]["2025-04-03"]["replied"], 1);
    assert_eq!(f["per_day"]["2025-04-02"]["engaged"], 1);
    assert_eq!(f["newest_replies"][0]["reply_preview"], "Not now");
    let f = json_of(
        &local_verb(&[
            "campaign",
            "9101",
            "--json",
            "--since",
            "2025-04-04T00:00:00Z",
        ])
        .await,
    );
    assert_eq!(f["totals"]["replied"], 2);
    assert_eq!(f["totals"]["engaged"], 1);
    assert_eq!(f["totals"]["clicked"], 2);
    let o = local_verb(&["campaign", "9101"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("replied       3"), "{}", text(&o));

    // Accounts and bounce breaches.
    let h = json_of(&local_verb(&["accounts", "--json"]).await);
    let a = h["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "910101")
        .expect("the account");
    assert_eq!(a["email"], "sender@lists.example");
    assert_eq!(a["channel"], "EMAIL");
    assert_eq!(a["disconnects"], 1);
    assert_eq!(a["last_error"], "IMAP authentication failed");
    let b = h["bounce_breaches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["campaign"] == "9101")
        .expect("the breach");
    assert_eq!(b["bounce_rate"], 7.5);
    assert_eq!(b["breaches"], 1);
}

/// A new empty directory of this process for `name`.
fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Debian's Chromium (scripts/tools.sh installs it), or `CHROMIUM`.
fn chromium() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: scripts/tools.sh installs Debian's chromium package (or set CHROMIUM)"
    );
    bin
}

/// Chromium, headless, on `page` with `args`; its stdout. The flags keep a
/// closed network quiet (no background fetches) and the profile fresh.
fn headless(page: &std::path::Path, args: &[&str]) -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = scratch(&format!("chromium-{run}"));
    let o = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The number after `attr` in the rendered DOM (`data-total="replied">3<`).
fn number_after(dom: &str, attr: &str) -> Option<u64> {
    let rest = &dom[dom.find(attr)? + attr.len()..];
    let rest = &rest[rest.find('>')? + 1..];
    rest[..rest.find('<')?].trim().parse().ok()
}

/// The HTML report renders in a real browser, offline, to a PNG, and shows
/// the numbers `campaign --json` gives.
#[tokio::test]
async fn the_campaign_page_renders_in_headless_chromium_with_the_cli_s_numbers() {
    let ddb = local_table().await;
    apply_bodies(&ddb, smartlead::local_stack::TABLE, &lists_book()).await;
    let f = json_of(&local_verb(&["campaign", "9101", "--json"]).await);
    let dir = scratch("report");
    let page = dir.join("report.html");
    let o = local_verb(&["campaign", "9101", "--html", page.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", text(&o));
    let png = dir.join("report.png");
    headless(
        &page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1000,1300",
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote no PNG");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{}",
        bytes.len()
    );
    let dom = headless(&page, &["--dump-dom"]);
    for (status, n) in f["totals"].as_object().unwrap() {
        let shown = number_after(&dom, &format!("data-total=\"{status}\""));
        assert_eq!(shown, n.as_u64(), "{status} in\n{dom}");
    }
    for (day, counts) in f["per_day"].as_object().unwrap() {
        if let Some(n) = counts["replied"].as_u64() {
            let at = format!("data-day=\"{day}\" data-replies=\"{n}\"");
            assert!(dom.contains(&at), "{at} in\n{dom}");
        }
    }
    for r in f["newest_replies"].as_array().unwrap() {
        let preview = r["reply_preview"].as_str().unwrap();
        assert!(dom.contains(&format!("data-reply=\"{}\"", r["lead"].as_str().unwrap())));
        assert!(dom.contains(preview), "{preview}");
    }
}

/// An agency's stack in moto: `ClientParameterPath` set, the webhook URL
/// and shared secret, a state table; and a SmartLead stand-in with three
/// clients (11 Acme, 12 Globex, 13 Initech) and a campaign each (101,
/// 102, 103). Its stack name, client path, shared secret parameter, table.
async fn agency(name: &str) -> (String, String, String, StandIn) {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let pid = std::process::id();
    let (param, path) = (
        format!("/{name}-{pid}/secret"),
        format!("/{name}-{pid}/clients"),
    );
    put_secret(&cfg, &param, "shared-secret").await;
    let (_, table) = moto_table(name).await;
    let stack = format!("{name}-{pid}");
    let outputs: serde_json::Map<String, Value> = [
        ("WebhookUrl", json!(format!("{WEBHOOK_BASE}/<secret>"))),
        ("WebhookSecretParameterName", json!(param)),
        ("StateTableName", json!(table)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), json!({ "Value": v })))
    .collect();
    let template = json!({
        "Parameters": {"ClientParameterPath": {"Type": "String"}},
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
        "Outputs": outputs,
    });
    aws_sdk_cloudformation::Client::new(&cfg)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key("ClientParameterPath")
                .parameter_value(&path)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let api = StandIn::start().await;
    api.route(
        "GET /api/v1/client/",
        &json!([{"id": 11, "name": "Acme"}, {"id": 12, "name": "Globex"}, {"id": 13, "name": "Initech"}])
            .to_string(),
    );
    api.route(
        "GET /api/v1/campaigns",
        &json!([{"id": 101, "client_id": 11}, {"id": 102, "client_id": 12}, {"id": 103, "client_id": 13}])
            .to_string(),
    );
    (stack, path, table, api)
}

/// Clients, their own secrets and the doctor, against a SmartLead
/// stand-in with three clients and a user-level webhook of this stack that
/// shadows one client's webhook: `clients sync`, a client's first
/// rotation (from the shared secret), its URL on `register --client`, and
/// the doctor's agency findings with `--fix` re-pointing the one it can.
#[tokio::test]
async fn an_agency_s_clients_keep_their_own_secrets_and_the_doctor_finds_the_shadow() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    let (stack, path, _, api) = agency("cli-agency").await;
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let url = api.url.clone();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            smartlead(&a, &url, Some(KEY)).await
        }
    };
    let o = run(&["clients", "sync", "--stack", &stack]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("3 client(s), 3 campaign(s) with a client"),
        "{}",
        text(&o)
    );

    // Acme's first rotation: its parameter starts from the shared secret.
    let o = run(&[
        "rotate-secret",
        "--stack",
        &stack,
        "--client",
        "11",
        "--id",
        "511",
        "--wait-secs",
        "0",
    ])
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let own = format!("{path}/secrets/11");
    let read = |name: String| {
        let ssm = ssm.clone();
        async move {
            ssm.get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .ok()
                .and_then(|o| o.parameter)
                .and_then(|p| p.value)
        }
    };
    let value = read(own.clone()).await.expect("Acme's own parameter");
    let (current, next) = value.split_once(',').expect("current,next");
    assert_eq!(current, "shared-secret");
    let put: Value = serde_json::from_str(&api.recorded().last().unwrap().body).unwrap();
    assert_eq!(
        put["webhook_url"],
        format!("{WEBHOOK_BASE}/client/11/{next}")
    );
    assert_eq!(put["client_id"], 11);
    let o = run(&[
        "rotate-secret",
        "--stack",
        &stack,
        "--client",
        "11",
        "--finish",
    ])
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read(own).await.as_deref(), Some(next));
    assert_eq!(
        read(format!("{path}/secrets/12")).await,
        None,
        "Globex untouched"
    );

    // Globex has no rotation of its own to finish.
    let o = run(&[
        "rotate-secret",
        "--stack",
        &stack,
        "--client",
        "12",
        "--finish",
    ])
    .await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("client 12 has no rotation under way"),
        "{}",
        text(&o)
    );

    // Globex has no secret of its own: its URL carries the shared one.
    let o = run(&["register", "--client", "12", "--stack", &stack]).await;
    assert!(o.status.success(), "{}", text(&o));
    let reg: Value = serde_json::from_str(&api.recorded().last().unwrap().body).unwrap();
    assert_eq!(
        reg["webhook_url"],
        format!("{WEBHOOK_BASE}/client/12/shared-secret")
    );

    let o = run(&["clients", "--stack", &stack, "--json"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let secret = |i: usize| listed[i]["secret"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        (secret(0), secret(1), secret(2)),
        ("own".into(), "shared".into(), "shared".into())
    );

    // The doctor: Acme's webhook is right; Globex's carries Acme's URL and
    // secret; Initech's campaign has none; user-level webhook 99 (this
    // stack's shared URL) takes EMAIL_REPLY from Acme's.
    let all = "EMAIL_SENT,FIRST_EMAIL_SENT,EMAIL_OPEN,EMAIL_LINK_CLICK,EMAIL_REPLY,EMAIL_BOUNCE,LEAD_UNSUBSCRIBED,LEAD_CATEGORY_UPDATED,CAMPAIGN_STATUS_CHANGED,UNTRACKED_REPLIES,MANUAL_STEP_REACHED";
    let events: Value = all
        .split(',')
        .map(|e| (e.to_owned(), json!(true)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let hook = |id: u64, client: u64, url: String| {
        json!([{"id": id, "name": "AWS webhook pipeline",
        "association_type": "client", "client_id": client, "webhook_url": url, "event_type_map": events}])
    };
    api.route(
        "GET /api/v1/campaigns/101/webhooks",
        &hook(511, 11, format!("{WEBHOOK_BASE}/client/11/{next}")).to_string(),
    );
    api.route(
        "GET /api/v1/campaigns/102/webhooks",
        &hook(512, 12, format!("{WEBHOOK_BASE}/client/11/{next}")).to_string(),
    );
    api.route("GET /api/v1/campaigns/103/webhooks", "[]");
    api.route(
        "GET /api/v1/webhook/99",
        &json!({"id": 99, "name": "AWS webhook pipeline", "association_type": "user",
                "webhook_url": format!("{WEBHOOK_BASE}/shared-secret"), "event_type_map": {"EMAIL_REPLY": true}})
        .to_string(),
    );
    let o = run(&["doctor", "--stack", &stack, "--webhook", "99"]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    for want in [
        "user-level webhook 99 takes EMAIL_REPLY for every campaign, so SmartLead sends none of them to the client webhook(s) 511, 512",
        "client 12's webhook 512 carries client 11's URL",
        // Only the user-level webhook's EMAIL_REPLY reaches Initech's campaign.
        "campaign 103: no webhook of this stack subscribes to CAMPAIGN_STATUS_CHANGED",
    ] {
        assert!(out.contains(want), "{want:?} missing in\n{out}");
    }
    assert!(!out.contains("webhook 511 carries"), "{out}");
    // Per client: Acme's view has the shadow and nothing of the others'.
    let o = run(&[
        "doctor",
        "--stack",
        &stack,
        "--webhook",
        "99",
        "--client",
        "11",
    ])
    .await;
    let out = text(&o);
    assert!(out.contains("user-level webhook 99"), "{out}");
    assert!(
        !out.contains("512") && !out.contains("campaign 103"),
        "{out}"
    );

    // --fix re-points Globex's webhook at its own URL (the shared secret).
    let before = api.recorded().len();
    let o = run(&["doctor", "--stack", &stack, "--fix"]).await;
    let out = text(&o);
    for want in [
        "client 13's campaign 103 has no webhook at all",
        &format!("smartlead register --client 13 --stack {stack}"),
    ] {
        assert!(out.contains(want), "{want:?} missing in\n{out}");
    }
    let puts: Vec<_> = api.recorded()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .cloned()
        .collect();
    assert_eq!(puts.len(), 1, "{out}\n{puts:?}");
    assert!(puts[0].target.starts_with("/api/v1/webhook/update/512?"));
    let body: Value = serde_json::from_str(&puts[0].body).unwrap();
    assert_eq!(
        body["webhook_url"],
        format!("{WEBHOOK_BASE}/client/12/shared-secret")
    );
    for leak in [next, "shared-secret", KEY] {
        assert!(!out.contains(leak), "{leak} printed");
    }
}

/// `reconcile --client` checks and backfills that client's campaigns only;
/// the report counts gaps per client.
#[tokio::test]
async fn reconcile_per_client_restores_only_that_client_s_gaps() {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto().endpoint()).await;
    let (stack, _, table, api) = agency("cli-agency-recon").await;
    let sqs = sqs().await;
    let (q, dlq) = (
        queue(&sqs, "agency-q").await,
        queue(&sqs, "agency-dlq").await,
    );
    // The agency stack's outputs lack the queues: a second stack names them.
    let qstack = format!("{stack}-q");
    create_stack(&cfg, &qstack, &table_and_queues(&table, &q, &dlq)).await;
    let (ddb, _) = (smartlead::aws_sdk_dynamodb::Client::new(&cfg), ());
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), &table);
    let t = smartlead::domain::time::EventTime::from_millis(
        smartlead::domain::time::EventTime::now().millis() - 3_600_000,
    )
    .unwrap()
    .to_string();
    // Acme's and Globex's campaigns each miss lead b's send.
    for campaign in [101u64, 102] {
        let sent = |n: u64| {
            json!({"event_type": "EMAIL_SENT", "to_email": format!("{n}@c{campaign}.example"),
            "campaign_id": campaign, "sequence_number": 1, "time_sent": t,
            "stats_id": format!("st-{campaign}-{n}"), "message_id": format!("<m{campaign}-{n}@x.example>")})
        };
        for n in [1u64, 3, 5] {
            test_support::store::apply_body(&store, sent(n), &format!("m-{campaign}-{n}"))
                .await
                .unwrap();
        }
        let rows: Vec<Value> = [1u64, 2, 3, 5].iter().map(|n| json!({"lead_email": format!("{n}@c{campaign}.example"),
            "lead_id": campaign * 10 + n, "sequence_number": 1, "stats_id": format!("st-{campaign}-{n}"),
            "sent_time": t, "open_count": 0})).collect();
        api.route(
            &format!("GET /api/v1/campaigns/{campaign}/statistics"),
            &json!({"total_stats": 4, "data": rows}).to_string(),
        );
        for n in [1u64, 2, 3, 5] {
            api.route(
                &format!("GET /api/v1/campaigns/{campaign}/leads/{}/message-history", campaign * 10 + n),
                &json!({"history": [{"type": "SENT", "message_id": format!("<m{campaign}-{n}@x.example>"),
                                     "time": t, "email_seq_number": 1}]}).to_string(),
            );
        }
    }
    api.route(
        "GET /api/v1/campaigns/103/statistics",
        &json!({"total_stats": 0, "data": []}).to_string(),
    );
    let o = smartlead(
        &[
            "reconcile",
            "--client",
            "11",
            "--since",
            "1d",
            "--stack",
            &qstack,
        ],
        &api.url,
        Some(KEY),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("client 11: 1 gap(s)"), "{out}");
    assert!(
        out.contains("1 campaign(s)") && out.contains("1 backfilled"),
        "{out}"
    );
    assert!(!out.contains("c102.example"), "{out}");
    let m = first_message(&sqs, &q).await;
    let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(body["message_id"], "<m101-2@x.example>");
    assert_eq!(depth(&sqs, &q).await, "0", "nothing of Globex's");
    // Without --client every campaign is checked, the gaps counted per client.
    let o = smartlead(
        &[
            "reconcile",
            "--all-campaigns",
            "--since",
            "1d",
            "--dry-run",
            "--stack",
            &qstack,
        ],
        &api.url,
        Some(KEY),
    )
    .await;
    let out = text(&o);
    assert!(out.contains("client 12: 1 gap(s)"), "{out}");
}

/// An unsubscribe for client 11 leaves the lead sendable for client 12:
/// `suppression --client` lists it for 11 only, a bounce for both, and
/// `lead` shows the scope.
#[tokio::test]
async fn suppression_per_client_follows_the_unsubscribe_s_clients() {
    let ddb = local_table().await;
    let unsub = json!({"event_type": "LEAD_UNSUBSCRIBED", "lead_email": "pat@scoped.example",
        "campaign_id": 101, "unsubscribed_client_id_map": {"11": true},
        "event_timestamp": "2025-04-02T10:00:00Z"});
    let bounce = json!({"event_type": "EMAIL_BOUNCE", "to_email": "dead@scoped.example",
        "campaign_id": 102, "bounce_message": "550 5.1.1 user unknown",
        "event_timestamp": "2025-04-02T11:00:00Z"});
    let table = smartlead::local_stack::TABLE;
    apply_bodies(&ddb, table, &[("m-scoped-b".to_owned(), bounce)]).await;
    // The unsubscribe as an agency's consumer applies it (the map scopes it).
    let mut ev = smartlead::SmartleadEvent::from_value(unsub).unwrap();
    ev.agency = true;
    let now = smartlead::domain::time::EventTime::now();
    let plan = smartlead::domain::plan::plan(&ev, now, &Default::default());
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(ddb.clone(), table);
    smartlead::app::store::Dedup::apply(&store, &plan, "m-scoped-u")
        .await
        .unwrap();
    let port = port_of(&dynamodb().endpoint());
    let listed = |client: &'static str| {
        let port = port.clone();
        async move {
            let o = aws_only(&[
                "suppression",
                "--json",
                "--client",
                client,
                "--local",
                "--dynamodb-port",
                &port,
            ])
            .await;
            assert!(o.status.success(), "{}", text(&o));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["email"].as_str().map(str::to_owned))
                .filter(|e| e.ends_with("@scoped.example"))
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        listed("11").await,
        ["dead@scoped.example", "pat@scoped.example"]
    );
    assert_eq!(listed("12").await, ["dead@scoped.example"]);
    let o = aws_only(&[
        "lead",
        "pat@scoped.example",
        "--local",
        "--dynamodb-port",
        &port,
    ])
    .await;
    assert!(
        text(&o).contains("SUPPRESSED for client 11 (still sendable for the other clients)"),
        "{}",
        text(&o)
    );
}
