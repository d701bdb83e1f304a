//! Applying one item's update: sent, and when refused, read from the item
//! as it was (returned with the refusal) and sent again as that says.
//!
//! The refusal says why: the key is there (done), the key set is full
//! (rotate it, see [`super::SEEN_MAX`]), the item archived
//! generations the update did not check (check them) or a register's
//! condition failed (that item moves to its next stage, newest → oldest →
//! neither, and is sent again). Throttling, timeouts and lost answers are
//! retried by the SDK alone (3 attempts within 8 s); a transaction
//! conflict and an item that changed under an update with nothing left to
//! relax are sent again here after a jittered wait (4 times at most). What
//! still fails is a retryable error, with its cause, for SQS to redeliver.

use super::attr::{item_size, write_units};
use super::expr::{build_update, capped_moved, ItemRequest, SetRead};
use super::plan::{ItemDone, ItemWriter, PlanRun};
use super::seen::generation;
use super::{key, store_error, DynamoStore, SEEN_ATTR, SEEN_MAX, SEEN_OLD_ATTR};
use crate::app::store::StoreError;
use crate::domain::plan::ItemUpdate;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Latest,
    Earliest,
    Plain,
}

fn first_stage(u: &ItemUpdate) -> Stage {
    if u.latest.is_some() {
        Stage::Latest
    } else if u.earliest.is_some() {
        Stage::Earliest
    } else {
        Stage::Plain
    }
}

fn next_stage(u: &ItemUpdate, s: Stage) -> Stage {
    match s {
        Stage::Latest if u.earliest.is_some() => Stage::Earliest,
        _ => Stage::Plain,
    }
}

/// Why an item refused an update, from the item as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The event's key is there: applied before.
    Absorbed,
    /// `ek` is full: rotate the generations, then send the update again.
    Full,
    /// The item has archived this many generations, not the number the
    /// update assumed: check the archive, then send it again with this one.
    Generation(u64),
    /// A register's condition: move to the next stage.
    Register,
}

fn refusal(old: Option<&HashMap<String, AttributeValue>>, seen: &[u8], gen: u64) -> Refusal {
    let set = |attr: &str| -> Option<&Vec<aws_sdk_dynamodb::primitives::Blob>> {
        old.and_then(|o| o.get(attr)).and_then(|v| v.as_bs().ok())
    };
    let holds = |attr: &str| set(attr).is_some_and(|s| s.iter().any(|b| b.as_ref() == seen));
    if holds(SEEN_ATTR) || holds(SEEN_OLD_ATTR) {
        Refusal::Absorbed
    } else if set(SEEN_ATTR).is_some_and(|s| s.len() >= SEEN_MAX) {
        Refusal::Full
    } else if generation(old) != gen {
        Refusal::Generation(generation(old))
    } else {
        Refusal::Register
    }
}

/// Write units a refused conditional write is billed: the item's size, by
/// started KB (at least one).
pub fn refused_units(old: Option<&HashMap<String, AttributeValue>>) -> f64 {
    write_units(old.map_or(0, item_size))
}

/// Where one item's update stands between rounds.
pub(super) struct Attempt {
    pub(super) stage: Stage,
    /// Times the item changed under this update (a transaction on the
    /// item in the way, a register moved while nothing is left to relax):
    /// each waits a little before it is sent again.
    conflicts: u32,
    /// Generations the item has archived, as far as this call knows: none
    /// until a refusal says otherwise (typical items never archive one).
    pub(super) gen: u64,
    /// Mark the fan-out pending (`ADD fo :mark`) on the plan's first item,
    /// naming the message received at this epoch ms
    /// ([`fanout_mark`](super::seen::fanout_mark)).
    pub(super) fanout: Option<i64>,
    /// How the update knows each of the item's capped sets (`u.capped`).
    pub(super) capped: Vec<SetRead>,
}

/// Re-sends after a conflict, at most (then SQS redelivers the event).
const MAX_CONFLICTS: u32 = 4;

impl Attempt {
    /// Waits before the update is sent again (25, 50, 100, 200 ms with up
    /// to 50% jitter), or gives up as transient after [`MAX_CONFLICTS`].
    async fn conflict(&mut self) -> Result<(), StoreError> {
        self.conflicts += 1;
        if self.conflicts > MAX_CONFLICTS {
            return Err(StoreError::transient(
                "the item kept changing under the update",
            ));
        }
        let base = 25u64 << (self.conflicts - 1);
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
            % (base / 2 + 1);
        tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        Ok(())
    }
}

