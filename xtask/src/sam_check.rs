//! `xtask sam-check`: the checks `scripts/sam-local-test.sh` makes of what
//! `sam local invoke` and `sam local start-api` answered, and of what the
//! stand-ins hold afterwards (moto's queue, DynamoDB Local's table). A
//! mismatch is an error with its reason; `main` prints it and exits 1.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::{item_to_json, DynamoStore, SEEN_ATTR, SEEN_OLD_ATTR};
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};

/// The item on which `events/sqs/batch_all.json` counts a reply.
const LEAD_PK: &str = "LEAD#jane.doe@acme-corp.com";
const LEAD_SK: &str = "CAMPAIGN#123";

/// How much of an unexpected text an error quotes.
const QUOTED_CHARS: usize = 200;

type Item = HashMap<String, AttributeValue>;

#[derive(clap::Args)]
pub struct Args {
    /// moto's endpoint as this machine reaches it.
    #[arg(long)]
    moto: String,
    /// DynamoDB Local's endpoint.
    #[arg(long)]
    dynamodb: String,
    /// The stack's `sam local --env-vars` file (`xtask local --sam-env-vars`).
    #[arg(long)]
    env: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// The ingest answered 200 {"status": "received", "id": ...} (OUT: `sam
    /// local invoke`'s stdout).
    IngestAnswer { out: PathBuf },
    /// The consumer answered {"batchItemFailures": []} (OUT: `sam local
    /// invoke`'s stdout).
    NoBatchFailures { out: PathBuf },
    /// The ingest's queue holds each DIR/*.json once, byte for byte; the
    /// messages (received and deleted) are saved to SAVE.
    QueueHolds { dir: PathBuf, save: PathBuf },
    /// The ingest's queue holds exactly what `curl -d @FILE` sent.
    QueueHoldsOne { file: PathBuf },
    /// The messages queue-holds saved (SAVED) as the SQS event Lambda gets,
    /// written to EVENT.
    QueuedAsSqsEvent { saved: PathBuf, event: PathBuf },
    /// DynamoDB Local holds the state of BATCH (an SQS event), each record
    /// absorbed once; the table is saved to SAVE.
    StateAfter { batch: PathBuf, save: PathBuf },
    /// An HTTP answer (STATUS: curl's `%{http_code}`, BODY: the body) is
    /// CODE with the body the README documents for it.
    HttpAnswer {
        code: u16,
        status: PathBuf,
        body: PathBuf,
    },
}

/// Runs the check `a` names: `Err` with the reason on a mismatch.
pub fn run(a: &Args) -> Result<()> {
    match &a.verb {
        Verb::IngestAnswer { out } => ingest_answer(&last_json(out)?),
        Verb::NoBatchFailures { out } => no_batch_failures(&last_json(out)?),
        Verb::HttpAnswer { code, status, body } => http_answer(*code, &read(status)?, &read(body)?),
        Verb::QueueHolds { dir, save } => on_stand_ins(a, |s| s.queue_holds(dir, save)),
        Verb::QueueHoldsOne { file } => on_stand_ins(a, |s| s.queue_holds_one(file)),
        Verb::QueuedAsSqsEvent { saved, event } => {
            on_stand_ins(a, |s| s.queued_as_sqs_event(saved, event))
        }
        Verb::StateAfter { batch, save } => on_stand_ins(a, |s| s.state_after(batch, save)),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The first [`QUOTED_CHARS`] characters of `text`.
fn quote(text: &str) -> String {
    text.chars().take(QUOTED_CHARS).collect()
}

/// JSON's truth as the documented answers use it: a value that is there,
/// not null, false, zero or empty.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// `{"status": "received", "id": ...}` with an id: what the ingest answers
/// a webhook it queued.
fn is_received(body: &Value) -> bool {
    body.get("status").and_then(Value::as_str) == Some("received") && truthy(body.get("id"))
}

/// The function's answer: `sam local invoke` prints it as the last
/// non-blank line of its stdout.
fn last_json_line(stdout: &str) -> Result<Value> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("no answer")?;
    serde_json::from_str(line).map_err(|_| anyhow!("not JSON: {}", quote(line)))
}

/// [`last_json_line`] of the file `path`.
fn last_json(path: &Path) -> Result<Value> {
    last_json_line(&read(path)?).with_context(|| path.display().to_string())
}

/// The ingest's answer (API Gateway's proxy shape) is 200 and received.
fn ingest_answer(out: &Value) -> Result<()> {
    let status = out.get("statusCode");
    if status.and_then(Value::as_f64) != Some(200.0) {
        let shown = status.map_or_else(|| "none".to_owned(), Value::to_string);
        bail!("status {shown}, want 200: {out}");
    }
    let body = match out.get("body").filter(|b| truthy(Some(*b))) {
        None => json!({}),
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|_| anyhow!("body is not JSON: {}", quote(text)))?
        }
        Some(other) => bail!("body {other}, want the JSON body as a string"),
    };
    if !is_received(&body) {
        bail!("body {body}, want received with an id");
    }
    Ok(())
}

