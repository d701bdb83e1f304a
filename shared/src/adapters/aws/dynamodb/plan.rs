//! A plan applied item by item, whatever applies one item: [`apply_plan`]
//! over an [`ItemWriter`]. `DynamoStore` writes an item with its
//! conditional `UpdateItem`s (`apply.rs`); the in-memory store of the tests
//! (`test_support::memory`) changes a map of items. The loop, its
//! bookkeeping ([`PlanRun`], [`Tally`]) and the answer it makes of the
//! items' ends ([`ApplyOutcome`]) are so one code for both, and the store
//! contract test compares only what applying one item does.
//!
//! It lives with DynamoDB's adapter, not in `app/`: the items it reads are
//! DynamoDB's (`AttributeValue`s, the `fo` marks of [`fanout_pending`]).

use super::seen::fanout_pending;
use super::{item_to_json, seen_key, without_bookkeeping};
use crate::app::effects::FANOUT;
use crate::app::store::{ApplyOutcome, StoreError};
use crate::domain::plan::{ItemUpdate, Plan};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// An item as DynamoDB holds it: attribute values by name.
type Item = HashMap<String, AttributeValue>;

/// Requests sent and write units billed, for one plan.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: u32,
    pub write_units: f64,
}

/// What one plan's items share while they are applied.
pub struct PlanRun<'a> {
    /// The event's order (`Plan::order`), for the registers.
    pub order: &'a str,
    /// The event's time, as text, for the registers by time.
    pub time: &'a str,
    /// The event's compact key ([`seen_key`]).
    pub seen: &'a [u8],
    /// The message applying the plan ([`Plan::received_ms`]): its fan-out mark.
    pub origin_ms: i64,
    pub tally: Tally,
}

/// How one item's update ended.
pub enum ItemDone {
    /// Changed: the item after (`ALL_NEW`, when asked).
    Applied(Option<Item>),
    /// It had absorbed the event before: the item as it is.
    Absorbed(Option<Item>),
}

/// Applies one item's update of a plan, exactly once: the item absorbs the
/// event's key ([`PlanRun::seen`]) with the update, or has absorbed it
/// before. `want_state` asks for the item after the write (the plan's
/// first item: its state goes to the fan-out); `fanout` marks the event's
/// fan-out pending on it. Every request is counted in `run.tally`. An error
/// that is not retryable is the store refusing what the item holds (it is
/// then sent again trimmed, then reported).
#[async_trait]
pub trait ItemWriter: Send + Sync {
    async fn apply_item(
        &self,
        u: &ItemUpdate,
        want_state: bool,
        fanout: bool,
        run: &mut PlanRun<'_>,
    ) -> Result<ItemDone, StoreError>;
}

/// Applies `plan` with `w`, each item on its own: one that absorbed the
/// event before (a redelivery after a crash between two items) is passed
/// over; one the store refuses (even trimmed) is reported, the others
/// written. The fan-out's mark rides on the first item; its state is the
/// first item's.
pub async fn apply_plan<W: ItemWriter + ?Sized>(
    w: &W,
    plan: &Plan,
) -> Result<ApplyOutcome, StoreError> {
    let seen = seen_key(&plan.key);
    let time = plan.event_time.to_string();
    let mut run = PlanRun {
        order: &plan.order,
        time: &time,
        seen: &seen,
        origin_ms: plan.received_ms,
        tally: Tally::default(),
    };
    let marks_fanout = plan.effects.contains(&FANOUT);
    let (mut applied, mut trimmed, mut fanout) = (false, false, false);
    let mut refused = Vec::new();
    let mut state = None;
    for (i, u) in plan.items.iter().enumerate() {
        let mark = i == 0 && marks_fanout;
        let done = match w.apply_item(u, i == 0, mark, &mut run).await {
            Err(e) if !e.is_retryable() => {
                trimmed = true;
                match w.apply_item(&u.trimmed(), i == 0, mark, &mut run).await {
                    Err(e) if !e.is_retryable() => {
                        refused.push((i, format!("{}/{}: {e}", u.pk, u.sk)));
                        continue;
                    }
                    other => other?,
                }
            }
            other => other?,
        };
        let item = match done {
            ItemDone::Applied(item) => {
                applied = true;
                fanout |= mark;
                item
            }
            ItemDone::Absorbed(item) => {
                fanout |= mark && fanout_pending(item.as_ref(), &seen, run.origin_ms);
                item
            }
        };
        if i == 0 {
            state = item.as_ref().map(|i| without_bookkeeping(item_to_json(i)));
        }
    }
    Ok(if applied || plan.items.is_empty() {
        ApplyOutcome::Applied {
            transactions: run.tally.requests,
            write_units: run.tally.write_units,
            state,
            fanout,
            trimmed,
            refused,
        }
    } else if fanout || !refused.is_empty() {
        ApplyOutcome::Unchanged {
            state,
            fanout,
            refused,
        }
    } else {
        ApplyOutcome::Duplicate
    })
}
