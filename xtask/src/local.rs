//! The whole pipeline on this machine: DynamoDB Local and moto stand in for
//! AWS, both function binaries run under the Lambda Runtime Interface
//! Emulator, a small HTTP front turns requests into API Gateway 2.0 events,
//! and a poller does what the SQS event source mapping does.

use crate::template::Template;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use smartlead::aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub dynamodb: u16,
    pub moto: u16,
    /// The first ingest instance; further instances take the next ports.
    pub ingest: u16,
    pub consumer: u16,
    /// Chosen by [`Ports::free`]: a service whose port was taken before it
    /// bound it moves to another (the stack's `ports` say where it ended up).
    pub movable: bool,
}

impl Ports {
    /// Free ports for a test or benchmark stack.
    pub fn free(ingest_instances: usize) -> Ports {
        let p = local_aws::free_port;
        let ingest = local_aws::free_ports(ingest_instances.max(1) as u16);
        Ports {
            http: p(),
            dynamodb: p(),
            moto: p(),
            ingest,
            consumer: p(),
            movable: true,
        }
    }
}

pub const TOKEN: &str = crate::fixtures::LOCAL_TOKEN;
pub const TABLE: &str = smartlead::local_stack::TABLE;
pub const QUEUE: &str = smartlead::local_stack::QUEUE;
pub const DLQ: &str = smartlead::local_stack::DLQ;
pub const BUCKET: &str = "smartlead-claims";
pub const BUS: &str = "smartlead-events";
/// A queue subscribed to everything on the bus, so the local stack shows
/// what the fan-out published.
pub const BUS_TAP: &str = "smartlead-bus-tap";
pub const ALERT_TOPIC: &str = "smartlead-alerts";
/// A queue subscribed to the alert topic.
pub const ALERT_TAP: &str = "smartlead-alerts-tap";

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the `smartlead-ingest` and `smartlead-consumer` binaries are.
    pub bin_dir: std::path::PathBuf,
    /// Ingest functions behind the HTTP front. Each emulator answers one
    /// invoke at a time; Lambda would start more instances under load.
    pub ingest_instances: usize,
    /// The queue's visibility timeout here (the template's is minutes).
    pub visibility_secs: u32,
    /// Emit EMF metrics to the function logs (off for readable local logs).
    pub metrics: bool,
    /// Keep DynamoDB Local's data on disk here, so it survives a restart.
    pub dynamodb_dir: Option<std::path::PathBuf>,
    /// A Slack incoming-webhook URL for alerts (none locally by default).
    pub slack_url: Option<String>,
    /// Publish processed events to the bus (as the template does by default).
    pub fanout: bool,
    /// The ingest's `WEBHOOK_SECRET`: `current` or `current,next`.
    pub webhook_secret: String,
    /// moto listens on every interface, not only 127.0.0.1, so that
    /// `sam local`'s containers reach it (DynamoDB Local always does).
    pub moto_all_interfaces: bool,
}

impl Options {
    /// Debug binaries of this workspace (what `cargo build` makes).
    pub fn debug() -> Options {
        Options {
            bin_dir: target_dir().join("debug"),
            ingest_instances: 2,
            visibility_secs: 5,
            metrics: false,
            dynamodb_dir: None,
            slack_url: None,
            fanout: true,
            webhook_secret: TOKEN.into(),
            moto_all_interfaces: false,
        }
    }
}

pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

pub struct Stack {
    pub ports: Ports,
    pub options: Options,
    pub dynamodb: local_aws::Service,
    pub moto: local_aws::Service,
    pub ingest: Vec<local_aws::Service>,
    pub consumer: local_aws::Service,
    pub queue_url: String,
    pub dlq_url: String,
    pub table: String,
    pub sqs: smartlead::aws_sdk_sqs::Client,
    pub ddb: smartlead::aws_sdk_dynamodb::Client,
    #[cfg_attr(not(test), allow(dead_code))] // tests restore claim-check objects
    pub s3: smartlead::aws_sdk_s3::Client,
    pub ingest_env: Vec<(String, String)>,
    pub consumer_env: Vec<(String, String)>,
    /// `maxReceiveCount` of the redrive policy, from template.yaml.
    pub max_receive: String,
    /// With movable ports: the front's socket, bound at start.
    front: std::sync::Mutex<Option<std::net::TcpListener>>,
}

impl Stack {
    pub fn store(&self) -> smartlead::store::DynamoStore {
        smartlead::store::DynamoStore::new(self.ddb.clone(), self.table.clone())
    }
    pub fn ingest_pool(&self) -> Pool {
        Pool::new(self.ingest.iter().map(local_aws::rie_invoke_url).collect())
    }
    pub fn consumer_url(&self) -> String {
        local_aws::rie_invoke_url(&self.consumer)
    }
    /// Binds the HTTP front on its port and serves it in the background.
    pub async fn serve_front(&self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        let bound = self.front.lock().ok().and_then(|mut f| f.take());
        let listener = match bound {
            Some(l) => tokio::net::TcpListener::from_std(l)?,
            None => tokio::net::TcpListener::bind(("127.0.0.1", self.ports.http))
                .await
                .with_context(|| format!("binding 127.0.0.1:{}", self.ports.http))?,
        };
        Ok(tokio::spawn(serve_http(listener, self.ingest_pool())))
    }
}

fn check_port(what: &str, port: u16) -> Result<()> {
    if local_aws::port_in_use(port) {
        bail!("port {port} ({what}) is already in use; pick another with --{what}-port");
    }
    Ok(())
}

/// Creates the DLQ, the queue with its redrive policy, and the claim-check
/// bucket (idempotent). Returns (queue url, DLQ url).
async fn create_queues(
    sqs: &smartlead::aws_sdk_sqs::Client,
    s3: &smartlead::aws_sdk_s3::Client,
    max_receive: &str,
    visibility_secs: u32,
) -> Result<(String, String)> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(DLQ)
        .send()
        .await?
        .queue_url
        .context("dlq url")?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(QUEUE)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    s3.create_bucket().bucket(BUCKET).send().await?;
    Ok((queue_url, dlq_url))
}

async fn queue_arn(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("queue arn")
}

