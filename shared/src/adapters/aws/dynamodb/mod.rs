//! The DynamoDB state store: applies a [`Plan`](crate::domain::plan::Plan)
//! exactly once, without a transaction. docs/exactly-once.md tells the whole
//! story (crashes, retries, redrives); in short:
//!
//! Every item a plan touches is changed by one conditional `UpdateItem`
//! (`expr.rs`) that also records the event's compact key in the item's set
//! `ek`, on the condition that the key is not there yet (`seen.rs`: the key
//! sets, their rotation and archive). Each item is so idempotent on its
//! own, and an event touching two items needs no transaction: the
//! redelivery after a crash between them finds the first done and applies
//! the second. A refused update is read from the item as it was and sent
//! again as that says (`apply.rs`: registers relaxed, full sets rotated or
//! rewritten, conflicts waited out). The fan-out's pending mark rides on
//! the first item's write (`fo`, [`FANOUT_PENDING_ATTR`]); the effects'
//! claims are kept in the effect ledger (`ledger.rs`); rejected events in
//! `REJECTED` records (`records.rs`). An item DynamoDB refuses for its
//! content (past 400 KB) is sent again trimmed, the last resort, and if
//! refused even so, reported while the plan's other items are written.
//!
//! One file a concept: `store.rs` the trait impls' entry points (`Dedup`,
//! `StateReader`) and the tools' reads, `plan.rs` a plan applied item by
//! item over an [`ItemWriter`] (this store's `apply.rs`, or the tests'
//! in-memory store), `attr.rs` JSON and attribute values,
//! `error.rs` DynamoDB's errors as [`StoreError`](crate::app::store::StoreError)s,
//! `absorbed.rs` whether an event was absorbed (for reconcile), `budget.rs`
//! the rate budgets, `index.rs` the secondary indexes and their reads.

pub mod absorbed;
mod apply;
mod attr;
pub mod budget;
pub mod clients;
mod error;
mod expr;
pub mod index;
mod ledger;
mod plan;
pub mod records;
mod seen;
mod store;

pub use apply::refused_units;
pub use attr::{attr_to_json, item_size, item_to_json, json_to_attr, to_attr, write_units};
pub use error::refused_for_content;
pub(crate) use error::store_error;
pub use ledger::{fx_attr, fx_until_attr};
pub use plan::{apply_plan, ItemDone, ItemWriter, PlanRun, Tally};
pub use records::REJECTED_TTL_DAYS;
pub use seen::{
    archive_key, fanout_done_marks, fanout_mark, fanout_pending, seen_key, without_bookkeeping,
    FANOUT_PENDING_ATTR, SEEN_ARCHIVE_GENS, SEEN_ATTR, SEEN_GEN_ATTR, SEEN_KEY_BYTES, SEEN_MAX,
    SEEN_OLD_ATTR,
};
pub use store::{create_table, create_table_with};

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::Duration;

/// Attribute DynamoDB's TTL deletes items by (epoch seconds).
pub const TTL_ATTR: &str = "expires_at";

/// Days an effect's marker lives by default: the template's `DedupTtlDays` (a test checks).
pub const DEFAULT_DEDUP_TTL_DAYS: u64 = 105;

#[derive(Clone)]
pub struct DynamoStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub dedup_ttl: Duration,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
            dedup_ttl: Duration::from_secs(DEFAULT_DEDUP_TTL_DAYS * 86_400),
        }
    }
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}
