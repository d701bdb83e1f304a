//! The table's global secondary indexes, which answer the tools' list
//! questions without a `Scan`. Each is sparse and keyed on attributes the
//! state already keeps, which change only when the answer does: an event
//! that leaves them as they were (a repeat bounce, a second unsubscribe)
//! writes nothing to the index (docs/events.md, "Indexes").
//!
//! template.yaml declares the same indexes (checked by xtask's template
//! test); [`create_table`](super::create_table) creates them for tests and
//! the local stack.

use super::store::all_pages;
use super::{store_error, DynamoStore};
use crate::app::store::StoreError;
use crate::domain::time::EventTime;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::HashMap;

/// One index: its name, keys (strings) and the attributes it projects
/// besides the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub hash: &'static str,
    pub range: &'static str,
    pub projected: &'static [&'static str],
}

/// Every suppressed address, newest first: the `SUPPRESSION` items (one
/// per lead, sticky) by the time of their first suppression. The range
/// key and the projected fields are the earliest register's, so only a
/// first suppression (or an earlier one arriving late, or a second
/// reason) writes the index.
pub const SUPPRESSED: Index = Index {
    name: "suppressed",
    hash: "sk",
    range: "suppressed_at",
    projected: &["lead_email", "reason", "campaign_id", "flags"],
};

/// A campaign's leads by the time of their first reply: hash `sk`
/// (`CAMPAIGN#<id>`, the lead's campaign item), range `first_reply_at`,
/// which a repeat reply leaves as it was (the earliest register moves it
/// only for an earlier reply arriving late).
pub const REPLIED: Index = lead_status("replied", "first_reply_at", &["lead_email"]);

/// A campaign's leads by their first open.
pub const OPENED: Index = lead_status("opened", "first_open_at", &["lead_email"]);

/// A campaign's leads by their first click.
pub const CLICKED: Index = lead_status("clicked", "first_click_at", &["lead_email"]);

/// A campaign's categorized leads by the time of their latest category,
/// with it: the range is a time, not the category, so an over-long
/// category name cannot exceed an index key's 1,024 bytes.
pub const CATEGORIZED: Index = lead_status(
    "categorized",
    "category_at",
    &["lead_email", "category", "category_sentiment"],
);

/// Health items by their latest incident: hash `sk` (`HEALTH#EMAIL` and
/// `HEALTH#LINKEDIN` for sending accounts, `HEALTH` for a campaign's
/// bounce breaches), range `health_at`. Written only by those rare events.
pub const HEALTH: Index = Index {
    name: "health",
    hash: "sk",
    range: "health_at",
    projected: &[
        "account_email",
        "disconnected_since",
        "last_disconnected_at",
        "error",
        "disconnects",
        "campaign_name",
        "last_breach_at",
        "bounce_rate",
        "threshold",
        "message",
        "bounce_breaches",
    ],
};

const fn lead_status(
    name: &'static str,
    range: &'static str,
    projected: &'static [&'static str],
) -> Index {
    Index {
        name,
        hash: "sk",
        range,
        projected,
    }
}

/// The health items' sort keys (each one partition of [`HEALTH`]).
pub const HEALTH_SKS: [&str; 3] = ["HEALTH#EMAIL", "HEALTH#LINKEDIN", "HEALTH"];

/// The indexes, as template.yaml declares them, in the order a deployed
/// stack adds them. CloudFormation creates or deletes at most one per
/// stack update (DynamoDB's `UpdateTable`), so the template's
/// `QueryIndexes` parameter says how many of this list a stack has
/// (docs/operating.md, "Upgrades before 1.0").
pub const INDEXES: &[Index] = &[SUPPRESSED, REPLIED, OPENED, CLICKED, CATEGORIZED, HEALTH];

/// The sort key every suppression item has (the index's one partition).
pub const SUPPRESSION_SK: &str = "SUPPRESSION";

type Item = HashMap<String, AttributeValue>;

