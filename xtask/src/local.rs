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

pub struct Ports {
    pub http: u16,
    pub dynamodb: u16,
    pub moto: u16,
    pub ingest: u16,
    pub consumer: u16,
}

pub const TOKEN: &str = crate::fixtures::LOCAL_TOKEN;

pub struct Stack {
    pub services: Vec<local_aws::Service>,
    pub queue_url: String,
    pub dlq_url: String,
    pub table: String,
    pub sqs: smartlead::aws_sdk_sqs::Client,
    pub ddb: smartlead::aws_sdk_dynamodb::Client,
}

impl Stack {
    pub fn store(&self) -> smartlead::store::DynamoStore {
        smartlead::store::DynamoStore::new(self.ddb.clone(), self.table.clone())
    }
}

fn check_port(what: &str, port: u16) -> Result<()> {
    if local_aws::port_in_use(port) {
        bail!("port {port} ({what}) is already in use; pick another with --{what}-port");
    }
    Ok(())
}

pub async fn start(root: &Path, ports: &Ports) -> Result<Stack> {
    for (what, p) in [
        ("http", ports.http),
        ("dynamodb", ports.dynamodb),
        ("moto", ports.moto),
        ("ingest", ports.ingest),
        ("consumer", ports.consumer),
    ] {
        check_port(what, p)?;
    }
    let t = Template::load(root)?;
    let ddb_svc = local_aws::start_dynamodb(ports.dynamodb).context("starting DynamoDB Local")?;
    let moto = local_aws::start_moto(ports.moto).context("starting moto")?;
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
    let table = "smartlead-state".to_owned();
    smartlead::store::create_table(&ddb, &table)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = t.props("WebhookQueue")?;
    let visibility = t
        .resolve(&q["VisibilityTimeout"])
        .context("VisibilityTimeout")?;
    let max_receive = t
        .resolve(&q["RedrivePolicy"]["maxReceiveCount"])
        .context("maxReceiveCount")?;
    let dlq_url = sqs
        .create_queue()
        .queue_name("smartlead-webhooks-dlq")
        .send()
        .await?
        .queue_url
        .context("dlq url")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("dlq arn")?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name("smartlead-webhooks")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            local_visibility(&visibility),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    s3.create_bucket().bucket("smartlead-claims").send().await?;

    let common: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("METRICS_DISABLED", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut ingest_env = common.clone();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("QUEUE_URL", queue_url.clone()),
        ("CLAIM_CHECK_BUCKET", "smartlead-claims".into()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("WEBHOOK_SECRET", TOKEN.into()),
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
    ] {
        consumer_env.push((k.into(), v));
    }
    let bin = root.join("target/debug");
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| Path::new(&d).join("debug"))
        .unwrap_or(bin);
    let ingest = local_aws::start_rie(&bin.join("smartlead-ingest"), ports.ingest, &ingest_env)
        .context("starting the ingest function")?;
    let consumer = local_aws::start_rie(
        &bin.join("smartlead-consumer"),
        ports.consumer,
        &consumer_env,
    )
    .context("starting the consumer function")?;
    Ok(Stack {
        services: vec![ddb_svc, moto, ingest, consumer],
        queue_url,
        dlq_url,
        table,
        sqs,
        ddb,
    })
}

