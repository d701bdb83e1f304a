//! `smartlead records <kind>`: the records the pipeline kept whole (rejected
//! events, untracked replies, events of unknown types, events that name no
//! lead), oldest first. Each day's records of a kind are spread over
//! shards (see [`smartlead::domain::records`]); the store's reader queries
//! them at once and merges them by time.

use crate::ops::{Stack, StackArgs};
use anyhow::{anyhow, Result};
use serde_json::Value;
use smartlead::adapters::aws::dynamodb::{item_to_json, without_bookkeeping};
use smartlead::domain::records::RecordKind;
use smartlead::domain::time::EventTime;

#[derive(clap::Args)]
pub struct RecordsArgs {
    /// Which records: rejected, untracked, unknown or unattributed.
    #[arg(value_parser = kind)]
    pub kind: RecordKind,
    /// From when (the record's time): a span back from now (`90m`, `24h`,
    /// `7d`) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// The records whole (raw bodies included), as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

fn kind(s: &str) -> Result<RecordKind, String> {
    RecordKind::parse(s)
        .ok_or_else(|| format!("{s:?}: one of rejected, untracked, unknown, unattributed"))
}

/// `smartlead records`.
pub async fn records(a: &RecordsArgs) -> Result<()> {
    let now = EventTime::now();
    let since = crate::reconcile::since(&a.since, now)?;
    // An event's own time is believed up to a day ahead of its receipt.
    let until = EventTime::from_millis(now.millis() + 86_400_000).unwrap_or(now);
    let stack = Stack::resolve(&a.stack).await?;
    let items = stack
        .store()
        .records(a.kind, since, until)
        .await
        .map_err(|e| {
            anyhow!(
                "reading the {} records of table {}: {e}",
                a.kind.prefix(),
                stack.table
            )
        })?;
    let items: Vec<Value> = items
        .iter()
        .map(|i| without_bookkeeping(item_to_json(i)))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        print!("{}", render(a.kind, &since.to_string(), &items));
    }
    Ok(())
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// One line per record, oldest first: its time, what it is, where it is.
pub fn render(kind: RecordKind, since: &str, items: &[Value]) -> String {
    let mut out = format!(
        "{} {} record(s) since {since}\n",
        items.len(),
        kind.prefix()
    );
    for v in items {
        let sk = field(v, "sk");
        let what = match kind {
            RecordKind::Rejected => format!(
                "{} (message {}): {}",
                field(v, "reason"),
                field(v, "message_id"),
                field(v, "detail")
            ),
            RecordKind::Untracked => format!(
                "from {} to {}: {}",
                field(v, "from_email"),
                field(v, "to_email"),
                field(v, "subject")
            ),
            RecordKind::Unknown | RecordKind::Unattributed => field(v, "event_type").to_owned(),
        };
        out.push_str(&format!(
            "  {}  {what}  [{} / {sk}]\n",
            sk.split('#').next().unwrap_or(sk),
            field(v, "pk"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_reads_as_its_time_what_it_is_and_where_it_is() {
        let items = [json!({"pk": "REJECTED#2026-12-05#07",
            "sk": "2026-12-05T10:00:00.000Z#REJECTED:body:0123", "reason": "not_json",
            "message_id": "m-1", "detail": "expected value", "raw": "<html>"})];
        let out = render(RecordKind::Rejected, "2026-12-04T10:00:00.000Z", &items);
        assert!(
            out.starts_with("1 REJECTED record(s) since 2026-12-04T10:00:00.000Z\n"),
            "{out}"
        );
        assert!(out.contains("  2026-12-05T10:00:00.000Z  not_json (message m-1): expected value  [REJECTED#2026-12-05#07 / 2026-12-05T10:00:00.000Z#REJECTED:body:0123]"), "{out}");
        assert!(!out.contains("<html>"), "the body only with --json: {out}");
        let unknown = [
            json!({"pk": "UNKNOWN#2026-12-05#01", "sk": "2026-12-05T11:00:00.000Z#k",
            "event_type": "LEAD_MEETING_BOOKED"}),
        ];
        assert!(render(RecordKind::Unknown, "x", &unknown).contains("  LEAD_MEETING_BOOKED  "));
        assert_eq!(kind("Untracked"), Ok(RecordKind::Untracked));
        assert!(kind("rejects").is_err());
    }
}
