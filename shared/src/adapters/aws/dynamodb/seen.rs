//! The absorbed keys: each item records the compact keys of the events it
//! absorbed, and those whose fan-out is still to publish.
//!
//! The key sets stay small without forgetting: when `ek` is full it becomes
//! `ek_old`, and the `ek_old` it replaces is first added to an archive item
//! ([`archive_key`]); the rotation then counts it in `ek_gen`, on the
//! condition that `ek_gen` is still what it read. An update assumes no
//! archived generation (`ek_gen` absent): refused by an item that has some,
//! it reads the archive (consistently) and, if the key is not there, is sent
//! again on the condition `ek_gen = <what it read>`. A key archived before
//! that read is found; one archived after it changed `ek_gen` and the
//! update is refused and checked again. A crash between the archive write
//! and the rotation leaves the keys in both (the next rotation adds them
//! again, idempotently). Typical items (up to 96 events) never read.
//!
//! The fan-out needs no record of its own: when the plan has it, the first
//! item's update also adds the compact key to its set `fo` (pending); the
//! consumer publishes with the state the write returned and then removes
//! the key ([`crate::app::store::Dedup::fanout_done`]). A later update refused as
//! already absorbed sees the item as it is: a key still in `fo` means the
//! fan-out is still to publish (whoever wrote it: a delivery that died, a
//! write whose answer the SDK's own retries hid), so it is reported again
//! ([`crate::app::store::ApplyOutcome::Unchanged`]). Two deliveries at the same moment may
//! both see it: the bus event carries the dedup key as its id.

use super::plan::Tally;
use super::{key, store_error, DynamoStore};
use crate::app::store::StoreError;
use crate::domain::key::DedupKey;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

/// The binary set of the compact keys of the events an item has absorbed.
pub const SEEN_ATTR: &str = "ek";
/// The previous generation of [`SEEN_ATTR`].
pub const SEEN_OLD_ATTR: &str = "ek_old";
/// How many generations of keys the item has archived (absent: none).
pub const SEEN_GEN_ATTR: &str = "ek_gen";
/// The compact keys of events whose fan-out is still to publish, on the
/// plan's first item: added by the write that absorbs the event, removed
/// once the fan-out is published (see [`crate::app::store::Dedup::fanout_done`]).
pub const FANOUT_PENDING_ATTR: &str = "fo";
/// Keys in one generation. When `ek` holds this many, it becomes `ek_old`
/// and a new `ek` starts; the generation before (the old `ek_old`) is first
/// archived (see [`archive_key`]) and `ek_gen` counts it. An item so
/// holds its last 48 to 96 keys, and every older one is in its archive:
/// an event is absorbed once however late it comes back.
pub const SEEN_MAX: usize = 48;
/// Archived generations per archive item: 128 x 48 keys, ~37 KB (far from
/// DynamoDB's 400 KB), one item for an item's first ~6,000 events.
pub const SEEN_ARCHIVE_GENS: u64 = 128;
/// Bytes of the key hash kept per event: two distinct events an item
/// confuses (the second then taken for a duplicate) have odds of about
/// (keys it and its archive hold) / 2^48, some 3e-13 an event for an item
/// of 96 events.
pub const SEEN_KEY_BYTES: usize = 6;

/// Where the keys of `pk`/`sk`'s archived generation `gen` (0-based) are
/// kept: a partition of its own (`SEEN#<pk>`), so a lead's `Query` shows
/// only its state.
pub fn archive_key(pk: &str, sk: &str, gen: u64) -> (String, String) {
    (
        format!("SEEN#{pk}"),
        format!("{sk}#{}", gen / SEEN_ARCHIVE_GENS),
    )
}

/// The compact key an item records for `key`.
pub fn seen_key(key: &DedupKey) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_str().as_bytes())[..SEEN_KEY_BYTES].to_vec()
}

/// The item without the store's bookkeeping (the absorbed keys).
pub fn without_bookkeeping(mut item: Value) -> Value {
    if let Some(o) = item.as_object_mut() {
        o.remove(SEEN_ATTR);
        o.remove(SEEN_OLD_ATTR);
        o.remove(SEEN_GEN_ATTR);
        o.remove(FANOUT_PENDING_ATTR);
    }
    item
}

