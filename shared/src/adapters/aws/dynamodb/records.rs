//! Reading the records kept whole back ([`crate::domain::records`]): a
//! day's records of one kind are spread over [`RECORD_SHARDS`] partitions,
//! so a reader queries each day's shards at once (every page) and merges
//! them by sort key, which starts with the record's time. Rejected events
//! are written here too ([`RejectSink`]).

use super::{store_error, DynamoStore};
use crate::app::store::{RejectSink, Rejected, StoreError};
use crate::domain::plan::key_part;
use crate::domain::records::{days, RecordKind, RECORD_SHARDS};
use crate::domain::time::EventTime;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use futures::{StreamExt, TryStreamExt};

type Item = std::collections::HashMap<String, AttributeValue>;

/// Queries in flight at once.
const PARALLEL: usize = RECORD_SHARDS as usize;

/// Which part of a partition a query reads.
#[derive(Clone, Copy)]
enum Read<'a> {
    /// Every record at or after this sort key, all of them.
    Since(&'a str),
    /// Only how many there are at or after this sort key.
    Count(&'a str),
    /// The last record.
    Newest,
}

impl DynamoStore {
    /// `kind`'s records whose time is at or after `since`, on the days up
    /// to `until`'s, oldest first.
    pub async fn records(
        &self,
        kind: RecordKind,
        since: EventTime,
        until: EventTime,
    ) -> Result<Vec<Item>, StoreError> {
        let from = since.to_string();
        let pks = days(since, until)
            .into_iter()
            .flat_map(|d| kind.partitions(&d));
        let mut out: Vec<Item> = self
            .each_partition(pks, Read::Since(&from))
            .await?
            .into_iter()
            .flat_map(|(items, _)| items)
            .collect();
        out.sort_by(|a, b| sk(a).cmp(sk(b)));
        Ok(out)
    }

    /// How many of `kind`'s records have a time at or after `since`, on the
    /// days up to `until`'s (DynamoDB counts: the bodies are not read).
    pub async fn count_records(
        &self,
        kind: RecordKind,
        since: EventTime,
        until: EventTime,
    ) -> Result<u64, StoreError> {
        let from = since.to_string();
        let pks = days(since, until)
            .into_iter()
            .flat_map(|d| kind.partitions(&d));
        let counted = self.each_partition(pks, Read::Count(&from)).await?;
        Ok(counted.into_iter().map(|(_, n)| n).sum())
    }

    /// `kind`'s newest record on the `days` days up to `until`'s, looked
    /// for from the newest day back (one query per shard of each day).
    pub async fn newest_record(
        &self,
        kind: RecordKind,
        until: EventTime,
        days_back: u32,
    ) -> Result<Option<Item>, StoreError> {
        let from = EventTime::from_millis(until.millis() - i64::from(days_back) * 86_400_000)
            .unwrap_or(until);
        for day in days(from, until).into_iter().rev() {
            let found = self
                .each_partition(kind.partitions(&day), Read::Newest)
                .await?;
            let newest = found
                .into_iter()
                .flat_map(|(items, _)| items)
                .max_by(|a, b| sk(a).cmp(sk(b)));
            if newest.is_some() {
                return Ok(newest);
            }
        }
        Ok(None)
    }

    /// `read` of each partition in `pks`, [`PARALLEL`] at a time: each
    /// one's items (every page) and count.
    async fn each_partition(
        &self,
        pks: impl IntoIterator<Item = String>,
        read: Read<'_>,
    ) -> Result<Vec<(Vec<Item>, u64)>, StoreError> {
        futures::stream::iter(pks)
            .map(|pk| async move { self.read_partition(&pk, read).await })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await
    }

    async fn read_partition(
        &self,
        pk: &str,
        read: Read<'_>,
    ) -> Result<(Vec<Item>, u64), StoreError> {
        let (mut items, mut count, mut start) = (Vec::new(), 0u64, None);
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .set_exclusive_start_key(start);
            q = match read {
                Read::Since(t) | Read::Count(t) => q
                    .key_condition_expression("pk = :pk AND sk >= :t")
                    .expression_attribute_values(":t", AttributeValue::S(t.to_owned())),
                Read::Newest => q
                    .key_condition_expression("pk = :pk")
                    .scan_index_forward(false)
                    .limit(1),
            };
            if let Read::Count(_) = read {
                q = q.select(Select::Count);
            }
            let r = q.send().await.map_err(|e| store_error("Query", e))?;
            count += r.count().max(0) as u64;
            items.extend(r.items.unwrap_or_default());
            start = r.last_evaluated_key;
            if start.is_none() || matches!(read, Read::Newest) {
                return Ok((items, count));
            }
        }
    }
}

fn sk(item: &Item) -> &str {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

pub const REJECTED_TTL_DAYS: u64 = 30;

#[async_trait]
impl RejectSink for DynamoStore {
    async fn reject(&self, r: Rejected<'_>) -> Result<(), StoreError> {
        let raw =
            crate::domain::plan::cut_bytes(r.raw, crate::domain::plan::MAX_RAW_BYTES).to_owned();
        // DynamoDB refuses empty strings in some places: "-" stands for none.
        let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
        let sk = format!("{}#{}", r.received_at, key_part(r.key));
        let item = RejectedItem {
            pk: RecordKind::Rejected.pk(&sk),
            sk,
            reason: r.reason,
            detail: or_dash(crate::domain::plan::cut_bytes(r.detail, 1000).to_owned()),
            message_id: r.message_id,
            received_at: r.received_at,
            raw: or_dash(raw),
            expires_at: chrono::Utc::now().timestamp() + (REJECTED_TTL_DAYS * 86_400) as i64,
        };
        let item = serde_dynamo::to_item(item)
            .map_err(|e| StoreError::permanent(format!("REJECTED item: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }
}

/// A rejected event as stored (`sk` `<first received>#<key>`: one record
/// an event, see [`crate::app::store::Dedup::first_seen`]; `pk` of its day
/// and shard, [`RecordKind::pk`]), with its reason and raw body; it expires
/// after [`REJECTED_TTL_DAYS`].
#[derive(serde::Serialize)]
struct RejectedItem<'a> {
    pk: String,
    sk: String,
    reason: &'a str,
    detail: String,
    message_id: &'a str,
    received_at: &'a str,
    raw: String,
    /// [`super::TTL_ATTR`].
    expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::dynamodb::TTL_ATTR;
    use std::collections::HashMap;

    #[test]
    fn a_rejected_item_has_the_key_the_ttl_and_every_field_as_strings() {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(RejectedItem {
            pk: "REJECTED".into(),
            sk: "t#m".into(),
            reason: "not_json",
            detail: "-".into(),
            message_id: "m",
            received_at: "t",
            raw: "{".into(),
            expires_at: 42,
        })
        .expect("item");
        assert_eq!(item["pk"], AttributeValue::S("REJECTED".into()));
        assert_eq!(item[TTL_ATTR], AttributeValue::N("42".into()));
        for a in ["sk", "reason", "detail", "message_id", "received_at", "raw"] {
            assert!(matches!(item[a], AttributeValue::S(_)), "{a}");
        }
    }
}
