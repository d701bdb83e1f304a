//! The rate budgets ([`crate::app::budget`]) in the state table: one item
//! a destination, `BUDGET#<id>` / `-`, holding
//!
//! - `tat`: the destination's theoretical arrival time (epoch ms), the
//!   earliest moment the next call may go;
//! - `iv`: the spacing (ms) the destination's own statement of its limit
//!   asks for, once one was seen (absent: each caller's configured one);
//! - `expires_at`: two days after the last use (TTL), so an idle budget
//!   (a rotated key, a replaced webhook) goes away.
//!
//! A call takes its slot with one conditional `UpdateItem` and no read:
//! when the budget is idle (`tat` absent or past) it sets `tat` to now plus
//! an interval (the slot is now); when it is busy it adds an interval to
//! `tat` (the slot is the old `tat`), on the condition that the slot is not
//! past the caller's deadline. The busy case is an increment: callers in a
//! wave never overwrite each other's slots and never retry for each other.
//! A refused condition returns the item as it was (`ALL_OLD`): the call
//! switches case, or, when the slot is past its deadline, reserves nothing
//! and says how long to wait. The caller's last view of `tat` picks the
//! case to try first, and answers "not before the deadline" without a
//! write while it shows a slot past it (`tat` never moves back).

use super::{key, store_error, TTL_ATTR};
use crate::app::budget::{now_ms, wait_ms, BudgetError, Destination, RateBudget};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an unused budget item lives (longer than any pause, which
/// [`crate::adapters::http::MAX_RETRY_AFTER`] caps at a day).
const IDLE_TTL_SECS: i64 = 2 * 86_400;
/// Writes one reservation may take: the case switches at most twice.
const ATTEMPTS: usize = 4;

type Item = HashMap<String, AttributeValue>;

/// What this process last saw of a budget item.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    tat: i64,
    iv: Option<i64>,
}

impl Seen {
    fn of(item: Option<&Item>) -> Seen {
        let n = |a: &str| {
            item.and_then(|i| i.get(a))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        Seen {
            tat: n("tat").unwrap_or(0),
            iv: n("iv"),
        }
    }
}

/// The rate budgets, in the table `table`.
pub struct DynamoBudget {
    client: aws_sdk_dynamodb::Client,
    table: String,
    seen: std::sync::Mutex<HashMap<String, Seen>>,
}

impl DynamoBudget {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoBudget {
        DynamoBudget {
            client,
            table: table.into(),
            seen: Default::default(),
        }
    }

    fn seen(&self, id: &str) -> Option<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(id).copied()
    }

    fn remember(&self, id: &str, s: Seen) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(id.to_owned(), s);
    }

    /// One conditional update of `dest`'s item: `Ok(Ok(new item))`, or
    /// `Ok(Err(item as it was))` when the condition did not hold.
    async fn update(
        &self,
        dest: &Destination,
        update: &str,
        condition: &str,
        values: &[(&str, i64)],
    ) -> Result<Result<Item, Item>, BudgetError> {
        let expires = chrono::Utc::now().timestamp() + IDLE_TTL_SECS;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("BUDGET#{}", dest.id), "-")))
            .update_expression(format!("{update}, #x = :x"))
            .condition_expression(condition)
            .expression_attribute_names("#x", TTL_ATTR)
            .expression_attribute_values(":x", AttributeValue::N(expires.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, v) in values {
            req = req.expression_attribute_values(*name, AttributeValue::N(v.to_string()));
        }
        match req.send().await {
            Ok(out) => Ok(Ok(out.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Err(c.item.clone().unwrap_or_default()))
                }
                _ => Err(BudgetError::Unavailable(Box::new(store_error("UpdateItem", e)))),
            },
        }
    }
}

#[async_trait]
impl RateBudget for DynamoBudget {
    async fn reserve(&self, dest: &Destination, latest: Instant) -> Result<Duration, BudgetError> {
        let latest = crate::app::budget::epoch_ms(latest);
        let mut seen = self.seen(&dest.id).unwrap_or_default();
        for _ in 0..ATTEMPTS {
            let now = now_ms();
            if seen.tat > latest {
                return Err(BudgetError::Later {
                    after: wait_ms(seen.tat - now),
                });
            }
            let (update, condition) = if seen.tat > now {
                (
                    "SET tat = tat + if_not_exists(iv, :t)",
                    "tat > :now AND tat <= :latest",
                )
            } else {
                (
                    "SET tat = :now + if_not_exists(iv, :t)",
                    "attribute_not_exists(tat) OR tat <= :now",
                )
            };
            let values = [
                (":t", dest.interval_ms(None)),
                (":now", now),
                (":latest", latest),
            ];
            let values = if seen.tat > now {
                &values[..]
            } else {
                &values[..2]
            };
            match self.update(dest, update, condition, values).await? {
                Ok(item) => {
                    let new = Seen::of(Some(&item));
                    self.remember(&dest.id, new);
                    let slot = new.tat - new.iv.unwrap_or_else(|| dest.interval_ms(None));
                    return Ok(wait_ms(slot - now));
                }
                Err(old) => seen = Seen::of(Some(&old)),
            }
        }
        self.remember(&dest.id, seen);
        Err(BudgetError::Unavailable(
            "the budget changed under every attempt to reserve a slot".into(),
        ))
    }

    async fn pause(&self, dest: &Destination, until_ms: i64) -> Result<(), BudgetError> {
        let r = self
            .update(
                dest,
                "SET tat = :until",
                "attribute_not_exists(tat) OR tat < :until",
                &[(":until", until_ms)],
            )
            .await?;
        let item = match &r {
            Ok(item) | Err(item) => item,
        };
        self.remember(&dest.id, Seen::of(Some(item)));
        Ok(())
    }

    async fn stated_limit(&self, dest: &Destination, count: u32) -> Result<(), BudgetError> {
        let iv = dest.interval_ms(Some(count));
        let seen = self.seen(&dest.id);
        if seen.is_some_and(|s| s.iv.unwrap_or_else(|| dest.interval_ms(None)) == iv) {
            return Ok(());
        }
        let r = self
            .update(
                dest,
                "SET iv = :iv",
                "attribute_not_exists(iv) OR iv <> :iv",
                &[(":iv", iv)],
            )
            .await?;
        let item = match &r {
            Ok(item) | Err(item) => item,
        };
        self.remember(&dest.id, Seen::of(Some(item)));
        Ok(())
    }
}