/// The generations an item has archived (`ek_gen`; absent: 0).
pub(super) fn generation(item: Option<&HashMap<String, AttributeValue>>) -> u64 {
    item.and_then(|o| o.get(SEEN_GEN_ATTR))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A fan-out's pending mark: the event's compact key and the message that
/// marked it, by when the ingest received it (`received_at`, which every
/// redelivery and redrive of the message keeps; epoch ms, big-endian).
pub fn fanout_mark(seen: &[u8], origin_ms: i64) -> Vec<u8> {
    let mut mark = seen.to_vec();
    mark.extend_from_slice(&origin_ms.to_be_bytes());
    mark
}

/// The marks a published fan-out of `key` removes
/// ([`crate::app::store::Dedup::fanout_done`]): the one its delivery
/// (received at `received_ms`) made, and a bare key (a mark made before
/// marks named their message).
pub fn fanout_done_marks(key: &DedupKey, received_ms: i64) -> [Vec<u8>; 2] {
    let seen = seen_key(key);
    [fanout_mark(&seen, received_ms), seen]
}

/// Whether the item holds a pending fan-out mark of `seen` that the
/// message named `origin_ms` publishes: its own (a redelivery or a redrive
/// keeps its `received_at`). A mark of another message is left to that
/// message: a later copy of the event (SmartLead's retry, a reconcile
/// backfill, days later) is a duplicate, and never publishes again what may
/// have been published. A key alone (marks made before they named their
/// message) is pending for any delivery.
pub fn fanout_pending(
    item: Option<&HashMap<String, AttributeValue>>,
    seen: &[u8],
    origin_ms: i64,
) -> bool {
    let pending = |b: &[u8]| match b.strip_prefix(seen) {
        Some([]) => true,
        Some(t) => t == origin_ms.to_be_bytes(),
        None => false,
    };
    item.and_then(|o| o.get(FANOUT_PENDING_ATTR))
        .and_then(|v| v.as_bs().ok())
        .is_some_and(|s| s.iter().any(|b| pending(b.as_ref())))
}

impl DynamoStore {
    /// Starts a new generation of absorbed keys, if `ek` is still full:
    /// `ek` becomes `ek_old`. The `ek_old` it replaces (read in `item`, the
    /// item as the refusal returned it) is first added to the archive, and
    /// the rotation counts it in `ek_gen` on the condition that `ek_gen` is
    /// still what was read: no other rotation came between, so `ek_old` is
    /// still the generation archived. A crash between the two writes leaves
    /// keys in both places (harmless; the next rotation adds them again).
    /// `Some(ek_gen after)` when this call rotated.
    pub(super) async fn rotate(
        &self,
        pk: &str,
        sk: &str,
        item: Option<&HashMap<String, AttributeValue>>,
        requests: &mut u32,
    ) -> Result<Option<u64>, StoreError> {
        let gen = generation(item);
        let old = item
            .and_then(|o| o.get(SEEN_OLD_ATTR))
            .and_then(|v| v.as_bs().ok())
            .filter(|s| !s.is_empty());
        let next = if old.is_some() { gen + 1 } else { gen };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .expression_attribute_names("#ek", SEEN_ATTR)
            .expression_attribute_names("#old", SEEN_OLD_ATTR)
            .expression_attribute_names("#gen", SEEN_GEN_ATTR)
            .expression_attribute_values(":max", AttributeValue::N(SEEN_MAX.to_string()));
        if let Some(old) = old {
            let (apk, ask) = archive_key(pk, sk, gen);
            *requests += 1;
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(&apk, &ask)))
                .update_expression("ADD #k :k")
                .expression_attribute_names("#k", SEEN_ATTR)
                .expression_attribute_values(":k", AttributeValue::Bs(old.clone()))
                .send()
                .await
                .map_err(|e| store_error("UpdateItem", e))?;
            let same_gen = if gen == 0 {
                "attribute_not_exists(#gen)"
            } else {
                req = req.expression_attribute_values(":gen", AttributeValue::N(gen.to_string()));
                "#gen = :gen"
            };
            req = req
                .update_expression("SET #old = #ek, #gen = :next REMOVE #ek")
                .condition_expression(format!("size(#ek) >= :max AND {same_gen}"))
                .expression_attribute_values(":next", AttributeValue::N(next.to_string()));
        } else {
            // The first rotation: nothing to archive, `ek_gen` not written.
            req = req
                .update_expression("SET #old = #ek REMOVE #ek")
                .condition_expression(
                    "size(#ek) >= :max AND attribute_not_exists(#old) \
                     AND attribute_not_exists(#gen)",
                );
        }
        *requests += 1;
        match req.send().await {
            Ok(_) => Ok(Some(next)),
            // Someone else rotated it first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    /// Whether the archive of `pk`/`sk` holds `seen` among its first `gen`
    /// archived generations (for reconcile, after the fact).
    pub(crate) async fn in_archive(
        &self,
        pk: &str,
        sk: &str,
        seen: &[u8],
        gen: u64,
    ) -> Result<bool, StoreError> {
        self.archived(pk, sk, seen, gen, &mut Tally::default())
            .await
    }

    /// Whether the archive of `pk`/`sk` holds `seen`, looking at the `gen`
    /// generations archived (newest archive item first; consistent reads).
    pub(super) async fn archived(
        &self,
        pk: &str,
        sk: &str,
        seen: &[u8],
        gen: u64,
        tally: &mut Tally,
    ) -> Result<bool, StoreError> {
        if gen == 0 {
            return Ok(false);
        }
        let last = (gen - 1) / SEEN_ARCHIVE_GENS;
        for chain in (0..=last).rev() {
            let (apk, ask) = archive_key(pk, sk, chain * SEEN_ARCHIVE_GENS);
            tally.requests += 1;
            let hit = self.read(&apk, &ask).await?.is_some_and(|a| {
                a.get(SEEN_ATTR)
                    .and_then(|v| v.as_bs().ok())
                    .is_some_and(|s| s.iter().any(|b| b.as_ref() == seen))
            });
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
