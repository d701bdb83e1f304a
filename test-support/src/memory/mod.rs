//! [`MemoryStore`]: the consumer's [`StateStore`] in memory, for unit-level
//! tests of the consumer's logic that need no DynamoDB Local.

mod update;

use serde_json::Value;
use smartlead::adapters::aws::dynamodb::{
    apply_plan, fanout_done_marks, fx_attr, fx_until_attr, item_to_json, ItemDone, ItemWriter,
    PlanRun, DEFAULT_DEDUP_TTL_DAYS, FANOUT_PENDING_ATTR, REJECTED_TTL_DAYS, TTL_ATTR,
};
use smartlead::app::store::{
    ApplyOutcome, Claim, Dedup, EffectLedger, RejectSink, Rejected, Settle, StateReader,
    StoreError, FX_PENDING, FX_RUNNING,
};
use smartlead::aws_sdk_dynamodb::primitives::Blob;
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::domain::key::DedupKey;
use smartlead::domain::plan::{cut_bytes, key_part, ItemUpdate, Plan, MAX_RAW_BYTES};
use smartlead::domain::records::RecordKind;
use smartlead::domain::time::EventTime;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An item as DynamoDB holds it: attribute values by name.
type Item = HashMap<String, AttributeValue>;
/// The table: items by `(pk, sk)`.
type Table = HashMap<(String, String), Item>;

/// The state store in memory, with [`DynamoStore`]'s contract: every item
/// of a plan absorbs the event's compact key in its `ek` set (rotated to
/// `ek_old` when full, the generation before archived in `SEEN#<pk>`, as
/// DynamoDB's store does), so a plan applied again changes nothing; the
/// plan's updates are interpreted as the store's conditional updates say
/// (`ADD`s, `if_not_exists`, registers by newest then oldest, capped sets
/// added while they have room and rewritten to their greatest elements when
/// full); the fan-out's mark (`fo`) rides on the first item and
/// [`Dedup::fanout_done`] removes it; `first_seen`, the effect ledger
/// (`EVENT#<key>`) and `REJECTED` records are the same items. Items are
/// kept as DynamoDB attribute values, so [`StateReader::item`] returns
/// what `DynamoStore` returns, bookkeeping (`ek`, `fo`...) included. Clones
/// share the table, as clones of a `DynamoStore` share theirs.
///
/// Not modelled (DynamoDB's own, and kept out):
/// - item size: no 400 KB limit, so no refusal for size and no trimmed
///   plan for it; of DynamoDB's `ValidationException`s only an `ADD` to an
///   attribute of another type is refused (then sent trimmed and reported,
///   as DynamoDB's store does); expression rules (overlapping paths, empty
///   sets) are not checked;
/// - throttling, timeouts, lost answers, transaction conflicts and the
///   retries they cause: every call succeeds at once, under one lock (a
///   plan's items apply one by one, each under the lock on its own, by the
///   loop DynamoDB's store runs: [`apply_plan`]);
/// - TTL: `expires_at` is written as DynamoDB's store writes it, nothing
///   expires;
/// - numbers are `f64` (DynamoDB adds decimals exactly, to 38 digits);
/// - `transactions` and `write_units` are counted as the DynamoDB store
///   counts its requests (refused attempts, rotations and archive reads
///   included) and billed by item size (the larger of before and after, a
///   refused write by the item it saw), not as DynamoDB meters them.
///
/// [`DynamoStore`]: smartlead::adapters::aws::dynamodb::DynamoStore
/// [`StateStore`]: smartlead::app::store::StateStore
#[derive(Clone)]
pub struct MemoryStore {
    table: Arc<Mutex<Table>>,
    /// How long effect records and first-seen times live (written, not enforced).
    pub dedup_ttl: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            table: Arc::default(),
            dedup_ttl: Duration::from_secs(DEFAULT_DEDUP_TTL_DAYS * 86_400),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A test that panicked while holding it left a consistent table.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every item as JSON, keyed `pk|sk` (as [`crate::store::items`] reads a table).
    pub fn items(&self) -> BTreeMap<String, Value> {
        self.lock()
            .iter()
            .map(|((pk, sk), item)| (format!("{pk}|{sk}"), item_to_json(item)))
            .collect()
    }