/// The consumer's answer reports no failed record.
fn no_batch_failures(out: &Value) -> Result<()> {
    if *out != json!({"batchItemFailures": []}) {
        bail!("answer {out}, want no batch item failures");
    }
    Ok(())
}

/// An HTTP answer is `want`, with the body the README shows for it (200:
/// received with an id; 401: `{"error": "unauthorized"}`).
fn http_answer(want: u16, status: &str, body: &str) -> Result<()> {
    let status = status.trim();
    if status != want.to_string() {
        bail!("HTTP {status}, want {want}: {}", quote(body));
    }
    let b: Value =
        serde_json::from_str(body).map_err(|_| anyhow!("body is not JSON: {}", quote(body)))?;
    match want {
        200 if !is_received(&b) => bail!("body {b}, want received with an id"),
        401 if b != json!({"error": "unauthorized"}) => {
            bail!("body {b}, want {{\"error\":\"unauthorized\"}}")
        }
        _ => Ok(()),
    }
}

/// The same texts, each as often, in any order; else how many of each side
/// the other lacks.
fn same_bodies(mut want: Vec<String>, mut got: Vec<String>) -> Result<()> {
    want.sort();
    got.sort();
    if got != want {
        let missing = want.iter().filter(|w| !got.contains(w)).count();
        let unexpected = got.iter().filter(|g| !want.contains(g)).count();
        bail!(
            "queue holds {} messages, want the {} payloads byte for byte \
             (missing {missing}, unexpected {unexpected})",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

/// What `curl -d @FILE` (the README's) sends of a file: its text less CR and LF.
fn curl_data(text: &str) -> String {
    text.replace(['\r', '\n'], "")
}

/// `env[function][name]` of the env-vars file, a string.
fn env_var<'a>(env: &'a Value, function: &str, name: &str) -> Result<&'a str> {
    env.get(function)
        .and_then(|f| f.get(name))
        .and_then(Value::as_str)
        .with_context(|| format!("the env-vars file has no {function}.{name}"))
}

/// The ingest's queue as this machine reaches it: the env-vars file names
/// moto as the containers reach it, here it is `moto`.
fn queue_url(env: &Value, moto: &str) -> Result<String> {
    let url = env_var(env, "IngestFunction", "QUEUE_URL")?;
    let endpoint = env_var(env, "IngestFunction", "AWS_ENDPOINT_URL")?;
    Ok(url.replacen(endpoint, moto.trim_end_matches('/'), 1))
}

/// A message as queue-holds saves it for queued-as-sqs-event: the fields
/// of SQS's ReceiveMessage answer, under their API names.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Saved {
    message_id: String,
    receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    md5_of_body: String,
    body: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    message_attributes: BTreeMap<String, SavedAttribute>,
}

/// A message attribute of a [`Saved`] message (string attributes: what the
/// ingest sets).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    string_value: Option<String>,
    data_type: String,
}