/// What an item's write adds for the indexes, by DynamoDB's rule: nothing
/// when the write leaves an index's keys and projected attributes as they
/// were; one write of the entry when it appears or changes, one to delete
/// it when it goes, both when its key moves (each a unit per started KB of
/// the entry). For the in-memory store and the bench; DynamoDB reports the
/// same in the write's consumed capacity.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes>
pub fn index_write_units(before: Option<&Item>, after: &Item) -> f64 {
    INDEXES
        .iter()
        .map(|i| {
            let entry = |item: &Item| -> Option<Item> {
                let keys = [i.hash, i.range];
                if !keys.iter().all(|k| item.contains_key(*k)) {
                    return None;
                }
                Some(
                    ["pk", "sk", i.hash, i.range]
                        .iter()
                        .chain(i.projected)
                        .filter_map(|a| item.get(*a).map(|v| ((*a).to_owned(), v.clone())))
                        .collect(),
                )
            };
            let units = |e: &Item| super::write_units(super::item_size(e));
            match (before.and_then(entry), entry(after)) {
                (None, None) => 0.0,
                (None, Some(new)) => units(&new),
                (Some(old), None) => units(&old),
                (Some(old), Some(new)) if old == new => 0.0,
                (Some(old), Some(new)) => {
                    let moved =
                        old.get(i.hash) != new.get(i.hash) || old.get(i.range) != new.get(i.range);
                    if moved {
                        units(&old) + units(&new)
                    } else {
                        units(&old).max(units(&new))
                    }
                }
            }
        })
        .sum()
}

impl DynamoStore {
    /// The suppressed addresses, newest first, suppressed at or after
    /// `since` (all of them with `None`): one `Query` of the index, every
    /// page. Eventually consistent, as every index read is.
    pub async fn suppressed(&self, since: Option<EventTime>) -> Result<Vec<Item>, StoreError> {
        Ok(self.suppressed_counted(since).await?.0)
    }

    /// [`Self::suppressed`] and the read units its pages consumed.
    pub async fn suppressed_counted(
        &self,
        since: Option<EventTime>,
    ) -> Result<(Vec<Item>, f64), StoreError> {
        self.index_partition(SUPPRESSED, SUPPRESSION_SK, since)
            .await
    }

    /// One partition of index `i` (hash `h`), its range at or after
    /// `since`, newest first, every page; and the read units consumed.
    pub async fn index_partition(
        &self,
        i: Index,
        h: &str,
        since: Option<EventTime>,
    ) -> Result<(Vec<Item>, f64), StoreError> {
        // DynamoDB refuses an empty string in a key condition: no bound, no clause.
        let since = since.map(|t| t.to_string());
        let units = std::cell::Cell::new(0.0);
        let items = all_pages(|start| {
            let (since, units) = (since.clone(), &units);
            async move {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(i.name)
                    .expression_attribute_names("#h", i.hash)
                    .expression_attribute_values(":h", AttributeValue::S(h.to_owned()))
                    .scan_index_forward(false)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .set_exclusive_start_key(start);
                q = match since {
                    Some(t) => q
                        .key_condition_expression("#h = :h AND #r >= :since")
                        .expression_attribute_names("#r", i.range)
                        .expression_attribute_values(":since", AttributeValue::S(t)),
                    None => q.key_condition_expression("#h = :h"),
                };
                let r = q.send().await.map_err(|e| store_error("Query", e))?;
                let page = r.consumed_capacity.and_then(|c| c.capacity_units);
                units.set(units.get() + page.unwrap_or(0.0));
                Ok((r.items.unwrap_or_default(), r.last_evaluated_key))
            }
        })
        .await?;
        Ok((items, units.get()))
    }

    /// The items at `keys` (pk, sk), in no particular order, eventually
    /// consistent, 100 keys a `BatchGetItem`, the keys DynamoDB leaves
    /// unprocessed asked again; and the read units consumed. Missing
    /// items are left out.
    pub async fn items_at(
        &self,
        keys: &[(String, String)],
    ) -> Result<(Vec<Item>, f64), StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut out = Vec::with_capacity(keys.len());
        let mut units = 0.0;
        for chunk in keys.chunks(100) {
            let mut ask: Vec<Item> = chunk.iter().map(|(pk, sk)| super::key(pk, sk)).collect();
            let mut tries = 0u32;
            while !ask.is_empty() {
                let asked = ask.len();
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut ask)))
                    .build()
                    .map_err(|e| StoreError::transient(e.to_string()))?;
                let r = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem", e))?;
                units += r
                    .consumed_capacity()
                    .iter()
                    .filter_map(|c| c.capacity_units)
                    .sum::<f64>();
                let mut got = r.responses.unwrap_or_default();
                out.extend(got.remove(&self.table).unwrap_or_default());
                ask = r
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !ask.is_empty() {
                    // DynamoDB's advice for unprocessed keys: back off, then
                    // ask again; 8 rounds in a row without one key read fail.
                    let progressed = ask.len() < asked;
                    tries = if progressed { 1 } else { tries + 1 };
                    if tries > 8 {
                        return Err(StoreError::transient(
                            "BatchGetItem left keys unprocessed 8 times",
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << tries.min(5))).await;
                }
            }
        }
        Ok((out, units))
    }
}