    /// The item `pk`/`sk` as stored (attribute values), if any.
    pub fn raw_item(&self, pk: &str, sk: &str) -> Option<Item> {
        self.lock().get(&(pk.to_owned(), sk.to_owned())).cloned()
    }

    /// Epoch seconds at which a record written now expires, `ttl` on.
    fn expires(ttl: Duration) -> AttributeValue {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        AttributeValue::N((now + ttl.as_secs()).to_string())
    }
}

/// An item holding only its key.
fn new_item(pk: &str, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// `SET attr = if_not_exists(attr, v)`.
fn set_once(item: &mut Item, attr: &str, v: AttributeValue) {
    item.entry(attr.to_owned()).or_insert(v);
}

/// The memory store's part of applying a plan: one item's update, on the
/// table under its lock (the loop over the plan's items, its refusals and
/// its answer are the library's [`apply_plan`], as DynamoDB's store's).
#[async_trait::async_trait]
impl ItemWriter for MemoryStore {
    async fn apply_item(
        &self,
        u: &ItemUpdate,
        _want_state: bool,
        fanout: bool,
        run: &mut PlanRun<'_>,
    ) -> Result<ItemDone, StoreError> {
        update::apply_item(&mut self.lock(), u, fanout, run)
    }
}

#[async_trait::async_trait]
impl Dedup for MemoryStore {
    async fn apply(&self, plan: &Plan, _message_id: &str) -> Result<ApplyOutcome, StoreError> {
        apply_plan(self, plan).await
    }

    async fn first_seen(&self, key: &str, at: EventTime) -> Result<EventTime, StoreError> {
        let mut table = self.lock();
        let (pk, sk) = (format!("FIRST#{}", key_part(key)), "-");
        let item = table
            .entry((pk.clone(), sk.to_owned()))
            .or_insert_with(|| new_item(&pk, sk));
        set_once(item, "first_seen", AttributeValue::S(at.to_string()));
        set_once(item, TTL_ATTR, Self::expires(self.dedup_ttl));
        let first = item.get("first_seen").and_then(|v| v.as_s().ok());
        Ok(first.and_then(|s| EventTime::parse(s)).unwrap_or(at))
    }

    async fn fanout_done(
        &self,
        pk: &str,
        sk: &str,
        key: &DedupKey,
        received_ms: i64,
    ) -> Result<(), StoreError> {
        let marks = fanout_done_marks(key, received_ms);
        let mut table = self.lock();
        // `DELETE` from the set; never creates an item; an emptied set goes.
        let Some(item) = table.get_mut(&(pk.to_owned(), sk.to_owned())) else {
            return Ok(());
        };
        if let Some(AttributeValue::Bs(set)) = item.get_mut(FANOUT_PENDING_ATTR) {
            set.retain(|b| !marks.iter().any(|m| m.as_slice() == b.as_ref()));
            if set.is_empty() {
                item.remove(FANOUT_PENDING_ATTR);
            }
        }
        Ok(())
    }
}

/// An effect's state on its record: `fx_<effect>`, its lease's end and the
/// delivery that holds it.
fn effect_state<'a>(
    item: Option<&'a Item>,
    effect: &str,
) -> (Option<&'a AttributeValue>, Option<f64>, Option<&'a str>) {
    let get = |a: &str| item.and_then(|i| i.get(a));
    let until = get(&fx_until_attr(effect))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    let mid = get("message_id").and_then(|v| v.as_s().ok());
    (get(&fx_attr(effect)), until, mid.map(String::as_str))
}