impl From<&Message> for Saved {
    fn from(m: &Message) -> Saved {
        let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
        Saved {
            message_id: text(m.message_id()),
            receipt_handle: text(m.receipt_handle()),
            md5_of_body: text(m.md5_of_body()),
            body: text(m.body()),
            attributes: (m.attributes().into_iter().flatten())
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            message_attributes: (m.message_attributes().into_iter().flatten())
                .map(|(k, v)| {
                    let a = SavedAttribute {
                        string_value: v.string_value().map(str::to_owned),
                        data_type: v.data_type().to_owned(),
                    };
                    (k.clone(), a)
                })
                .collect(),
        }
    }
}

impl Saved {
    /// The message as SQS's client received it.
    fn to_message(&self) -> Result<Message> {
        let attributes = (self.attributes.iter())
            .map(|(k, v)| (MessageSystemAttributeName::from(k.as_str()), v.clone()))
            .collect();
        let mut message_attributes = HashMap::new();
        for (k, a) in &self.message_attributes {
            let v = MessageAttributeValue::builder()
                .set_string_value(a.string_value.clone())
                .data_type(&a.data_type)
                .build()
                .with_context(|| format!("message attribute {k}"))?;
            message_attributes.insert(k.clone(), v);
        }
        Ok(Message::builder()
            .message_id(&self.message_id)
            .receipt_handle(&self.receipt_handle)
            .md5_of_body(&self.md5_of_body)
            .body(&self.body)
            .set_attributes(Some(attributes))
            .set_message_attributes(Some(message_attributes))
            .build())
    }
}

/// The saved messages of the queue `queue_arn` as the SQS event the event
/// source mapping hands the consumer.
fn sqs_event(saved: &[Saved], queue_arn: &str) -> Result<Value> {
    let mut records = Vec::with_capacity(saved.len());
    for m in saved {
        let record = test_support::sqs_message_from(queue_arn, &m.to_message()?);
        records.push(test_support::event_json(&record));
    }
    if records.is_empty() {
        bail!("no queued messages");
    }
    Ok(json!({ "Records": records }))
}

/// An item's key (pk, sk).
fn item_key(i: &Item) -> (&str, &str) {
    let s = |name: &str| {
        i.get(name)
            .and_then(|v| v.as_s().ok())
            .map_or("", |s| s.as_str())
    };
    (s("pk"), s("sk"))
}

/// The compact event keys in the items' `ek` and `ek_old` sets: each event
/// the table absorbed, once.
fn absorbed_keys(items: &[Item]) -> HashSet<&[u8]> {
    items
        .iter()
        .flat_map(|i| [SEEN_ATTR, SEEN_OLD_ATTR].map(|a| i.get(a).and_then(|v| v.as_bs().ok())))
        .flatten()
        .flatten()
        .map(|b| b.as_ref())
        .collect()
}

/// [`LEAD_PK`] / [`LEAD_SK`] counts a reply.
fn reply_counted(items: &[Item]) -> Result<()> {
    let lead = items.iter().find(|i| item_key(i) == (LEAD_PK, LEAD_SK));
    let replies = match lead
        .and_then(|i| i.get("replies"))
        .map(AttributeValue::as_n)
    {
        Some(Ok(n)) => n.parse::<i64>().with_context(|| {
            format!("replies on {LEAD_PK} / {LEAD_SK}: {n}, not a whole number")
        })?,
        _ => 0,
    };
    if replies < 1 {
        let shown = lead.map_or_else(
            || "no such item".to_owned(),
            |i| item_to_json(i).to_string(),
        );
        bail!("no reply counted on {LEAD_PK} / {LEAD_SK}: {shown}");
    }
    Ok(())
}

/// Runs `check` on the stand-ins `a` names.
fn on_stand_ins<'a, F>(a: &'a Args, check: impl FnOnce(StandIns) -> F) -> Result<()>
where
    F: Future<Output = Result<()>> + 'a,
{
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async { check(StandIns::connect(a).await?).await })
}

