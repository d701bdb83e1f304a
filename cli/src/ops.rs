//! Day-two verbs: where a stack's pieces are (deployed or local), and `lead`.

use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use smartlead::aws_sdk_dynamodb;
use smartlead::aws_sdk_sqs;
use std::collections::HashMap;

/// Which stack a verb reads: a deployed one (by its CloudFormation outputs)
/// or the local one (`scripts/local.sh`, its fixed names and ports).
#[derive(clap::Args, Clone)]
pub struct StackArgs {
    /// The deployed stack (its outputs name the table and the queues).
    #[arg(long, default_value = "smartlead-webhooks")]
    pub stack: String,
    /// Read the local stack (`scripts/local.sh`) instead of a deployed one.
    #[arg(long)]
    pub local: bool,
    /// The local stack's DynamoDB Local port.
    #[arg(long, default_value_t = smartlead::local_stack::DYNAMODB_PORT)]
    pub dynamodb_port: u16,
    /// The local stack's moto port (SQS).
    #[arg(long, default_value_t = smartlead::local_stack::MOTO_PORT)]
    pub moto_port: u16,
}

/// The pieces of a stack the day-two verbs read.
pub struct Stack {
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    /// Deployed only: the stack's name and outputs.
    pub deployed: Option<(String, HashMap<String, String>)>,
    /// The AWS configuration of a deployed stack (CloudWatch, Logs).
    pub cfg: aws_config::SdkConfig,
}

impl Stack {
    pub async fn resolve(args: &StackArgs) -> Result<Stack> {
        if args.local {
            let ddb_cfg = smartlead::adapters::aws::local_sdk_config(&format!(
                "http://127.0.0.1:{}",
                args.dynamodb_port
            ))
            .await;
            let moto_cfg = smartlead::adapters::aws::local_sdk_config(&format!(
                "http://127.0.0.1:{}",
                args.moto_port
            ))
            .await;
            return Ok(Stack {
                ddb: aws_dynamodb(&ddb_cfg),
                sqs: aws_sdk_sqs::Client::new(&moto_cfg),
                table: smartlead::local_stack::TABLE.to_owned(),
                deployed: None,
                cfg: moto_cfg,
            });
        }
        let cfg = crate::aws().await;
        let o = crate::outputs(&args.stack).await?;
        let table = crate::output(&o, "StateTableName", &args.stack)?;
        Ok(Stack {
            ddb: aws_dynamodb(&cfg),
            sqs: aws_sdk_sqs::Client::new(&cfg),
            table,
            deployed: Some((args.stack.clone(), o)),
            cfg,
        })
    }

    /// The queue and DLQ URLs.
    pub async fn queues(&self) -> Result<(String, String)> {
        match &self.deployed {
            Some((name, o)) => Ok((
                crate::output(o, "QueueUrl", name)?,
                crate::output(o, "DeadLetterQueueUrl", name)?,
            )),
            None => {
                let url = |q: &'static str| {
                    let sqs = self.sqs.clone();
                    async move {
                        sqs.get_queue_url()
                            .queue_name(q)
                            .send()
                            .await
                            .map_err(crate::aws_err(format!(
                                "finding the local queue {q} (is the local stack running?)"
                            )))
                            .map(|o| o.queue_url.unwrap_or_default())
                    }
                };
                Ok((
                    url(smartlead::local_stack::QUEUE).await?,
                    url(smartlead::local_stack::DLQ).await?,
                ))
            }
        }
    }

    /// The stack's table, read through the store's readers.
    pub fn store(&self) -> smartlead::adapters::aws::dynamodb::DynamoStore {
        smartlead::adapters::aws::dynamodb::DynamoStore::new(self.ddb.clone(), self.table.clone())
    }

    /// Every item of one partition, as JSON.
    pub async fn partition(&self, pk: &str) -> Result<Vec<Value>> {
        let items = self.store().partition(pk).await.map_err(|e| {
            anyhow!(
                "reading {pk} from table {} (is the {} running?): {e}",
                self.table,
                if self.deployed.is_some() {
                    "stack"
                } else {
                    "local stack"
                }
            )
        })?;
        Ok(items
            .iter()
            .map(smartlead::adapters::aws::dynamodb::item_to_json)
            .collect())
    }
}