/// Locally a failed record comes back after a few seconds, not minutes.
fn local_visibility(_template_value: &str) -> String {
    "5".into()
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
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut qs = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        qs.insert(k.to_owned(), Value::String(v.to_owned()));
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

/// The HTTP front: every request becomes an invoke of the ingest function.
pub async fn serve_http(listener: tokio::net::TcpListener, invoke_url: String) -> Result<()> {
    let http = reqwest::Client::new();
    // The emulator runs one invoke at a time (like one Lambda instance):
    // concurrent requests queue here instead of being refused.
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let (mut sock, peer) = listener.accept().await?;
        let http = http.clone();
        let url = invoke_url.clone();
        let lock = one_at_a_time.clone();
        tokio::spawn(async move {
            let Ok((method, target, headers, body)) = read_request(&mut sock).await else {
                return;
            };
            let event = api_event(&method, &target, &headers, &body, &peer.ip().to_string());
            let guard = lock.lock().await;
            let answer = http
                .post(&url)
                .json(&event)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            let answer = match answer {
                Ok(r) => r.json::<Value>().await.map_err(|_| ()),
                Err(_) => Err(()),
            };
            drop(guard);
            let (status, out_headers, out_body) = match answer {
                Ok(v) if v.get("statusCode").is_some() => (
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

/// One poll: receive up to `batch` messages, invoke the consumer, delete the
/// successes (all but `batchItemFailures`; none if the invoke itself failed).
/// Returns (received, deleted).
pub async fn poll_once(
    stack: &Stack,
    http: &reqwest::Client,
    invoke_url: &str,
    batch: i32,
    wait_secs: i32,
) -> Result<(usize, usize)> {
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
        return Ok((0, 0));
    }
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let attrs: Map<String, Value> = m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect()).unwrap_or_default();
            let mattrs: Map<String, Value> = m
                .message_attributes()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": []}))).collect())
                .unwrap_or_default();
            json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": attrs, "messageAttributes": mattrs,
                   "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:smartlead-webhooks", "awsRegion": "us-east-1"})
        })
        .collect();
    let out: Value = match http
        .post(invoke_url)
        .json(&json!({"Records": records}))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let Some(failures) = out.get("batchItemFailures").and_then(Value::as_array) else {
        // The invoke failed as a whole: like Lambda, delete nothing.
        return Ok((msgs.len(), 0));
    };
    let failed: Vec<&str> = failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.contains(&m.message_id().unwrap_or_default()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    let n = entries.len();
    if n > 0 {
        stack
            .sqs
            .delete_message_batch()
            .queue_url(&stack.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok((msgs.len(), n))
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

pub async fn run(root: &Path, ports: Ports) -> Result<()> {
    let stack = Arc::new(start(root, &ports).await?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.http))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", ports.http))?;
    let ingest_url = local_aws::rie_invoke_url(&stack.services[2]);
    let consumer_url = local_aws::rie_invoke_url(&stack.services[3]);
    println!("SmartLead pipeline running locally (Ctrl-C stops everything):");
    println!(
        "  webhook    POST http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}",
        ports.http
    );
    println!(
        "  DynamoDB   {} (table {})",
        stack.services[0].endpoint(),
        stack.table
    );
    println!(
        "  moto       {} (SQS {}, DLQ {}, S3 smartlead-claims)",
        stack.services[1].endpoint(),
        stack.queue_url,
        stack.dlq_url
    );
    println!("  inspect    cargo run -q -p xtask -- show jane.doe@acme-corp.com");
    println!(
        "  functions  ingest {}  consumer {}",
        stack.services[2].endpoint(),
        stack.services[3].endpoint()
    );
    println!(
        "  logs       {}",
        stack.services[2]
            .log
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!("try:  curl -s -XPOST 'http://127.0.0.1:{}/webhooks/smartlead?token={TOKEN}' -H 'content-type: application/json' -d @events/payloads/email_reply.json", ports.http);
    let front = tokio::spawn(serve_http(listener, ingest_url));
    let poller_stack = stack.clone();
    let poller = tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            match poll_once(&poller_stack, &http, &consumer_url, 10, 1).await {
                Ok((r, d)) if r > 0 => {
                    println!("consumer: {r} received, {d} done, {} to retry", r - d)
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("poller: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    tokio::signal::ctrl_c().await?;
    front.abort();
    poller.abort();
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

#[cfg(test)]
mod tests {
    //! End to end: HTTP front -> ingest bootstrap (RIE) -> moto SQS -> poller
    //! -> consumer bootstrap (RIE) -> DynamoDB Local.
    use super::*;
    use crate::fixtures::payloads;

    fn free_ports() -> Ports {
        let p = local_aws::free_port;
        Ports {
            http: p(),
            dynamodb: p(),
            moto: p(),
            ingest: p(),
            consumer: p(),
        }
    }

    async fn drain(stack: &Stack, consumer: &str) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let (received, _) = poll_once(stack, &http, consumer, 10, 0)
                .await
                .expect("poll");
            let (waiting, inflight) = depth(&stack.sqs, &stack.queue_url).await.expect("depth");
            if received == 0 && waiting == "0" && inflight == "0" {
                return;
            }
        }
        panic!("queue never drained");
    }

    #[tokio::test]
    async fn webhooks_over_http_end_as_state_exactly_once() {
        let root = crate::workspace_root();
        let ports = free_ports();
        let stack = start(&root, &ports).await.expect("stack starts");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.http))
            .await
            .unwrap();
        tokio::spawn(serve_http(
            listener,
            local_aws::rie_invoke_url(&stack.services[2]),
        ));
        let consumer = local_aws::rie_invoke_url(&stack.services[3]);
        let base = format!("http://127.0.0.1:{}/webhooks/smartlead", ports.http);
        let http = reqwest::Client::new();
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
                format!("http://127.0.0.1:{}/elsewhere", ports.http),
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
    }
}