/// The stand-ins as the checks reach them: moto (the ingest's queue) and
/// DynamoDB Local, and the env-vars file that names the queue and table.
struct StandIns {
    sqs: smartlead::aws_sdk_sqs::Client,
    ddb: smartlead::aws_sdk_dynamodb::Client,
    env: Value,
    queue_url: String,
}

impl StandIns {
    async fn connect(a: &Args) -> Result<StandIns> {
        let env: Value = serde_json::from_str(&read(&a.env)?)
            .with_context(|| format!("{}: not JSON", a.env.display()))?;
        let queue_url = queue_url(&env, &a.moto)?;
        let moto = smartlead::adapters::aws::local_sdk_config(&a.moto).await;
        let dynamodb = smartlead::adapters::aws::local_sdk_config(&a.dynamodb).await;
        Ok(StandIns {
            sqs: smartlead::aws_sdk_sqs::Client::new(&moto),
            ddb: smartlead::aws_sdk_dynamodb::Client::new(&dynamodb),
            env,
            queue_url,
        })
    }

    /// Every message on the ingest's queue, received and deleted.
    async fn drain(&self) -> Result<Vec<Message>> {
        test_support::store::drain(&self.sqs, &self.queue_url)
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("draining {}", self.queue_url))
    }

    async fn queue_holds(self, dir: &Path, save: &Path) -> Result<()> {
        let want = test_support::read_json_files(dir)
            .with_context(|| format!("reading {}", dir.display()))?;
        let msgs = self.drain().await?;
        let got = msgs.iter().map(|m| m.body().unwrap_or_default().to_owned());
        same_bodies(want.into_values().collect(), got.collect())?;
        let saved: Vec<Saved> = msgs.iter().map(Saved::from).collect();
        write(save, &serde_json::to_string(&saved)?)
    }

    async fn queue_holds_one(self, file: &Path) -> Result<()> {
        let want = [curl_data(&read(file)?)];
        let msgs = self.drain().await?;
        let got: Vec<&str> = msgs.iter().map(|m| m.body().unwrap_or_default()).collect();
        if got != want {
            bail!(
                "queue holds {} messages, want exactly {}",
                got.len(),
                file.display()
            );
        }
        Ok(())
    }

    async fn queued_as_sqs_event(self, saved: &Path, event: &Path) -> Result<()> {
        let msgs: Vec<Saved> = serde_json::from_str(&read(saved)?)
            .with_context(|| format!("{}: not saved messages", saved.display()))?;
        let arn = xtask::pipeline::queue_arn(&self.sqs, &self.queue_url).await?;
        write(event, &sqs_event(&msgs, &arn)?.to_string())
    }

    async fn state_after(self, batch: &Path, save: &Path) -> Result<()> {
        let table = env_var(&self.env, "ConsumerFunction", "TABLE_NAME")?;
        let mut items = DynamoStore::new(self.ddb.clone(), table.to_owned())
            .scan_all()
            .await
            .map_err(|e| anyhow!("scanning {table}: {e}"))?;
        items.sort_by(|x, y| item_key(x).cmp(&item_key(y)));
        let event: Value = serde_json::from_str(&read(batch)?)
            .with_context(|| format!("{}: not JSON", batch.display()))?;
        let records = (event.get("Records").and_then(Value::as_array))
            .with_context(|| format!("{}: no Records", batch.display()))?
            .len();
        // Each event absorbed once: its compact key in the `ek` (or
        // `ek_old`) set of the items it changed, as many keys as records.
        let absorbed = absorbed_keys(&items).len();
        if absorbed != records {
            bail!("{absorbed} absorbed event keys (ek sets) for the batch's {records} events");
        }
        reply_counted(&items)?;
        println!(
            "   table: {} items, {absorbed} absorbed event keys for {records} records",
            items.len()
        );
        let table: Vec<Value> = items.iter().map(item_to_json).collect();
        write(save, &serde_json::to_string_pretty(&table)?)
    }
}

#[cfg(test)]
mod tests;