fn aws_dynamodb(cfg: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(cfg)
}

/// The partition key of a lead, as the consumer writes it: trimmed, lower
/// case, a long address cut and hashed.
pub fn lead_pk(email: &str) -> String {
    let e = email.trim().to_ascii_lowercase();
    format!("LEAD#{}", smartlead::domain::plan::key_part(&e))
}

/// Attributes that only order writes or key the item: not shown.
fn hidden(name: &str) -> bool {
    matches!(
        name,
        "pk" | "sk" | "lead_email" | "expires_at" | "ek" | "ek_old" | "ek_gen" | "fo"
    ) || name.ends_with("_order")
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show_value).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// One heading per item, in the order campaigns, profile, suppression,
/// tasks, anything else.
fn heading(sk: &str, item: &Value) -> (u8, String) {
    if let Some(c) = sk.strip_prefix("CAMPAIGN#") {
        let name = item
            .get("campaign_name")
            .and_then(Value::as_str)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        (0, format!("campaign {c}{name}"))
    } else if let Some(c) = sk.strip_prefix("REPLY#") {
        (0, format!("last reply, campaign {c}"))
    } else if sk == "PROFILE" {
        (1, "profile".into())
    } else if sk == "SUPPRESSION" {
        (2, suppressed_heading(item))
    } else if let Some(t) = sk.strip_prefix("TASK#") {
        let (c, step) = t.split_once('#').unwrap_or((t, "?"));
        (3, format!("open task: campaign {c}, step {step}"))
    } else {
        (4, sk.to_owned())
    }
}