/// The fan-out bus and the alert topic (as the template declares them), each
/// with a tap queue. Returns the topic's ARN.
async fn create_integrations(
    cfg: &smartlead::aws::SdkConfig,
    sqs: &smartlead::aws_sdk_sqs::Client,
) -> Result<String> {
    let eb = aws_sdk_eventbridge::Client::new(cfg);
    if eb.describe_event_bus().name(BUS).send().await.is_err() {
        eb.create_event_bus().name(BUS).send().await?;
    }
    let tap = sqs
        .create_queue()
        .queue_name(BUS_TAP)
        .send()
        .await?
        .queue_url
        .context("tap url")?;
    eb.put_rule()
        .name("local-tap")
        .event_bus_name(BUS)
        .event_pattern(json!({"source": [smartlead::effects::SOURCE]}).to_string())
        .send()
        .await?;
    eb.put_targets()
        .rule("local-tap")
        .event_bus_name(BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(queue_arn(sqs, &tap).await?)
                .build()?,
        )
        .send()
        .await?;
    let sns = aws_sdk_sns::Client::new(cfg);
    let topic = sns
        .create_topic()
        .name(ALERT_TOPIC)
        .send()
        .await?
        .topic_arn
        .context("topic arn")?;
    let alert_tap = sqs
        .create_queue()
        .queue_name(ALERT_TAP)
        .send()
        .await?
        .queue_url
        .context("alert tap url")?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn(sqs, &alert_tap).await?)
        .send()
        .await?;
    Ok(topic)
}

/// Starts a service on `*port`; with `movable`, on another free port (kept
/// in `*port`) whenever that one was taken before the service bound it.
fn start_service(
    port: &mut u16,
    movable: bool,
    start: impl Fn(u16) -> Result<local_aws::Service, local_aws::StartError>,
) -> Result<local_aws::Service, local_aws::StartError> {
    if !movable {
        return start(*port);
    }
    let svc = match start(*port) {
        Err(e) if e.is_port_clash() => local_aws::start_on_free_port(&start)?,
        other => other?,
    };
    *port = svc.port;
    Ok(svc)
}

pub async fn start(root: &Path, ports: &Ports, options: &Options) -> Result<Stack> {
    let instances = options.ingest_instances.max(1);
    let mut ports = *ports;
    // Movable ports: the front binds now (any free port), so nothing can
    // take its port before it serves.
    let front = if ports.movable {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the front")?;
        l.set_nonblocking(true)?;
        ports.http = l.local_addr()?.port();
        Some(l)
    } else {
        None
    };
    let mut named = vec![
        ("http".to_owned(), ports.http),
        ("dynamodb".to_owned(), ports.dynamodb),
        ("moto".to_owned(), ports.moto),
        ("consumer".to_owned(), ports.consumer),
    ];
    for i in 0..instances {
        named.push(("ingest".to_owned(), ports.ingest + i as u16));
    }
    for (what, p) in &named {
        if !ports.movable {
            check_port(what, *p)?;
        }
    }
    let t = Template::load(root)?;
    let ddb_svc = start_service(&mut ports.dynamodb, ports.movable, |p| {
        local_aws::start_dynamodb_in(p, options.dynamodb_dir.as_deref())
    })
    .context("starting DynamoDB Local")?;
    let moto_host = if options.moto_all_interfaces {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    let moto = start_service(&mut ports.moto, ports.movable, |p| {
        local_aws::start_moto_on(moto_host, p)
    })
    .context("starting moto")?;
    let ddb_cfg = smartlead::aws::local_sdk_config(&ddb_svc.endpoint()).await;
    let moto_cfg = smartlead::aws::local_sdk_config(&moto.endpoint()).await;
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(&ddb_cfg);
    let sqs = smartlead::aws_sdk_sqs::Client::new(&moto_cfg);
    let s3 = smartlead::aws_sdk_s3::Client::from_conf(
        smartlead::aws_sdk_s3::config::Builder::from(&moto_cfg)
            .force_path_style(true)
            .build(),
    );

    // Resources as template.yaml declares them.
    let table_props = t.props("StateTable")?;
    let keys: Vec<String> = table_props["KeySchema"]
        .as_sequence()
        .context("KeySchema")?
        .iter()
        .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
        .collect();
    if keys != ["pk", "sk"] {
        bail!(
            "template.yaml's StateTable key schema {keys:?} is not the one the code uses (pk, sk)"
        );
    }
    let table = TABLE.to_owned();
    smartlead::store::create_table(&ddb, &table)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = t.props("WebhookQueue")?;
    t.resolve(&q["VisibilityTimeout"])
        .context("VisibilityTimeout")?;
    let max_receive = t
        .resolve(&q["RedrivePolicy"]["maxReceiveCount"])
        .context("maxReceiveCount")?;
    let (queue_url, dlq_url) =
        create_queues(&sqs, &s3, &max_receive, options.visibility_secs).await?;
    let alert_topic = create_integrations(&moto_cfg, &sqs).await?;

    let common: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        (
            "METRICS_DISABLED",
            if options.metrics { "0" } else { "1" }.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut ingest_env = common.clone();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("QUEUE_URL", queue_url.clone()),
        ("CLAIM_CHECK_BUCKET", BUCKET.into()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("WEBHOOK_SECRET", options.webhook_secret.clone()),
        ("WEBHOOK_PATH", t.default("WebhookPath")?),
        ("AUTH_METHODS", t.default("AuthMethods")?),
    ] {
        ingest_env.push((k.into(), v));
    }
    let mut consumer_env = common;
    for (k, v) in [
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb_svc.endpoint()),
        ("AWS_ENDPOINT_URL_S3", moto.endpoint()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("TABLE_NAME", table.clone()),
        ("DEDUP_TTL_DAYS", t.default("DedupTtlDays")?),
        ("SCORE_WEIGHTS", t.default("ScoreWeights")?),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.endpoint()),
        ("AWS_ENDPOINT_URL_SNS", moto.endpoint()),
        (
            "EVENT_BUS_NAME",
            if options.fanout { BUS } else { "" }.into(),
        ),
        ("ALERT_TOPIC_ARN", alert_topic),
        ("ALERT_EVENTS", t.default("AlertEvents")?),
        ("POSITIVE_CATEGORIES", t.default("PositiveCategories")?),
    ] {
        consumer_env.push((k.into(), v));
    }
    if let Some(url) = &options.slack_url {
        consumer_env.push(("SLACK_WEBHOOK_URL".into(), url.clone()));
    }
    let bin = &options.bin_dir;
    let movable = ports.movable;
    let ingest = (0..instances)
        .map(|i| {
            let mut port = ports.ingest + i as u16;
            start_service(&mut port, movable, |p| {
                local_aws::start_rie(&bin.join("smartlead-ingest"), p, &ingest_env)
            })
            .context("starting the ingest function")
        })
        .collect::<Result<Vec<_>>>()?;
    let consumer = start_service(&mut ports.consumer, movable, |p| {
        local_aws::start_rie(&bin.join("smartlead-consumer"), p, &consumer_env)
    })
    .context("starting the consumer function")?;
    Ok(Stack {
        ports,
        front: std::sync::Mutex::new(front),
        options: options.clone(),
        dynamodb: ddb_svc,
        moto,
        ingest,
        consumer,
        queue_url,
        dlq_url,
        table,
        sqs,
        ddb,
        s3,
        ingest_env,
        consumer_env,
        max_receive,
    })
}

/// Emulated function instances: each answers one invoke at a time (as one
/// Lambda instance does), so a call waits for a free one.
#[derive(Clone)]
pub struct Pool {
    free: Arc<std::sync::Mutex<Vec<String>>>,
    permits: Arc<tokio::sync::Semaphore>,
    http: reqwest::Client,
}

impl Pool {
    pub fn new(urls: Vec<String>) -> Pool {
        Pool {
            permits: Arc::new(tokio::sync::Semaphore::new(urls.len())),
            free: Arc::new(std::sync::Mutex::new(urls)),
            http: smartlead::http::client(),
        }
    }

    /// Invokes a free instance; `None` when the invoke failed as a whole
    /// (emulator unreachable, function crashed or timed out).
    pub async fn invoke(&self, event: &Value) -> Option<Value> {
        let _permit = self.permits.acquire().await.ok()?;
        let url = self.free.lock().ok()?.pop()?;
        let answer = self
            .http
            .post(&url)
            .json(event)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let out = match answer {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        if let Ok(mut free) = self.free.lock() {
            free.push(url);
        }
        // The emulator answers a crashed or timed-out invoke with an error object.
        out.filter(|v| v.get("errorType").is_none())
    }
}

/// Turns one HTTP request into an API Gateway HTTP API (2.0) event.
pub fn api_event(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    peer: &str,
) -> Value {
    use base64::Engine;
    // As API Gateway's HTTP API does: `rawPath` and `http.path` arrive
    // percent-decoded (`%2F` included), `rawQueryString` as sent, and
    // `queryStringParameters` decoded.
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| s.to_owned())
    };
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = decode(raw_path);
    let mut qs = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        qs.insert(decode(k), Value::String(decode(v)));
    }
    let mut h = Map::new();
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), Value::String(v.clone()));
    }
    let (body, b64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = chrono_now_ms();
    json!({
        "version": "2.0", "routeKey": "ANY /{proxy+}", "rawPath": path, "rawQueryString": query,
        "queryStringParameters": if qs.is_empty() { Value::Null } else { Value::Object(qs) },
        "headers": h,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "127.0.0.1", "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": peer, "userAgent": headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent")).map(|(_, v)| v.clone()).unwrap_or_default()},
            "requestId": format!("local-{now}-{}", rand_suffix()), "routeKey": "ANY /{proxy+}", "stage": "$default", "time": "", "timeEpoch": now
        },
        "body": body, "isBase64Encoded": b64
    })
}