#[async_trait]
impl ItemWriter for DynamoStore {
    /// One conditional `UpdateItem` (see [`ItemWriter::apply_item`]); a
    /// refused update is looked at ([`DynamoStore::on_refusal`]) and sent
    /// again as that says, 16 rounds at most.
    async fn apply_item(
        &self,
        u: &ItemUpdate,
        want_state: bool,
        fanout: bool,
        run: &mut PlanRun<'_>,
    ) -> Result<ItemDone, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let mut at = Attempt {
            stage: first_stage(u),
            conflicts: 0,
            gen: 0,
            fanout: fanout.then_some(run.origin_ms),
            capped: vec![SetRead::Unread; u.capped.len()],
        };
        for _ in 0..16 {
            let r = build_update(u, &at, run.order, run.time, run.seen)?;
            run.tally.requests += 1;
            let err = match self.send_update(u, r, want_state).await {
                Ok(out) => {
                    run.tally.write_units += out
                        .consumed_capacity()
                        .and_then(|c| c.capacity_units())
                        .unwrap_or(0.0);
                    return Ok(ItemDone::Applied(out.attributes));
                }
                Err(err) => err,
            };
            if let Some(UpdateItemError::TransactionConflictException(_)) = err.as_service_error() {
                // Not one of the SDK's retryable errors; busy, not wrong.
                at.conflict().await?;
                continue;
            }
            let Some(UpdateItemError::ConditionalCheckFailedException(c)) = err.as_service_error()
            else {
                // Timeouts, lost answers and throttling were retried by the
                // SDK (not again here); what is left goes back to SQS
                // and, if it keeps failing, the DLQ. An answer lost after the
                // write committed is found absorbed on redelivery.
                return Err(store_error("UpdateItem", err));
            };
            let old = match c.item() {
                Some(old) => Some(old.clone()),
                // Without the item in the refusal, read it.
                None => self.read(&u.pk, &u.sk).await?,
            };
            run.tally.write_units += refused_units(old.as_ref());
            if let Some(done) = self.on_refusal(u, old, &mut at, run).await? {
                return Ok(done);
            }
        }
        Err(StoreError::transient("item kept refusing the update"))
    }
}

impl DynamoStore {
    /// One conditional `UpdateItem`, returning the item as it was when refused.
    async fn send_update(
        &self,
        u: &ItemUpdate,
        r: ItemRequest,
        want_state: bool,
    ) -> Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    > {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&u.pk, &u.sk)))
            .update_expression(r.update)
            .condition_expression(r.condition)
            .set_expression_attribute_names(Some(r.names))
            .set_expression_attribute_values(Some(r.values))
            // The first item's state goes to the fan-out: no read.
            .return_values(if want_state {
                ReturnValue::AllNew
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
    }

    /// What a refused update leaves to do, read from the item as it was
    /// (`old`): `Some` when the item is done with, `None` to send the update
    /// again as `at` now says.
    async fn on_refusal(
        &self,
        u: &ItemUpdate,
        old: Option<HashMap<String, AttributeValue>>,
        at: &mut Attempt,
        run: &mut PlanRun<'_>,
    ) -> Result<Option<ItemDone>, StoreError> {
        match refusal(old.as_ref(), run.seen, at.gen) {
            // Whoever absorbed it (a lost answer of ours, an earlier
            // delivery), its fan-out mark says what is left to do.
            Refusal::Absorbed => return Ok(Some(ItemDone::Absorbed(old))),
            Refusal::Full => {
                let rotated = self
                    .rotate(&u.pk, &u.sk, old.as_ref(), &mut run.tally.requests)
                    .await?;
                // The generation this rotation archived is the `ek_old` the
                // refusal showed without our key; the ones before were
                // checked if `gen` is the item's: no read needed for the new one.
                if let Some(next) = rotated {
                    if at.gen == generation(old.as_ref()) {
                        at.gen = next;
                    }
                }
            }
            Refusal::Generation(g) => {
                // Archived before the item was read (the read of the archive
                // is consistent); a rotation after it changes `ek_gen`, and
                // the update conditioned on `g` is refused.
                if self
                    .archived(&u.pk, &u.sk, run.seen, g, &mut run.tally)
                    .await?
                {
                    return Ok(Some(ItemDone::Absorbed(old)));
                }
                at.gen = g;
            }
            // A capped set full, or changed since it was read: read it.
            Refusal::Register if capped_moved(u, old.as_ref(), at) => {}
            // The next stage, again.
            Refusal::Register if next_stage(u, at.stage) != at.stage => {
                at.stage = next_stage(u, at.stage)
            }
            // Nothing left to relax: changed under us; again, a little later.
            Refusal::Register => at.conflict().await?,
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::dynamodb::SEEN_GEN_ATTR;

    #[test]
    fn a_refused_update_is_read_from_the_item_as_it_was() {
        use aws_sdk_dynamodb::primitives::Blob;
        let key = vec![1u8, 2, 3, 4, 5, 6];
        let set =
            |keys: Vec<Vec<u8>>| AttributeValue::Bs(keys.into_iter().map(Blob::new).collect());
        let item = |attrs: Vec<(&str, AttributeValue)>| -> HashMap<String, AttributeValue> {
            attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        let old = item(vec![(SEEN_OLD_ATTR, set(vec![key.clone()]))]);
        assert_eq!(
            refusal(Some(&old), &key, 0),
            Refusal::Absorbed,
            "in the old generation"
        );
        let full: Vec<Vec<u8>> = (0..SEEN_MAX as u8).map(|i| vec![i; 6]).collect();
        let f = item(vec![(SEEN_ATTR, set(full))]);
        assert_eq!(refusal(Some(&f), &key, 0), Refusal::Full);
        let other = item(vec![(SEEN_ATTR, set(vec![vec![9; 6]]))]);
        assert_eq!(refusal(Some(&other), &key, 0), Refusal::Register);
        assert_eq!(refusal(None, &key, 0), Refusal::Register);
        // An item that archived generations the update did not assume.
        let mut g = other.clone();
        g.insert(SEEN_GEN_ATTR.to_owned(), AttributeValue::N("3".into()));
        assert_eq!(refusal(Some(&g), &key, 0), Refusal::Generation(3));
        assert_eq!(refusal(Some(&g), &key, 3), Refusal::Register);
        // The key in `ek` wins over a generation mismatch.
        let mut a = old.clone();
        a.insert(SEEN_GEN_ATTR.to_owned(), AttributeValue::N("3".into()));
        assert_eq!(refusal(Some(&a), &key, 0), Refusal::Absorbed);
    }
}
