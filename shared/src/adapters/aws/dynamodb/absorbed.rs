//! Whether the state store absorbed an event, asked after the fact (by
//! reconcile): one read of the item the event's plan writes first.
//!
//! The store keeps no dedup marker: each item records the compact keys of
//! the events it absorbed ([`SEEN_ATTR`], the previous generation in
//! [`SEEN_OLD_ATTR`]; see [`crate::adapters::aws::dynamodb`]). An event is absorbed when its
//! plan's first item (the one the store writes first, for the lead events
//! reconcile checks the lead's campaign item) holds its compact key, or
//! when the item has archived older generations ([`SEEN_GEN_ATTR`] counts
//! them) and the archive holds it (one more read, only then).

use crate::adapters::aws::dynamodb::{
    item_to_json, seen_key, without_bookkeeping, DynamoStore, SEEN_ATTR, SEEN_GEN_ATTR,
    SEEN_OLD_ATTR,
};
use crate::app::store::StoreError;
use crate::domain::key::DedupKey;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Whether an item absorbed one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absorbed {
    /// Its key is in the item (or its archive).
    Yes,
    /// Its key is neither in the item nor in its archive.
    No,
    /// Its key is not in the item, which has archived generations of keys:
    /// the archive answers (see [`DynamoStore::absorbed`]); also the answer
    /// for an item whose generation count cannot be read.
    Unknown,
}

/// One item read for [`DynamoStore::absorbed`].
#[derive(Debug, Clone, PartialEq)]
pub struct AbsorbedItem {
    /// The item without its bookkeeping (`Null` when absent).
    pub item: Value,
    /// Per group of keys asked (one event in its possible forms), per key.
    pub answers: Vec<Vec<Absorbed>>,
}

/// The compact keys an item holds and how many generations it archived
/// (`None`: a count that cannot be read).
fn keys_of(item: &HashMap<String, AttributeValue>) -> (HashSet<Vec<u8>>, Option<u64>) {
    let mut keys = HashSet::new();
    for attr in [SEEN_ATTR, SEEN_OLD_ATTR] {
        if let Some(AttributeValue::Bs(set)) = item.get(attr) {
            keys.extend(set.iter().map(|b| b.as_ref().to_vec()));
        }
    }
    // The first rotation moves `ek` to `ek_old` and drops nothing; each later
    // one archives the generation it drops and counts it.
    let generations = match item.get(SEEN_GEN_ATTR) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        Some(_) => None,
        None => Some(0),
    };
    (keys, generations)
}

/// The answer for one key from an item's keys.
pub fn absorbed_in(item: Option<&HashMap<String, AttributeValue>>, key: &DedupKey) -> Absorbed {
    let Some(item) = item else {
        return Absorbed::No;
    };
    let (keys, generations) = keys_of(item);
    if keys.contains(&seen_key(key)) {
        Absorbed::Yes
    } else if generations == Some(0) {
        Absorbed::No
    } else {
        Absorbed::Unknown
    }
}

impl DynamoStore {
    /// Reads the item `pk`/`sk` once (strongly consistent) and answers, for
    /// each group of keys (the forms one event may have come in), whether
    /// the item absorbed each key.
    pub async fn absorbed(
        &self,
        pk: &str,
        sk: &str,
        groups: &[Vec<DedupKey>],
    ) -> Result<AbsorbedItem, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::store_error("GetItem", e))?;
        let item = r.item;
        let mut answers = Vec::with_capacity(groups.len());
        for group in groups {
            let mut a: Vec<Absorbed> = group
                .iter()
                .map(|k| absorbed_in(item.as_ref(), k))
                .collect();
            // Keys the item no longer holds: its archive answers.
            if let Some((_, Some(gen))) = item.as_ref().map(keys_of) {
                for (k, answer) in group.iter().zip(a.iter_mut()) {
                    if *answer == Absorbed::Unknown {
                        let found = self.in_archive(pk, sk, &seen_key(k), gen).await?;
                        *answer = if found { Absorbed::Yes } else { Absorbed::No };
                    }
                }
            }
            answers.push(a);
        }
        Ok(AbsorbedItem {
            item: item
                .as_ref()
                .map_or(Value::Null, |i| without_bookkeeping(item_to_json(i))),
            answers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn key(s: &str) -> DedupKey {
        let ev = crate::SmartleadEvent::from_value(serde_json::json!({
            "event_type": "EMAIL_SENT", "campaign_id": 1, "to_email": "a@x.example",
            "stats_id": s, "time_sent": "2026-01-01T00:00:00Z"
        }))
        .expect("event");
        ev.dedup_key()
    }

    fn set(keys: &[&DedupKey]) -> AttributeValue {
        AttributeValue::Bs(keys.iter().map(|k| Blob::new(seen_key(k))).collect())
    }

    #[test]
    fn a_key_is_absorbed_in_either_generation_and_unknown_once_rotated() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        assert_eq!(absorbed_in(None, &a), Absorbed::No);
        let mut item = HashMap::from([(SEEN_ATTR.to_owned(), set(&[&a]))]);
        assert_eq!(absorbed_in(Some(&item), &a), Absorbed::Yes);
        assert_eq!(absorbed_in(Some(&item), &b), Absorbed::No);
        // Rotated once: the old generation still answers, and nothing was
        // dropped yet, so a key in neither set is not there.
        item.insert(SEEN_OLD_ATTR.to_owned(), set(&[&b]));
        assert_eq!(absorbed_in(Some(&item), &a), Absorbed::Yes);
        assert_eq!(absorbed_in(Some(&item), &b), Absorbed::Yes);
        assert_eq!(absorbed_in(Some(&item), &c), Absorbed::No);
        // Archived generations: the archive must answer.
        let item = HashMap::from([
            (SEEN_ATTR.to_owned(), set(&[&a])),
            (SEEN_GEN_ATTR.to_owned(), AttributeValue::N("2".into())),
        ]);
        assert_eq!(absorbed_in(Some(&item), &c), Absorbed::Unknown);
        let item = HashMap::from([
            (SEEN_ATTR.to_owned(), set(&[&a])),
            (SEEN_GEN_ATTR.to_owned(), AttributeValue::N("0".into())),
        ]);
        assert_eq!(absorbed_in(Some(&item), &c), Absorbed::No);
    }
}