fn chrono_now_ms() -> i64 {
    smartlead::time::EventTime::now().millis()
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn read_request(
    sock: &mut tokio::net::TcpStream,
) -> Result<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let header_end = loop {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            bail!("headers too large");
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or("GET").to_owned();
    let target = first.next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 10 * 1024 * 1024 {
        bail!("body too large for the local front (API Gateway's limit is 10 MB)");
    }
    let mut body = buf[header_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(len);
    Ok((method, target, headers, body))
}

/// The HTTP front: every request becomes an invoke of an ingest instance.
pub async fn serve_http(listener: tokio::net::TcpListener, ingest: Pool) -> Result<()> {
    loop {
        let (mut sock, peer) = listener.accept().await?;
        let ingest = ingest.clone();
        tokio::spawn(async move {
            let Ok((method, target, headers, body)) = read_request(&mut sock).await else {
                return;
            };
            let event = api_event(&method, &target, &headers, &body, &peer.ip().to_string());
            let (status, out_headers, out_body) = match ingest.invoke(&event).await {
                Some(v) if v.get("statusCode").is_some() => (
                    v["statusCode"].as_u64().unwrap_or(502) as u16,
                    v["headers"].as_object().cloned().unwrap_or_default(),
                    v["body"].as_str().unwrap_or_default().to_owned(),
                ),
                // Like API Gateway when the integration fails.
                _ => (502, Map::new(), "{\"error\":\"function error\"}".to_owned()),
            };
            let mut resp = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                reason(status),
                out_body.len()
            );
            for (k, v) in out_headers {
                if k != "content-length" {
                    resp.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap_or_default()));
                }
            }
            resp.push_str("\r\n");
            resp.push_str(&out_body);
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn reason(s: u16) -> &'static str {
    match s {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct Poll {
    pub received: usize,
    /// Message ids the consumer finished (processed, duplicate or rejected):
    /// deleted from the queue.
    pub done: Vec<String>,
    /// When the consumer's answer came back (the records' state is stored).
    pub answered_at: Option<std::time::Instant>,
    /// The invoke failed as a whole: nothing deleted, all come back.
    pub invoke_failed: bool,
}

/// An SQS event record as the Lambda event source mapping builds it.
fn sqs_event_record(m: &smartlead::aws_sdk_sqs::types::Message) -> Value {
    let attrs: Map<String, Value> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let mattrs: Map<String, Value> = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    let v = json!({"stringValue": v.string_value(), "dataType": v.data_type(),
                                   "stringListValues": [], "binaryListValues": []});
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
           "attributes": attrs, "messageAttributes": mattrs, "md5OfBody": m.md5_of_body(),
           "eventSource": "aws:sqs", "awsRegion": "us-east-1",
           "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{QUEUE}")})
}

/// One poll, as the SQS event source mapping does it: receive up to `batch`
/// messages, invoke the consumer, delete the successes (all but
/// `batchItemFailures`; none if the invoke failed as a whole).
pub async fn poll_once(stack: &Stack, consumer: &Pool, batch: i32, wait_secs: i32) -> Result<Poll> {
    let r = stack
        .sqs
        .receive_message()
        .queue_url(&stack.queue_url)
        .max_number_of_messages(batch)
        .wait_time_seconds(wait_secs)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let msgs = r.messages.unwrap_or_default();
    if msgs.is_empty() {
        return Ok(Poll::default());
    }
    let records: Vec<Value> = msgs.iter().map(sqs_event_record).collect();
    let out = consumer.invoke(&json!({"Records": records})).await;
    let answered_at = Some(std::time::Instant::now());
    let Some(failures) = out
        .as_ref()
        .and_then(|o| o.get("batchItemFailures"))
        .and_then(Value::as_array)
    else {
        return Ok(Poll {
            received: msgs.len(),
            done: Vec::new(),
            answered_at,
            invoke_failed: true,
        });
    };
    let failed: Vec<&str> = failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    let done: Vec<&smartlead::aws_sdk_sqs::types::Message> = msgs
        .iter()
        .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
        .collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = done
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        stack
            .sqs
            .delete_message_batch()
            .queue_url(&stack.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(Poll {
        received: msgs.len(),
        done: done
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect(),
        answered_at,
        invoke_failed: false,
    })
}

pub async fn depth(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> Result<(String, String)> {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let g = |k: QueueAttributeName| a.get(&k).cloned().unwrap_or_else(|| "?".into());
    Ok((
        g(QueueAttributeName::ApproximateNumberOfMessages),
        g(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// Prints a lead's state, the queue depths and recent rejected events.
pub async fn show(dynamodb_port: u16, moto_port: u16, email: Option<&str>) -> Result<()> {
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(
        &smartlead::aws::local_sdk_config(&format!("http://127.0.0.1:{dynamodb_port}")).await,
    );
    let sqs = smartlead::aws_sdk_sqs::Client::new(
        &smartlead::aws::local_sdk_config(&format!("http://127.0.0.1:{moto_port}")).await,
    );
    let url = |name: &'static str| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map(|o| o.queue_url.unwrap_or_default())
        }
    };
    let (queue_url, dlq_url) = (
        url("smartlead-webhooks")
            .await
            .context("is the local stack running?")?,
        url("smartlead-webhooks-dlq").await?,
    );
    let store = smartlead::store::DynamoStore::new(ddb, "smartlead-state");
    if let Some(email) = email {
        let items = store
            .partition(&format!("LEAD#{}", email.trim().to_ascii_lowercase()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let map: HashMap<String, Value> = items
            .iter()
            .map(|i| {
                let v = smartlead::store::item_to_json(i);
                (v["sk"].as_str().unwrap_or_default().to_owned(), v)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    }
    let (q, inflight) = depth(&sqs, &queue_url).await?;
    let (d, _) = depth(&sqs, &dlq_url).await?;
    println!("queue: {q} waiting, {inflight} in flight; DLQ: {d}");
    let (published, _) = depth(&sqs, &url(BUS_TAP).await?).await?;
    let (alerts, _) = depth(&sqs, &url(ALERT_TAP).await?).await?;
    println!("bus {BUS}: {published} events published (in the tap queue {BUS_TAP}); alerts on SNS: {alerts}");
    let rejected = store
        .partition("REJECTED")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in rejected.iter().rev().take(5) {
        let v = smartlead::store::item_to_json(r);
        println!(
            "rejected {} {}: {}",
            v["received_at"], v["reason"], v["detail"]
        );
    }
    Ok(())
}

/// One function log line, made readable: JSON records as
/// `LEVEL message key=value ...`, the emulator's REPORT lines as durations,
/// its other chatter and EMF metric documents dropped.
pub fn readable(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Ok(Value::Object(v)) = serde_json::from_str::<Value>(line) {
        if v.contains_key("_aws") {
            return None;
        }
        let level = v.get("level").and_then(Value::as_str).unwrap_or("INFO");
        let fields = v.get("fields").and_then(Value::as_object);
        let message = fields
            .and_then(|f| f.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut out = format!("{level:<5} {message}");
        for (k, val) in fields.into_iter().flatten() {
            if k != "message" {
                match val {
                    Value::String(s) => out.push_str(&format!(" {k}={s}")),
                    other => out.push_str(&format!(" {k}={other}")),
                }
            }
        }
        return Some(out);
    }
    if let Some(rest) = line.strip_prefix("REPORT RequestId: ") {
        let parts: Vec<&str> = rest.split('\t').map(str::trim).collect();
        let pick = |name: &str| parts.iter().find(|p| p.starts_with(name)).copied();
        let mut out = "REPORT".to_owned();
        for p in [pick("Init Duration"), pick("Duration")]
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(" {p}"));
        }
        return Some(out);
    }
    if line.contains("[WARN") || line.contains("[ERROR") || line.contains("panicked") {
        return Some(line.to_owned());
    }
    None
}

/// Follows the functions' log files and prints their lines readably.
pub async fn follow_logs(sources: Vec<(String, std::path::PathBuf)>) {
    use std::io::{Read, Seek, SeekFrom};
    let mut offsets = vec![0u64; sources.len()];
    let mut partial = vec![String::new(); sources.len()];
    loop {
        for (i, (label, path)) in sources.iter().enumerate() {
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0; // restarted: the file was truncated
            }
            if len == offsets[i] || f.seek(SeekFrom::Start(offsets[i])).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            offsets[i] += buf.len() as u64;
            partial[i].push_str(&String::from_utf8_lossy(&buf));
            while let Some(nl) = partial[i].find('\n') {
                let line: String = partial[i].drain(..=nl).collect();
                if let Some(text) = readable(&line) {
                    println!("{label:<9} {text}");
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What `xtask local` runs besides the stand-ins and the functions.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// No HTTP front (`sam local start-api` serves the port instead).
    pub no_front: bool,
    /// No SQS poller: messages stay on the queue (the `sam local` test reads them).
    pub no_poller: bool,
    /// Write a `sam local --env-vars` file for this stack here.
    pub sam_env_vars: Option<std::path::PathBuf>,
}

/// How `sam local`'s containers name this machine (Docker Desktop defines
/// it; on Linux `sam local --add-host host.docker.internal:host-gateway`).
pub const DOCKER_HOST: &str = "host.docker.internal";

/// The `sam local --env-vars` file pointing the functions at the local
/// stand-ins (events/env/local.json is this for the default ports). Every
/// key is one template.yaml declares once `LocalEndpoint` is set.
pub fn sam_env_vars(moto: &str, dynamodb: &str, queue_url: &str, alert_topic: &str) -> Value {
    json!({
        "IngestFunction": {
            "AWS_ENDPOINT_URL": moto,
            "QUEUE_URL": queue_url,
            "CLAIM_CHECK_BUCKET": BUCKET,
            "WEBHOOK_SECRET": TOKEN,
        },
        "ConsumerFunction": {
            "AWS_ENDPOINT_URL": moto,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
            "TABLE_NAME": TABLE,
            "EVENT_BUS_NAME": BUS,
            "ALERT_TOPIC_ARN": alert_topic,
        }
    })
}

fn env_value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod sam_env {
    use super::*;

    /// events/env/local.json is what `xtask local` writes for its default
    /// ports (those of `scripts/local.sh`), and `sam local` can set each of
    /// its variables: template.yaml declares them all for that function.
    #[test]
    fn the_documented_env_vars_file_matches_the_default_stack_and_the_template() {
        let root = crate::workspace_root();
        let file = std::fs::read_to_string(root.join("events/env/local.json")).unwrap();
        let documented: Value = serde_json::from_str(&file).unwrap();
        let want = sam_env_vars(
            "http://host.docker.internal:5000",
            "http://host.docker.internal:8000",
            "http://host.docker.internal:5000/123456789012/smartlead-webhooks",
            &format!("arn:aws:sns:us-east-1:123456789012:{ALERT_TOPIC}"),
        );
        assert_eq!(documented, want);
        let t = Template::load(&root).unwrap();
        for (f, vars) in want.as_object().unwrap() {
            let declared = &t.props(f).unwrap()["Environment"]["Variables"];
            for k in vars.as_object().unwrap().keys() {
                assert!(
                    declared.get(k.as_str()).is_some(),
                    "{f} does not declare {k}: sam local would ignore it"
                );
            }
        }
    }
}

/// Ctrl-C, or SIGTERM (a script stopping the stack it started in the background).
async fn wait_for_stop() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub async fn run(root: &Path, ports: Ports, options: Options, flags: RunFlags) -> Result<()> {
    let stack = Arc::new(start(root, &ports, &options).await?);
    if let Some(path) = &flags.sam_env_vars {
        // The containers reach the stand-ins through the Docker host.
        let moto = format!("http://{DOCKER_HOST}:{}", stack.ports.moto);
        let env = sam_env_vars(
            &moto,
            &format!("http://{DOCKER_HOST}:{}", stack.ports.dynamodb),
            &stack.queue_url.replacen(&stack.moto.endpoint(), &moto, 1),
            &env_value(&stack.consumer_env, "ALERT_TOPIC_ARN"),
        );
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{env:#}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let front = if flags.no_front {
        None
    } else {
        Some(stack.serve_front().await?)
    };
    println!("SmartLead pipeline running locally (Ctrl-C stops everything):");
    println!(
        "  webhook    POST http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}{}",
        stack.ports.http,
        if flags.no_front {
            " (not served here: the front is off)"
        } else {
            ""
        }
    );
    println!(
        "  DynamoDB   {} (table {})",
        stack.dynamodb.endpoint(),
        stack.table
    );
    println!(
        "  moto       {} (SQS {}, DLQ {} after {} receives, S3 {BUCKET})",
        stack.moto.endpoint(),
        stack.queue_url,
        stack.dlq_url,
        stack.max_receive
    );
    println!(
        "  functions  ingest {} (x{}), consumer {}",
        stack.ingest[0].endpoint(),
        stack.ingest.len(),
        stack.consumer.endpoint()
    );
    println!(
        "  log files  {}",
        stack
            .consumer
            .log
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!("  inspect    cargo run -q -p xtask -- show jane.doe@acme-corp.com");
    println!("try:  curl -s -XPOST 'http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}' -H 'content-type: application/json' -d @events/payloads/email_reply.json", ports.http);
    let mut sources: Vec<(String, std::path::PathBuf)> = stack
        .ingest
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("ingest/{i}"), s.log.clone()))
        .collect();
    sources.push(("consumer".into(), stack.consumer.log.clone()));
    let logs = tokio::spawn(follow_logs(sources));
    let poller_stack = stack.clone();
    let no_poller = flags.no_poller;
    let poller = tokio::spawn(async move {
        let consumer = Pool::new(vec![poller_stack.consumer_url()]);
        loop {
            if no_poller {
                std::future::pending::<()>().await;
            }
            match poll_once(&poller_stack, &consumer, 10, 1).await {
                Ok(p) if p.invoke_failed => {
                    println!("poller    {} received; the consumer invoke failed, all will be redelivered", p.received)
                }
                Ok(p) if p.received > 0 => println!(
                    "poller    {} received, {} done, {} to retry",
                    p.received,
                    p.done.len(),
                    p.received - p.done.len()
                ),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("poller    {e:#}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    wait_for_stop().await?;
    if let Some(front) = front {
        front.abort();
    }
    poller.abort();
    logs.abort();
    let rejected = stack
        .store()
        .partition("REJECTED")
        .await
        .map(|r| r.len())
        .unwrap_or(0);
    println!("stopping (this run kept {rejected} rejected events; all state was in memory)");
    drop(stack);
    Ok(())
}

/// Outages, for the fault tests.
#[cfg(test)]
impl Stack {
    /// Stops moto (SQS, S3): an SQS outage.
    pub fn stop_moto(&mut self) {
        self.moto.stop();
    }
    /// Starts moto again on its port and recreates the queues and bucket
    /// (moto keeps its state in memory).
    pub async fn restart_moto(&mut self) -> Result<()> {
        self.moto = local_aws::start_moto(self.ports.moto).context("restarting moto")?;
        create_queues(
            &self.sqs,
            &self.s3,
            &self.max_receive,
            self.options.visibility_secs,
        )
        .await
        .map(|_| ())
    }
    /// Stops DynamoDB Local (a DynamoDB outage). With `dynamodb_dir` set,
    /// its data comes back with [`Stack::restart_dynamodb`].
    pub fn stop_dynamodb(&mut self) {
        self.dynamodb.stop();
    }
    pub fn restart_dynamodb(&mut self) -> Result<()> {
        self.dynamodb =
            local_aws::start_dynamodb_in(self.ports.dynamodb, self.options.dynamodb_dir.as_deref())
                .context("restarting DynamoDB Local")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! End to end: HTTP front -> ingest bootstrap (RIE) -> moto SQS -> poller
    //! -> consumer bootstrap (RIE) -> DynamoDB Local.
    use super::*;
    use crate::fixtures::payloads;

    #[test]
    fn the_front_hands_over_the_path_decoded_as_api_gateway_does() {
        let target = "/webhooks/smartlead/Ab%2Bc%2Fd%3D?token=Ab%2Bc%2Fd%3D&x=1";
        let v = api_event("POST", target, &[], b"{}", "127.0.0.1");
        assert_eq!(v["rawPath"], "/webhooks/smartlead/Ab+c/d=");
        assert_eq!(v["requestContext"]["http"]["path"], v["rawPath"]);
        assert_eq!(v["rawQueryString"], "token=Ab%2Bc%2Fd%3D&x=1");
        assert_eq!(v["queryStringParameters"]["token"], "Ab+c/d=");
        // Still a valid API Gateway 2.0 event.
        let e: aws_lambda_events::event::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(v).expect("2.0 event");
        assert_eq!(e.raw_path.as_deref(), Some("/webhooks/smartlead/Ab+c/d="));
    }

    /// Polls until the queue is empty and nothing is in flight.
    async fn drain(stack: &Stack, consumer: &Pool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            let p = poll_once(stack, consumer, 10, 0).await.expect("poll");
            let (waiting, inflight) = depth(&stack.sqs, &stack.queue_url).await.expect("depth");
            if p.received == 0 && waiting == "0" && inflight == "0" {
                return;
            }
            if p.received == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        panic!("queue never drained");
    }

    async fn post(http: &reqwest::Client, url: &str, body: &str) -> u16 {
        http.post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("post")
            .status()
            .as_u16()
    }

    fn open(email: &str, second: u32) -> String {
        json!({"event_type": "EMAIL_OPEN", "to_email": email, "campaign_id": 77,
               "time_opened": format!("2025-03-01T10:00:{second:02}Z")})
        .to_string()
    }

    async fn opens(stack: &Stack, email: &str) -> Value {
        let items = stack
            .store()
            .partition(&format!("LEAD#{email}"))
            .await
            .expect("read state");
        items
            .iter()
            .map(smartlead::store::item_to_json)
            .find(|v| v["sk"] == "CAMPAIGN#77")
            .map(|v| v["opens"].clone())
            .unwrap_or(Value::Null)
    }

    /// A stack for fault tests: failed records come back after 1 s.
    async fn fault_stack(persist: bool) -> (Stack, String, Pool) {
        let root = crate::workspace_root();
        let dir = std::env::temp_dir().join(format!(
            "smartlead-ddb-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let options = Options {
            visibility_secs: 1,
            ingest_instances: 1,
            dynamodb_dir: persist.then_some(dir),
            ..Options::debug()
        };
        let ports = Ports::free(options.ingest_instances);
        let stack = start(&root, &ports, &options).await.expect("stack starts");
        stack.serve_front().await.expect("front");
        let consumer = Pool::new(vec![stack.consumer_url()]);
        let url = format!(
            "http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
            stack.ports.http
        );
        (stack, url, consumer)
    }

    #[tokio::test]
    async fn sqs_outage_answers_503_and_the_retry_is_processed_once() {
        let (mut stack, url, consumer) = fault_stack(false).await;
        let http = smartlead::http::client();
        assert_eq!(
            post(&http, &url, &open("before@fault.example", 1)).await,
            200
        );
        drain(&stack, &consumer).await;

        stack.stop_moto();
        let during = open("during@fault.example", 2);
        assert_eq!(
            post(&http, &url, &during).await,
            503,
            "no queue, no 200: SmartLead must retry"
        );
        stack.restart_moto().await.expect("moto back");
        // SmartLead retries the refused webhook, and once more for luck.
        assert_eq!(post(&http, &url, &during).await, 200);
        assert_eq!(post(&http, &url, &during).await, 200);
        drain(&stack, &consumer).await;
        assert_eq!(opens(&stack, "during@fault.example").await, 1);
        assert_eq!(opens(&stack, "before@fault.example").await, 1);
    }

    #[tokio::test]
    async fn dynamodb_outage_mid_run_is_retried_and_applied_once() {
        let (mut stack, url, consumer) = fault_stack(true).await;
        let http = smartlead::http::client();
        for i in 0..20 {
            let email = format!("lead{}@ddb-fault.example", i % 10);
            assert_eq!(post(&http, &url, &open(&email, i)).await, 200);
        }
        // One batch goes through, then DynamoDB goes away mid-run.
        let first = poll_once(&stack, &consumer, 10, 0).await.unwrap();
        assert!(!first.done.is_empty());
        stack.stop_dynamodb();
        let failed = poll_once(&stack, &consumer, 10, 1).await.unwrap();
        assert!(failed.received > 0, "records were waiting");
        assert!(
            failed.done.is_empty(),
            "nothing may be acknowledged while DynamoDB is down"
        );
        stack.restart_dynamodb().expect("DynamoDB back");
        // Redeliveries and duplicates of already stored events, after the outage.
        for i in 0..5 {
            let email = format!("lead{i}@ddb-fault.example");
            assert_eq!(post(&http, &url, &open(&email, i)).await, 200);
        }
        drain(&stack, &consumer).await;
        for i in 0..10 {
            let email = format!("lead{i}@ddb-fault.example");
            assert_eq!(
                opens(&stack, &email).await,
                2,
                "{email}: two distinct opens"
            );
        }
    }

    #[tokio::test]
    async fn a_record_that_keeps_failing_reaches_the_dlq_and_can_be_redriven() {
        use smartlead::aws_sdk_sqs::types::MessageAttributeValue;
        let (stack, _url, consumer) = fault_stack(false).await;
        // A claim-checked webhook whose bucket is not there yet: S3 fails on
        // every delivery (transient: the object may come back).
        let body = open("dlq@fault.example", 5);
        let cc = smartlead::message::ClaimCheckMessage {
            claim_check: smartlead::message::ClaimCheck {
                bucket: "smartlead-claims-restored".into(),
                key: "claims/dlq-test".into(),
                size: body.len() as u64,
                sha256: smartlead::message::sha256_hex(body.as_bytes()),
            },
        };
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        stack
            .sqs
            .send_message()
            .queue_url(&stack.queue_url)
            .message_body(serde_json::to_string(&cc).unwrap())
            .message_attributes(smartlead::message::attr::BODY_LOCATION, attr("s3"))
            .message_attributes(smartlead::message::attr::EVENT_TYPE, attr("EMAIL_OPEN"))
            .send()
            .await
            .unwrap();
        let max: usize = stack.max_receive.parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut receives = 0;
        while depth(&stack.sqs, &stack.dlq_url).await.unwrap().0 != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the DLQ"
            );
            let p = poll_once(&stack, &consumer, 10, 1).await.unwrap();
            assert!(p.done.is_empty(), "a failing record is never acknowledged");
            receives += p.received;
            if p.received == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        assert_eq!(
            receives, max,
            "delivered maxReceiveCount times, then the DLQ"
        );
        assert_eq!(opens(&stack, "dlq@fault.example").await, Value::Null);

        // The operator restores the object and redrives the DLQ.
        stack
            .s3
            .create_bucket()
            .bucket("smartlead-claims-restored")
            .send()
            .await
            .unwrap();
        stack
            .s3
            .put_object()
            .bucket("smartlead-claims-restored")
            .key("claims/dlq-test")
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
        let redrive = smartlead::redrive::Options {
            limit: None,
            max_age: Some(smartlead::redrive::max_age(
                smartlead::store::DEFAULT_DEDUP_TTL_DAYS,
            )),
        };
        let moved = smartlead::redrive::redrive(
            &stack.sqs,
            &stack.dlq_url,
            &stack.queue_url,
            &redrive,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(moved.moved, 1);
        assert_eq!(depth(&stack.sqs, &stack.dlq_url).await.unwrap().0, "0");
        drain(&stack, &consumer).await;
        assert_eq!(opens(&stack, "dlq@fault.example").await, 1);
    }

    #[tokio::test]
    async fn webhooks_over_http_end_as_state_exactly_once() {
        let root = crate::workspace_root();
        // Mid-rotation: a second, base64 secret (`+`, `/`, `=`) is live too.
        let next = "q9+Zx/Lm0w==";
        let options = Options {
            webhook_secret: format!("{TOKEN},{next}"),
            ..Options::debug()
        };
        let ports = Ports::free(options.ingest_instances);
        let stack = start(&root, &ports, &options).await.expect("stack starts");
        stack.serve_front().await.expect("front");
        let consumer = Pool::new(vec![stack.consumer_url()]);
        let base = format!("http://127.0.0.1:{}/webhooks/smartlead", stack.ports.http);
        let http = smartlead::http::client();
        let post = |url: String, body: String| {
            let http = http.clone();
            async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post")
                    .status()
                    .as_u16()
            }
        };

        // Every payload, the reply five times over, and 50 concurrent posts with duplicates.
        let all = payloads(&root).unwrap();
        for (name, body) in &all {
            assert_eq!(
                post(format!("{base}?token={TOKEN}"), body.clone()).await,
                200,
                "{name}"
            );
        }
        for _ in 0..5 {
            assert_eq!(
                post(format!("{base}/{TOKEN}"), all["email_reply"].clone()).await,
                200
            );
        }
        // The URL `smartlead register` builds for the next secret (path,
        // then the same token as `?token=`), through the front as API Gateway.
        let url = smartlead::ingest::webhook_url(&format!("{base}/<secret>"), &format!("{next}\n"));
        assert!(url.ends_with("/q9%2BZx%2FLm0w%3D%3D"), "{url}");
        assert_eq!(
            post(url.clone(), all["email_reply"].clone()).await,
            200,
            "{url}"
        );
        let token = url.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            post(format!("{base}?token={token}"), all["email_reply"].clone()).await,
            200
        );
        let mut tasks = Vec::new();
        for i in 0..50 {
            let body = serde_json::json!({"event_type": "EMAIL_OPEN", "to_email": format!("burst{}@e2e.example", i % 10), "campaign_id": 9, "time_opened": format!("2025-02-01T10:00:{:02}Z", i % 25)}).to_string();
            tasks.push(tokio::spawn(post(format!("{base}?token={TOKEN}"), body)));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        // Bad requests: documented statuses, nothing queued.
        let (before, _) = depth(&stack.sqs, &stack.queue_url).await.unwrap();
        assert_eq!(
            post(format!("{base}?token=wrong"), all["email_open"].clone()).await,
            401
        );
        assert_eq!(
            post(format!("{base}?token={TOKEN}"), "not json".into()).await,
            400
        );
        assert_eq!(
            post(format!("{base}?token={TOKEN}"), "{}".into()).await,
            400
        );
        assert_eq!(
            post(
                format!("http://127.0.0.1:{}/elsewhere", stack.ports.http),
                "{}".into()
            )
            .await,
            404
        );
        let get = http
            .get(format!("{base}?token={TOKEN}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(get, 405);
        assert_eq!(
            depth(&stack.sqs, &stack.queue_url).await.unwrap().0,
            before,
            "rejected requests left no trace"
        );

        drain(&stack, &consumer).await;
        let store = stack.store();
        let jane = store
            .partition("LEAD#jane.doe@acme-corp.com")
            .await
            .unwrap();
        let campaign = jane
            .iter()
            .map(smartlead::store::item_to_json)
            .find(|v| v["sk"] == "CAMPAIGN#123")
            .expect("campaign item");
        assert_eq!(
            campaign["replies"], 1,
            "six deliveries of one reply, one effect"
        );
        assert_eq!(campaign["opens"], 1);
        for i in 0..10 {
            let items = store
                .partition(&format!("LEAD#burst{i}@e2e.example"))
                .await
                .unwrap();
            let v = smartlead::store::item_to_json(&items[0]);
            // Lead i got posts i, i+10, ..., i+40: times i%25 differ except where they collide.
            let distinct: std::collections::BTreeSet<usize> =
                (0..5).map(|k| (i + 10 * k) % 25).collect();
            assert_eq!(v["opens"], distinct.len(), "burst{i}");
        }

        // The fan-out published each event once; the reply alerted once.
        let published = drain_tap(&stack, BUS_TAP).await;
        let keys: std::collections::BTreeSet<&str> = published
            .iter()
            .filter_map(|e| e["detail"]["dedup_key"].as_str())
            .collect();
        assert_eq!(keys.len(), published.len(), "nothing published twice");
        let replies = published
            .iter()
            .filter(|e| {
                e["detail-type"] == "EMAIL_REPLY"
                    && e["detail"]["normalized"]["lead_email"] == "jane.doe@acme-corp.com"
            })
            .count();
        assert_eq!(replies, 1);
        assert!(published.len() >= 30, "{} published", published.len());
        let alerts = drain_tap(&stack, ALERT_TAP).await;
        let jane_reply = alerts
            .iter()
            .filter(|a| {
                a["Message"].as_str().is_some_and(|m| {
                    m.starts_with("Reply from") && m.contains("jane.doe@acme-corp.com")
                })
            })
            .count();
        assert_eq!(jane_reply, 1, "{alerts:?}");
    }

    /// Every item of the table, keyed `pk|sk`, with what differs between two
    /// spellings of one event left out: dedup markers, `*_order` registers
    /// (they end in the key's hash), bookkeeping, and the sort keys and
    /// bodies of raw records. With `clear`, the items are deleted too.
    async fn table_state(stack: &Stack, clear: bool) -> std::collections::BTreeMap<String, Value> {
        let store = stack.store();
        let mut out = std::collections::BTreeMap::new();
        for item in store.scan_all().await.expect("scan") {
            if clear {
                let key: HashMap<_, _> = item
                    .iter()
                    .filter(|(k, _)| *k == "pk" || *k == "sk")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                store
                    .client
                    .delete_item()
                    .table_name(&store.table)
                    .set_key(Some(key))
                    .send()
                    .await
                    .expect("delete");
            }
            let mut v = smartlead::store::item_to_json(&item);
            let pk = v["pk"].as_str().unwrap_or_default().to_owned();
            let sk = v["sk"].as_str().unwrap_or_default().to_owned();
            if pk.starts_with("EVENT#") {
                continue;
            }
            if pk.starts_with("UNKNOWN#") || pk.starts_with("UNATTRIBUTED#") {
                out.insert(pk.clone(), json!({ "pk": pk }));
                continue;
            }
            let o = v.as_object_mut().expect("item");
            o.retain(|a, _| {
                !a.ends_with("_order")
                    && !matches!(
                        a.as_str(),
                        "processed_at" | "message_id" | "expires_at" | "ek" | "ek_old"
                    )
            });
            out.insert(format!("{pk}|{sk}"), v);
        }
        out
    }

    #[tokio::test]
    async fn every_shape_over_http_ends_as_the_state_of_its_flat_twin() {
        let root = crate::workspace_root();
        let options = Options::debug();
        let ports = Ports::free(options.ingest_instances);
        let stack = start(&root, &ports, &options).await.expect("stack starts");
        stack.serve_front().await.expect("front");
        let consumer = Pool::new(vec![stack.consumer_url()]);
        let url = format!(
            "http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
            stack.ports.http
        );
        let http = smartlead::http::client();
        // As SmartLead posts: the envelope with its X-Request-Id and X-Webhook-Level.
        let send = |body: String, headers: Vec<(&'static str, String)>| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                for (k, v) in headers {
                    r = r.header(k, v);
                }
                r.send().await.expect("post").status().as_u16()
            }
        };
        let headers = |body: &str| {
            crate::fixtures::delivery_headers(body)
                .into_iter()
                .map(|(h, _, v)| (h, v))
                .collect::<Vec<_>>()
        };
        let all = payloads(&root).unwrap();
        let twins = crate::fixtures::twins(&root).unwrap();
        assert!(twins.len() >= 15, "{} twins", twins.len());
        for (name, twin) in &twins {
            let body = &all[name];
            assert_eq!(send(body.clone(), headers(body)).await, 200, "{name}");
            drain(&stack, &consumer).await;
            let shaped = table_state(&stack, true).await;
            assert_eq!(send(twin.clone(), Vec::new()).await, 200, "{name} twin");
            drain(&stack, &consumer).await;
            let flat = table_state(&stack, true).await;
            assert!(!shaped.is_empty(), "{name}: no state");
            assert_eq!(shaped, flat, "{name}: the shape ends as its flat twin");
        }

        // SmartLead's retry of an envelope (attempt 2, same X-Request-Id), a
        // redelivery with the same X-Request-Id but other bytes, and a re-send
        // of the same open without the header are duplicates.
        let envelope = &all["envelope_email_account_disconnected"];
        assert_eq!(send(envelope.clone(), headers(envelope)).await, 200);
        let mut retry: Value = serde_json::from_str(envelope).unwrap();
        retry["meta"]["attempt"] = json!(2);
        assert_eq!(send(retry.to_string(), headers(envelope)).await, 200);
        let open = json!({"event_type": "EMAIL_OPEN", "to_email": "rid@e2e.example", "campaign_id": 78, "time_opened": "2025-03-01T10:00:00Z"});
        let mut other = open.clone();
        other["campaign_name"] = json!("renamed");
        let id = vec![("x-request-id", "req-e2e-0001".to_owned())];
        assert_eq!(send(open.to_string(), id.clone()).await, 200);
        assert_eq!(send(other.to_string(), id).await, 200);
        assert_eq!(send(open.to_string(), Vec::new()).await, 200);
        // An unknown dotted type is accepted and kept.
        let unknown = &all["envelope_unknown_type"];
        assert_eq!(send(unknown.clone(), headers(unknown)).await, 200);
        drain(&stack, &consumer).await;
        let state = table_state(&stack, false).await;
        assert_eq!(
            state["ACCOUNT#31338|HEALTH#EMAIL"]["disconnects"], 1,
            "{state:#?}"
        );
        assert_eq!(state["LEAD#rid@e2e.example|CAMPAIGN#78"]["opens"], 1);
        assert!(state.contains_key("UNKNOWN#email.account.warmup_paused"));
    }

    async fn drain_tap(stack: &Stack, queue: &str) -> Vec<Value> {
        let url = stack
            .sqs
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let mut out = Vec::new();
        loop {
            let msgs = stack
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                out.push(serde_json::from_str(m.body().unwrap_or("null")).unwrap());
                stack
                    .sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}