/// `SUPPRESSED`, with its scope when an agency's unsubscribe named
/// clients (see `smartlead::domain::client::Scope`).
fn suppressed_heading(item: &Value) -> String {
    let set = |k: &str| -> Vec<String> {
        item.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let clients = set("clients");
    if clients.is_empty() {
        return "SUPPRESSED".into();
    }
    match smartlead::domain::client::Scope::of(&set("flags"), &clients) {
        s @ smartlead::domain::client::Scope::All => format!("SUPPRESSED for {}", s.describe()),
        s => format!(
            "SUPPRESSED for {} (still sendable for the other clients)",
            s.describe()
        ),
    }
}

/// A lead's items, readable: a heading per item and its fields, sorted.
pub fn render_lead(email: &str, items: &[Value]) -> String {
    if items.is_empty() {
        return format!(
            "no items for lead {email} (nothing received for this address yet, or a typo)\n"
        );
    }
    let mut sorted: Vec<(u8, String, &Value)> = items
        .iter()
        .map(|i| {
            let sk = i.get("sk").and_then(Value::as_str).unwrap_or_default();
            let (rank, h) = heading(sk, i);
            (rank, h, i)
        })
        .collect();
    sorted.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = format!("lead {email}: {} item(s)\n", items.len());
    for (_, h, item) in sorted {
        out.push_str(&format!("\n{h}\n"));
        let Some(o) = item.as_object() else { continue };
        let mut fields: Vec<(&String, &Value)> = o
            .iter()
            .filter(|(k, _)| !hidden(k) && k.as_str() != "campaign_name")
            .collect();
        fields.sort_by_key(|(k, _)| k.as_str());
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in fields {
            out.push_str(&format!("  {k:<width$}  {}\n", show_value(v)));
        }
    }
    out
}

/// `smartlead lead`; `events_days`: also the archived events of that many days.
pub async fn lead(
    args: &StackArgs,
    email: &str,
    json: bool,
    events_days: Option<i64>,
) -> Result<()> {
    if !email.contains('@') {
        anyhow::bail!("{email:?} is not an e-mail address");
    }
    if events_days.is_some() && args.local {
        anyhow::bail!("--events replays the deployed stack's archive; the local stack has none");
    }
    let stack = Stack::resolve(args).await?;
    let pk = lead_pk(email);
    let items = stack
        .partition(&pk)
        .await
        .with_context(|| format!("looking up lead {}", email.trim()))?;
    let events = match (events_days, &stack.deployed) {
        (Some(days), Some((name, o))) => {
            let archive = crate::output(o, "EventArchiveArn", name)?;
            let bus = crate::output(o, "EventBusArn", name)?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("replaying the lead's archived events");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let ev = crate::scope::lead_events(&stack.cfg, &archive, &bus, email, days, &bar).await;
            bar.finish_and_clear();
            Some(ev?)
        }
        _ => None,
    };
    if json {
        let by_sk: serde_json::Map<String, Value> = items
            .iter()
            .map(|v| {
                (
                    v.get("sk")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    v.clone(),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pk": pk,
                "items": by_sk,
                "events": events,
            }))?
        );
    } else {
        print!("{}", render_lead(email.trim(), &items));
        if let Some(ev) = &events {
            println!("\narchived events ({}):", ev.len());
            for e in ev {
                println!("  {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stores_bookkeeping_is_never_shown() {
        for name in ["ek", "ek_old", "ek_gen", "fo", "expires_at", "x_order"] {
            assert!(hidden(name), "{name}");
        }
        assert!(!hidden("opens"));
    }

    #[test]
    fn a_suppression_shows_the_clients_it_applies_to() {
        let h = |v: Value| suppressed_heading(&v);
        assert_eq!(h(json!({"flags": ["bounce"]})), "SUPPRESSED");
        assert_eq!(
            h(json!({"clients": ["11"]})),
            "SUPPRESSED for client 11 (still sendable for the other clients)"
        );
        assert_eq!(
            h(json!({"clients": ["11", "12"], "flags": ["bounce"]})),
            "SUPPRESSED for all clients"
        );
    }

    #[test]
    fn a_lead_reads_campaigns_first_then_profile_suppression_and_tasks() {
        let items = vec![
            json!({"pk": "LEAD#a@b.co", "sk": "TASK#9#3", "step_type": "call", "reached_order": "x"}),
            json!({"pk": "LEAD#a@b.co", "sk": "SUPPRESSION", "reason": "bounce", "flags": ["bounce"]}),
            json!({"pk": "LEAD#a@b.co", "sk": "CAMPAIGN#9", "campaign_name": "Q1", "opens": 3, "flags": ["contacted", "engaged"], "last_open_order": "1#2", "ek": ["0a1b2c3d4e5f"]}),
            json!({"pk": "LEAD#a@b.co", "sk": "PROFILE", "category": "Interested"}),
            json!({"pk": "LEAD#a@b.co", "sk": "REPLY#9", "last_reply_preview": "Tuesday?", "last_reply_order": "1#2"}),
        ];
        let out = render_lead("a@b.co", &items);
        let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} in {out}"));
        assert!(pos("campaign 9 (Q1)") < pos("last reply, campaign 9"));
        assert!(pos("last reply, campaign 9") < pos("profile"));
        assert!(out.contains("last_reply_preview  Tuesday?"), "{out}");
        assert!(pos("profile") < pos("SUPPRESSED"));
        assert!(pos("SUPPRESSED") < pos("open task: campaign 9, step 3"));
        assert!(out.contains("flags  contacted, engaged"), "{out}");
        assert!(out.contains("opens  3"), "{out}");
        assert!(!out.contains("_order"), "{out}");
        assert!(
            !out.contains("0a1b2c3d4e5f"),
            "the absorbed keys are bookkeeping: {out}"
        );
        assert!(!out.contains("LEAD#"), "{out}");
        assert!(render_lead("x@y.co", &[]).contains("no items"));
    }

    #[test]
    fn the_lead_key_is_the_consumers() {
        assert_eq!(lead_pk(" Jane.Doe@Acme.COM "), "LEAD#jane.doe@acme.com");
        let long = format!("{}@x.co", "a".repeat(300));
        assert_eq!(
            lead_pk(&long),
            format!("LEAD#{}", smartlead::domain::plan::key_part(&long))
        );
    }
}