/// The ledger's decisions (who may claim, who may settle) are written
/// again here, in Rust, on purpose: DynamoDB's store does not decide them,
/// it sends them as condition expressions (`ledger.rs`) that DynamoDB
/// evaluates on the item. Sharing them would take an expression model that
/// one side renders to DynamoDB's syntax and the other interprets, for two
/// three-clause conditions; `store_contract.rs` proves the two equal
/// instead (claims taken, refused, reclaimed after the lease, settled).
#[async_trait::async_trait]
impl EffectLedger for MemoryStore {
    async fn claim(&self, c: Claim<'_>) -> Result<bool, StoreError> {
        let (pk, sk) = (format!("EVENT#{}", c.key), "EVENT");
        let mut table = self.lock();
        let k = (pk.clone(), sk.to_owned());
        let (fx, until, mid) = effect_state(table.get(&k), c.effect);
        let is = |s: &str| fx.and_then(|v| v.as_s().ok()).is_some_and(|v| v == s);
        let lease = c.lease_until_ms as f64;
        let taken = is(FX_PENDING)
            || (is(FX_RUNNING) && until.is_some_and(|u| u < c.now_ms as f64))
            || (is(FX_RUNNING) && until == Some(lease) && mid == Some(c.message_id));
        if !(taken || (c.create && fx.is_none())) {
            return Ok(false);
        }
        let item = table.entry(k).or_insert_with(|| new_item(&pk, sk));
        item.insert(fx_attr(c.effect), AttributeValue::S(FX_RUNNING.into()));
        let until = AttributeValue::N(c.lease_until_ms.to_string());
        item.insert(fx_until_attr(c.effect), until);
        let mid = AttributeValue::S(c.message_id.to_owned());
        item.insert("message_id".to_owned(), mid);
        set_once(item, TTL_ATTR, Self::expires(self.dedup_ttl));
        Ok(true)
    }

    async fn settle(
        &self,
        key: &DedupKey,
        effect: &str,
        lease_until_ms: i64,
        end: Settle,
    ) -> Result<(), StoreError> {
        let (pk, sk) = (format!("EVENT#{key}"), "EVENT");
        let mut table = self.lock();
        let k = (pk.clone(), sk.to_owned());
        let (fx, until, _) = effect_state(table.get(&k), effect);
        let running = fx.and_then(|v| v.as_s().ok()).map(String::as_str) == Some(FX_RUNNING);
        // Only the holder of this lease settles it; unclaimed, it is created.
        if fx.is_none() || (running && until == Some(lease_until_ms as f64)) {
            let item = table.entry(k).or_insert_with(|| new_item(&pk, sk));
            let state = AttributeValue::S(end.state().to_owned());
            item.insert(fx_attr(effect), state);
            set_once(item, TTL_ATTR, Self::expires(self.dedup_ttl));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RejectSink for MemoryStore {
    async fn reject(&self, r: Rejected<'_>) -> Result<(), StoreError> {
        let or_dash = |s: &str| if s.is_empty() { "-" } else { s }.to_owned();
        let sk = format!("{}#{}", r.received_at, key_part(r.key));
        let pk = RecordKind::Rejected.pk(&sk);
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = new_item(&pk, &sk);
        item.extend([
            ("reason".to_owned(), s(r.reason)),
            ("detail".to_owned(), s(&or_dash(cut_bytes(r.detail, 1000)))),
            ("message_id".to_owned(), s(r.message_id)),
            ("received_at".to_owned(), s(r.received_at)),
            (
                "raw".to_owned(),
                s(&or_dash(cut_bytes(r.raw, MAX_RAW_BYTES))),
            ),
            (
                TTL_ATTR.to_owned(),
                Self::expires(Duration::from_secs(REJECTED_TTL_DAYS * 86_400)),
            ),
        ]);
        // A `PutItem`: the record of a key is written over.
        self.lock().insert((pk, sk), item);
        Ok(())
    }
}

#[async_trait::async_trait]
impl StateReader for MemoryStore {
    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.raw_item(pk, sk).as_ref().map(item_to_json))
    }
}

/// A set of binary values, as the key sets hold them.
fn blob_set(values: impl IntoIterator<Item = Vec<u8>>) -> AttributeValue {
    AttributeValue::Bs(values.into_iter().map(Blob::new).collect())
}

/// The consumer on `store`, without effects (no effects queue) and without
/// claim checks: the consumer's logic with no stand-in at all.
pub fn consumer(
    store: MemoryStore,
) -> smartlead::app::consumer::Consumer<MemoryStore, smartlead::aws_sdk_s3::Client> {
    smartlead::app::consumer::Consumer {
        store,
        blobs: None,
        weights: smartlead::domain::plan::ScoreWeights::default(),
        concurrency: 10,
        metrics: smartlead::metrics::Metrics::disabled(),
        effects: smartlead::app::effects::Effects::default(),
        time_window: Default::default(),
        effect_path: None,
    }
}
