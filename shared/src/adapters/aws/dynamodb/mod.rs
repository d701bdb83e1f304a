//! The DynamoDB state store: applies a [`Plan`] exactly once, without a
//! transaction.
//!
//! Every item a plan touches is changed by one conditional `UpdateItem`
//! that also records the event's compact key (6 bytes of a hash of its
//! dedup key) in the item's binary set `ek`, on the condition that the key
//! is not there yet (nor in `ek_old`, the previous generation). Each item is
//! so idempotent on its own: a redelivered event, or the retry of a write
//! whose answer was lost, finds its key and changes nothing ("already
//! absorbed"), and the store moves on to the plan's next item. An event
//! touching two items (a bounce: the lead's campaign item and its
//! suppression) needs no transaction: a crash between the two writes is
//! healed by the redelivery, which the first item refuses and the second
//! applies. No plan makes a decision in one item from what another holds.
//! There is no separate dedup marker: typical events write one item.
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
//! Registers (see [`crate::domain::plan`]) add a condition: "this event is the
//! newest". When an update is refused, the item as it was (returned with
//! the refusal) says why: the key is there (done), the key set is full
//! (rotate it, see [`SEEN_MAX`]), the item archived generations the update
//! did not check (check them) or a register's condition failed (that
//! item moves to its next stage, newest → oldest → neither, and is sent
//! again). Throttling, timeouts and lost answers are retried by the SDK
//! alone (3 attempts within 8 s); a transaction conflict and an item that
//! changed under an update with nothing left to relax are sent again here
//! after a jittered wait (4 times at most). What still fails is a
//! retryable error, with its cause, for SQS to redeliver.
//!
//! The sets that grow with an item's events ([`Capped`]: clicked links,
//! colleagues' replies, steps sent) keep their newest elements, so no
//! stream of events grows an item past a few KB (each write of an item is
//! billed one unit per started KB, refused ones included). The update adds
//! the event's elements (`ADD`) on the condition that the set has room for
//! them: one request, whatever the set holds. A full set refuses; the
//! item the refusal returns shows it, and the update is sent again
//! rewriting the set whole: the greatest of its elements and the event's
//! (texts are stamped with their time, so the greatest are the newest),
//! the others counted (`links_dropped`...), on the condition that the set
//! is still what was read (`SetRead`). A writer that lost the race finds
//! the set changed, reads it again from its own refusal and merges again;
//! a retry or a redelivery finds its key in `ek` first. So the set holds
//! the greatest elements of all ever added, whatever their order of
//! arrival, and its counter how many others, each event counted once.
//!
//! The fan-out needs no record of its own: when the plan has it, the first
//! item's update also adds the compact key to its set `fo` (pending); the
//! consumer publishes with the state the write returned and then removes
//! the key ([`crate::app::store::Dedup::fanout_done`]). A later update refused as
//! already absorbed sees the item as it is: a key still in `fo` means the
//! fan-out is still to publish (whoever wrote it: a delivery that died, a
//! write whose answer the SDK's own retries hid), so it is reported again
//! ([`ApplyOutcome::Unchanged`]). Two deliveries at the same moment may
//! both see it: the bus event carries the dedup key as its id.
//!
//! Items are independent, so each is applied whatever the others do: one
//! DynamoDB refuses for its content (past 400 KB: an item grown before its
//! sets were capped and not yet written by an event that caps them, or by
//! hand) is sent again trimmed ([`ItemUpdate::trimmed`]), the last resort,
//! and if refused even so, reported in the outcome while the others are
//! written.

pub mod absorbed;
pub mod budget;
pub mod records;

use crate::adapters::aws::error::AwsError;
use crate::app::store::{
    ApplyOutcome, Claim, Dedup, EffectLedger, RejectSink, Rejected, Settle, StateReader,
    StoreError, FX_PENDING, FX_RUNNING,
};
use crate::domain::key::DedupKey;
use crate::domain::plan::{keep_greatest, key_part, Capped, ItemUpdate, Plan, Val};
use crate::domain::records::RecordKind;
use crate::domain::time::EventTime;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Attribute DynamoDB's TTL deletes items by (epoch seconds).
pub const TTL_ATTR: &str = "expires_at";
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

/// Days an effect's marker lives by default: the template's `DedupTtlDays` (a test checks).
pub const DEFAULT_DEDUP_TTL_DAYS: u64 = 105;
pub const REJECTED_TTL_DAYS: u64 = 30;

pub fn fx_attr(effect: &str) -> String {
    format!("fx_{effect}")
}
pub fn fx_until_attr(effect: &str) -> String {
    format!("fx_{effect}_until")
}

#[derive(Clone)]
pub struct DynamoStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub dedup_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
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

/// Levels of nesting a JSON value may use inside an item (DynamoDB allows
/// 32, the item itself being one).
const MAX_ATTR_DEPTH: usize = 30;

/// JSON -> DynamoDB attribute (maps and lists kept as such). What DynamoDB
/// cannot hold is kept as text: numbers out of its range, values nested
/// deeper than it allows; an empty map key becomes `"(empty)"`.
pub fn json_to_attr(v: &Value) -> AttributeValue {
    json_to_attr_at(v, 0)
}

fn json_to_attr_at(v: &Value, depth: usize) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !crate::domain::plan::dynamo_number_ok(f) => {
                AttributeValue::S(n.to_string())
            }
            _ => AttributeValue::N(n.to_string()),
        },
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(_) | Value::Object(_) if depth >= MAX_ATTR_DEPTH => {
            AttributeValue::S(v.to_string())
        }
        Value::Array(a) => {
            AttributeValue::L(a.iter().map(|x| json_to_attr_at(x, depth + 1)).collect())
        }
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| {
                    let k = if k.is_empty() { "(empty)" } else { k.as_str() };
                    (k.to_owned(), json_to_attr_at(v, depth + 1))
                })
                .collect(),
        ),
    }
}

/// DynamoDB attribute -> JSON (sets become sorted arrays).
pub fn attr_to_json(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_to_json).collect()),
        AttributeValue::M(m) => {
            let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), attr_to_json(v)))
                    .collect(),
            )
        }
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            Value::from(s)
        }
        AttributeValue::Ns(ns) => {
            let mut v: Vec<f64> = ns.iter().filter_map(|n| n.parse().ok()).collect();
            v.sort_by(f64::total_cmp);
            Value::Array(
                v.into_iter()
                    .map(|f| {
                        if f.fract() == 0.0 {
                            Value::from(f as i64)
                        } else {
                            Value::from(f)
                        }
                    })
                    .collect(),
            )
        }
        AttributeValue::Bs(b) => {
            let mut v: Vec<String> = b.iter().map(|b| hex::encode(b.as_ref())).collect();
            v.sort();
            Value::from(v)
        }
        _ => Value::Null,
    }
}

/// An item as JSON (for views and tools).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    attr_to_json(&AttributeValue::M(item.clone()))
}

/// An item's size as DynamoDB meters it (attribute names plus values; numbers
/// by significant digits), in bytes: a write costs one unit per started KB,
/// two in a transaction.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn number(n: &str) -> usize {
        let digits = n
            .trim_start_matches('-')
            .replace('.', "")
            .split(['e', 'E'])
            .next()
            .unwrap_or_default()
            .trim_matches('0')
            .len();
        digits.div_ceil(2) + 1
    }
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number(n),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(|n| number(n)).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else if f.abs() >= 1e15 || f.abs() < 1e-15 {
        // DynamoDB reads exponents; Rust would spell out every digit.
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

fn to_attr(v: &Val) -> AttributeValue {
    match v {
        Val::S(s) => AttributeValue::S(s.clone()),
        Val::N(n) if !crate::domain::plan::dynamo_number_ok(*n) => AttributeValue::S(n.to_string()),
        Val::N(n) => AttributeValue::N(num(*n)),
        Val::Ss(s) => AttributeValue::Ss(s.clone()),
        Val::Ns(n) => AttributeValue::Ns(n.iter().map(|f| num(*f)).collect()),
        Val::Json(j) => json_to_attr(j),
    }
}

/// Builds an expression with generated placeholders.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    add: Vec<String>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let n = format!("#n{}", self.names.len());
        self.names.insert(n.clone(), attr.to_owned());
        n
    }
    fn value(&mut self, v: AttributeValue) -> String {
        let n = format!(":v{}", self.values.len());
        self.values.insert(n.clone(), v);
        n
    }
    /// `SET a = v` for each field, or `SET a = if_not_exists(a, v)` when `once`.
    fn set_fields(&mut self, fields: &[(&'static str, Val)], once: bool) {
        for (attr, v) in fields {
            let n = self.name(attr);
            let val = self.value(to_attr(v));
            self.set.push(if once {
                format!("{n} = if_not_exists({n}, {val})")
            } else {
                format!("{n} = {val}")
            });
        }
    }
    fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        parts.join(" ")
    }
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// One item's conditional update: its expression, condition, names and
/// values. Besides the plan's changes it adds `key` to the absorbed keys,
/// on the condition that neither generation holds it, `ek` is not full and
/// the item has archived `gen` generations (the archive was checked for
/// the key up to that one; see [`DynamoStore::archived`]).
struct ItemRequest {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// `u`'s request as `at` stands: its register stage, the generations it
/// assumes, its fan-out mark and how it knows its capped sets.
fn build_update(
    u: &ItemUpdate,
    at: &Attempt,
    order: &str,
    time: &str,
    seen: &[u8],
) -> Result<ItemRequest, StoreError> {
    let mut e = Expr::default();
    // A register compares the event's order, or its time alone (`by_time`).
    let order_of = |r: &crate::domain::plan::Register| {
        AttributeValue::S(if r.by_time { time } else { order }.to_owned())
    };
    e.set_fields(&u.set_once, true);
    for (attr, v) in &u.add {
        let n = e.name(attr);
        let val = e.value(to_attr(v));
        e.add.push(format!("{n} {val}"));
    }
    let mut condition = absorb(&mut e, seen, at.gen, at.fanout);
    for (c, read) in u.capped.iter().zip(&at.capped) {
        condition.push_str(&capped(&mut e, c, read));
    }
    match at.stage {
        Stage::Latest => {
            let reg = u
                .latest
                .as_ref()
                .ok_or_else(|| StoreError::permanent("latest stage without register"))?;
            condition.push_str(&register(&mut e, reg, order_of(reg), "<="));
            if let Some(early) = &u.earliest {
                // Newest and no earliest yet means this is also the earliest.
                let eo = e.name(early.order_attr);
                let ev = e.value(order_of(early));
                e.set.push(format!("{eo} = if_not_exists({eo}, {ev})"));
                e.set_fields(&early.fields, true);
            }
        }
        Stage::Earliest => {
            let reg = u
                .earliest
                .as_ref()
                .ok_or_else(|| StoreError::permanent("earliest stage without register"))?;
            condition.push_str(&register(&mut e, reg, order_of(reg), ">"));
        }
        Stage::Plain => {}
    }
    Ok(ItemRequest {
        update: e.update_expression(),
        condition,
        names: e.names,
        values: e.values,
    })
}

/// Adds the event's key to the absorbed keys (and, with `fanout`, the
/// fan-out's mark naming the message received at that epoch ms: see
/// [`fanout_mark`]) and returns the condition: neither generation holds
/// it, `ek` is not full, and the item has archived `gen` generations.
fn absorb(e: &mut Expr, seen: &[u8], gen: u64, fanout: Option<i64>) -> String {
    let ek = e.name(SEEN_ATTR);
    let ek_old = e.name(SEEN_OLD_ATTR);
    let kset = e.value(AttributeValue::Bs(vec![
        aws_sdk_dynamodb::primitives::Blob::new(seen.to_vec()),
    ]));
    let kval = e.value(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
        seen.to_vec(),
    )));
    let max = e.value(AttributeValue::N(SEEN_MAX.to_string()));
    e.add.push(format!("{ek} {kset}"));
    if let Some(origin_ms) = fanout {
        let fo = e.name(FANOUT_PENDING_ATTR);
        let mark = e.value(AttributeValue::Bs(vec![
            aws_sdk_dynamodb::primitives::Blob::new(fanout_mark(seen, origin_ms)),
        ]));
        e.add.push(format!("{fo} {mark}"));
    }
    let mut condition = format!(
        "NOT contains({ek}, {kval}) AND NOT contains({ek_old}, {kval}) \
         AND (attribute_not_exists({ek}) OR size({ek}) < {max})"
    );
    let g = e.name(SEEN_GEN_ATTR);
    if gen == 0 {
        condition.push_str(&format!(" AND attribute_not_exists({g})"));
    } else {
        let gv = e.value(AttributeValue::N(gen.to_string()));
        condition.push_str(&format!(" AND {g} = {gv}"));
    }
    condition
}

/// How an update knows one of its capped sets ([`Capped`]).
#[derive(Debug, Clone)]
enum SetRead {
    /// Not read: the elements are added (`ADD`), on the condition that the
    /// set has room for them. Typical: one request, whatever the set holds.
    Unread,
    /// As a refusal showed it (`None`: absent): rewritten whole, its
    /// greatest elements kept and the others counted, on the condition
    /// that it is still that.
    Read(Option<AttributeValue>),
}

/// Adds `c`'s elements as `read` says and returns its condition.
fn capped(e: &mut Expr, c: &Capped, read: &SetRead) -> String {
    let s = e.name(c.attr);
    let (dropped, condition) = match read {
        SetRead::Unread => {
            let v = e.value(to_attr(&c.add));
            e.add.push(format!("{s} {v}"));
            let room = c.cap.saturating_sub(set_len(&c.add));
            let room = e.value(AttributeValue::N(room.to_string()));
            let cond = format!(" AND (attribute_not_exists({s}) OR size({s}) <= {room})");
            (c.extra, cond)
        }
        SetRead::Read(old) => {
            let was = old.as_ref().and_then(set_val);
            let (kept, n) = keep_greatest(was.as_ref(), &c.add, c.cap);
            let v = e.value(to_attr(&kept));
            e.set.push(format!("{s} = {v}"));
            let cond = match (old, was.as_ref().map(set_len)) {
                // Past its cap (grown before it), only a rewrite changes
                // the set (an `ADD` needs room), and that leaves it at its
                // cap: its size tells, without sending its ~400 KB back.
                (Some(_), Some(n)) if n > c.cap => {
                    format!(
                        " AND size({s}) = {}",
                        e.value(AttributeValue::N(n.to_string()))
                    )
                }
                (Some(o), _) => format!(" AND {s} = {}", e.value(o.clone())),
                (None, _) => format!(" AND attribute_not_exists({s})"),
            };
            (c.extra + n, cond)
        }
    };
    if dropped > 0 {
        let d = e.name(c.dropped);
        let n = e.value(AttributeValue::N(dropped.to_string()));
        e.add.push(format!("{d} {n}"));
    }
    condition
}

/// Elements of a set value.
fn set_len(v: &Val) -> usize {
    match v {
        Val::Ss(s) => s.len(),
        Val::Ns(n) => n.len(),
        _ => 1,
    }
}

/// A stored set as a plan's value (numbers parsed); none for another type.
fn set_val(a: &AttributeValue) -> Option<Val> {
    match a {
        AttributeValue::Ss(s) => Some(Val::Ss(s.clone())),
        AttributeValue::Ns(n) => Some(Val::Ns(n.iter().filter_map(|f| f.parse().ok()).collect())),
        _ => None,
    }
}

/// Whether a capped set of `u` refused the update (no room for the
/// elements, or not what the update read): each that did is read from the
/// item as the refusal showed it (`old`) into `at`, to be sent again.
fn capped_moved(
    u: &ItemUpdate,
    old: Option<&HashMap<String, AttributeValue>>,
    at: &mut Attempt,
) -> bool {
    let mut moved = false;
    for (c, read) in u.capped.iter().zip(at.capped.iter_mut()) {
        let now = old.and_then(|o| o.get(c.attr));
        let holds = match read {
            SetRead::Unread => now
                .is_none_or(|v| set_val(v).is_some_and(|v| set_len(&v) + set_len(&c.add) <= c.cap)),
            SetRead::Read(was) => same_set(was.as_ref(), now),
        };
        if !holds {
            *read = SetRead::Read(now.cloned());
            moved = true;
        }
    }
    moved
}

/// Whether two stored values are equal, sets whatever their order.
fn same_set(a: Option<&AttributeValue>, b: Option<&AttributeValue>) -> bool {
    let sorted = |v: &AttributeValue| match v {
        AttributeValue::Ss(s) | AttributeValue::Ns(s) => {
            let mut s = s.clone();
            s.sort();
            Some(s)
        }
        _ => None,
    };
    match (a, b) {
        (Some(a), Some(b)) => match (sorted(a), sorted(b)) {
            (Some(x), Some(y)) => x == y && std::mem::discriminant(a) == std::mem::discriminant(b),
            _ => a == b,
        },
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Sets a register (its order and fields) and returns its condition: the
/// recorded order is absent or `cmp` (`<=`: newest wins, `>`: oldest wins)
/// the event's.
fn register(
    e: &mut Expr,
    reg: &crate::domain::plan::Register,
    order: AttributeValue,
    cmp: &str,
) -> String {
    let o = e.name(reg.order_attr);
    let v = e.value(order);
    e.set.push(format!("{o} = {v}"));
    e.set_fields(&reg.fields, false);
    format!(" AND (attribute_not_exists({o}) OR {o} {cmp} {v})")
}

/// Requests sent and write units DynamoDB reported, for one plan.
#[derive(Debug, Default)]
struct Tally {
    requests: u32,
    write_units: f64,
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

/// The generations an item has archived (`ek_gen`; absent: 0).
fn generation(item: Option<&HashMap<String, AttributeValue>>) -> u64 {
    item.and_then(|o| o.get(SEEN_GEN_ATTR))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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

/// A fan-out's pending mark: the event's compact key and the message that
/// marked it, by when the ingest received it (`received_at`, which every
/// redelivery and redrive of the message keeps; epoch ms, big-endian).
pub fn fanout_mark(seen: &[u8], origin_ms: i64) -> Vec<u8> {
    let mut mark = seen.to_vec();
    mark.extend_from_slice(&origin_ms.to_be_bytes());
    mark
}

/// Whether the item holds a pending fan-out mark of `seen` that the
/// message named `origin_ms` publishes: its own (a redelivery or a redrive
/// keeps its `received_at`). A mark of another message is left to that
/// message: a later copy of the event (SmartLead's retry, a reconcile
/// backfill, days later) is a duplicate, and never publishes again what may
/// have been published. A key alone (marks made before they named their
/// message) is pending for any delivery.
fn fanout_pending(
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

/// Write units a refused conditional write is billed: the item's size, by
/// started KB (at least one).
fn refused_units(old: Option<&HashMap<String, AttributeValue>>) -> f64 {
    old.map_or(1, |o| item_size(o).div_ceil(1024).max(1)) as f64
}

/// How one item's update ended.
enum ItemDone {
    /// Changed: the item after (`ALL_NEW`, when asked).
    Applied(Option<HashMap<String, AttributeValue>>),
    /// It had absorbed the event before: the item as it is.
    Absorbed(Option<HashMap<String, AttributeValue>>),
}

/// Where one item's update stands between rounds.
struct Attempt {
    stage: Stage,
    /// Times the item changed under this update (a transaction on the
    /// item in the way, a register moved while nothing is left to relax):
    /// each waits a little before it is sent again.
    conflicts: u32,
    /// Generations the item has archived, as far as this call knows: none
    /// until a refusal says otherwise (typical items never archive one).
    gen: u64,
    /// Mark the fan-out pending (`ADD fo :mark`) on the plan's first item,
    /// naming the message received at this epoch ms ([`fanout_mark`]).
    fanout: Option<i64>,
    /// How the update knows each of the item's capped sets (`u.capped`).
    capped: Vec<SetRead>,
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

/// What one plan's items share while they are applied.
struct PlanRun<'a> {
    order: &'a str,
    time: &'a str,
    seen: &'a [u8],
    /// The message applying the plan ([`Plan::received_ms`]): its fan-out mark.
    origin_ms: i64,
    tally: Tally,
}

/// Whether a `ValidationException` says DynamoDB refused what an item holds
/// (its size, a number's range, nesting, an empty or duplicated set, a key's
/// length): the same event fails every time. A malformed expression or a
/// key that does not match the table's schema is a deploy's fault instead:
/// transient, so the events wait in the queue and the DLQ for the fix.
/// AWS opens a value's refusal with "ExpressionAttributeValues contains
/// invalid value:": that names the request's values, not a deploy's
/// expression, so it is judged by the content words alone (what follows
/// may quote the values themselves, "not found" in a link included).
pub fn refused_for_content(message: Option<&str>) -> bool {
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let value = lower.strip_prefix("expressionattributevalues contains invalid value:");
    let m = value.unwrap_or(&lower);
    let content = [
        "item size",
        "exceeded the maximum",
        "size limit",
        "number overflow",
        "magnitude",
        "nesting",
        "may not be empty",
        "contains duplicates",
        "empty string",
        "size of hashkey",
    ];
    let deploy = [
        "expression",
        "schema",
        "type mismatch",
        "missing the key",
        "not found",
    ];
    content.iter().any(|c| m.contains(c))
        && (value.is_some() || !deploy.iter().any(|d| m.contains(d)))
}

/// A failed call, its cause kept: permanent when DynamoDB refused the
/// request's content (`ValidationException`: the same request fails every
/// time), else transient.
pub(crate) fn store_error<E, R>(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let e = AwsError::from_sdk(operation, e);
    if e.code.as_deref() == Some("ValidationException") && refused_for_content(e.message()) {
        StoreError::Permanent {
            message: format!(
                "DynamoDB refused the event's items: {}",
                e.message().unwrap_or("ValidationException")
            ),
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::transient_from(e)
    }
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
            dedup_ttl: Duration::from_secs(DEFAULT_DEDUP_TTL_DAYS * 86_400),
        }
    }

    /// A conditional update of an effect's state on the effect record:
    /// `Ok(false)` when the condition did not hold.
    async fn effect_update(
        &self,
        key: &DedupKey,
        effect: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(&format!("EVENT#{key}"), "EVENT")))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#fx", fx_attr(effect))
            .expression_attribute_names("#until", fx_until_attr(effect));
        for (name, v) in values {
            req = req.expression_attribute_values(*name, v.clone());
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    /// Applies one item's update (see [`ItemDone`]); `fanout` marks the
    /// event's fan-out pending on it; `want_state` asks for the item after
    /// the write (the plan's first item: its state goes to the fan-out).
    /// A refused update is looked at ([`DynamoStore::on_refusal`]) and sent
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

    /// Starts a new generation of absorbed keys, if `ek` is still full:
    /// `ek` becomes `ek_old`. The `ek_old` it replaces (read in `item`, the
    /// item as the refusal returned it) is first added to the archive, and
    /// the rotation counts it in `ek_gen` on the condition that `ek_gen` is
    /// still what was read: no other rotation came between, so `ek_old` is
    /// still the generation archived. A crash between the two writes leaves
    /// keys in both places (harmless; the next rotation adds them again).
    /// `Some(ek_gen after)` when this call rotated.
    async fn rotate(
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
    async fn archived(
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

    /// One item, strongly consistent.
    async fn read(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(r.item)
    }

    /// Every item of the table (tools and tests; a full `Scan`).
    pub async fn scan_all(&self) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        all_pages(|start| async move {
            let r = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan", e))?;
            Ok((r.items.unwrap_or_default(), r.last_evaluated_key))
        })
        .await
    }

    /// Every item of a partition (a lead's full state is one `Query`).
    pub async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        all_pages(|start| async move {
            let r = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            Ok((r.items.unwrap_or_default(), r.last_evaluated_key))
        })
        .await
    }
}

#[async_trait]
impl Dedup for DynamoStore {
    async fn apply(&self, plan: &Plan, _message_id: &str) -> Result<ApplyOutcome, StoreError> {
        let seen = seen_key(&plan.key);
        let time = plan.event_time.to_string();
        let mut run = PlanRun {
            order: &plan.order,
            time: &time,
            seen: &seen,
            origin_ms: plan.received_ms,
            tally: Tally::default(),
        };
        let marks_fanout = plan.effects.contains(&crate::app::effects::FANOUT);
        let (mut applied, mut trimmed, mut fanout) = (false, false, false);
        let mut refused = Vec::new();
        let mut state = None;
        // Each item on its own: one that absorbed the event before (a
        // redelivery after a crash between two items) is passed over; one
        // DynamoDB refuses (even trimmed) is reported, the others written.
        for (i, u) in plan.items.iter().enumerate() {
            let mark = i == 0 && marks_fanout;
            let done = match self.apply_item(u, i == 0, mark, &mut run).await {
                Err(e) if !e.is_retryable() => {
                    trimmed = true;
                    match self.apply_item(&u.trimmed(), i == 0, mark, &mut run).await {
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
        if applied || plan.items.is_empty() {
            Ok(ApplyOutcome::Applied {
                transactions: run.tally.requests,
                write_units: run.tally.write_units,
                state,
                fanout,
                trimmed,
                refused,
            })
        } else if fanout || !refused.is_empty() {
            Ok(ApplyOutcome::Unchanged {
                state,
                fanout,
                refused,
            })
        } else {
            Ok(ApplyOutcome::Duplicate)
        }
    }

    async fn fanout_done(
        &self,
        pk: &str,
        sk: &str,
        key: &DedupKey,
        received_ms: i64,
    ) -> Result<(), StoreError> {
        let seen = seen_key(key);
        let marks = [fanout_mark(&seen, received_ms), seen]
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .to_vec();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(pk, sk)))
            .update_expression("DELETE #fo :k")
            // Never creates an item.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#fo", FANOUT_PENDING_ATTR)
            .expression_attribute_values(":k", AttributeValue::Bs(marks))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    async fn first_seen(&self, key: &str, at: EventTime) -> Result<EventTime, StoreError> {
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(&format!("FIRST#{}", key_part(key)), "-")))
            .update_expression("SET #t = if_not_exists(#t, :t), #x = if_not_exists(#x, :x)")
            .expression_attribute_names("#t", "first_seen")
            .expression_attribute_names("#x", TTL_ATTR)
            .expression_attribute_values(":t", AttributeValue::S(at.to_string()))
            .expression_attribute_values(":x", AttributeValue::N(expires.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        let first = r.attributes().and_then(|a| a.get("first_seen"));
        Ok(first
            .and_then(|v| v.as_s().ok())
            .and_then(|s| EventTime::parse(s))
            .unwrap_or(at))
    }
}

#[async_trait]
impl EffectLedger for DynamoStore {
    async fn claim(&self, c: Claim<'_>) -> Result<bool, StoreError> {
        let Claim {
            key,
            effect,
            message_id,
            lease_until_ms,
            now_ms,
            create,
        } = c;
        // A claim may create the effect's marker (it expires by TTL).
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        let taken = "#fx = :pending OR (#fx = :running AND #until < :now) \
             OR (#fx = :running AND #until = :lease AND message_id = :mid)";
        let condition = if create {
            format!("attribute_not_exists(#fx) OR {taken}")
        } else {
            taken.to_owned()
        };
        self.effect_update(
            key,
            effect,
            "SET #fx = :running, #until = :lease, message_id = :mid, \
             expires_at = if_not_exists(expires_at, :exp)",
            &condition,
            &[
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":pending", AttributeValue::S(FX_PENDING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
                (":now", AttributeValue::N(now_ms.to_string())),
                (":mid", AttributeValue::S(message_id.to_owned())),
                (":exp", AttributeValue::N(expires.to_string())),
            ],
        )
        .await
    }

    async fn settle(
        &self,
        key: &DedupKey,
        effect: &str,
        lease_until_ms: i64,
        end: Settle,
    ) -> Result<(), StoreError> {
        let state = end.state();
        // Only the holder of this lease settles it; if the lease ran out and
        // someone else took over, it is theirs to settle.
        // Unclaimed (the fan-out of the delivery that applied the event):
        // this write creates the record.
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        self.effect_update(
            key,
            effect,
            "SET #fx = :state, expires_at = if_not_exists(expires_at, :exp)",
            "attribute_not_exists(#fx) OR (#fx = :running AND #until = :lease)",
            &[
                (":state", AttributeValue::S(state.into())),
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
                (":exp", AttributeValue::N(expires.to_string())),
            ],
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl StateReader for DynamoStore {
    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self::key(pk, sk)))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(r.item.as_ref().map(item_to_json))
    }
}

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

type Item = HashMap<String, AttributeValue>;

/// Every page of a `Scan` or `Query`: `page(start)` reads one from `start`
/// and returns its items and where the next begins.
async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>, StoreError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
{
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = page(start).await?;
        out.extend(items);
        match next {
            Some(n) => start = Some(n),
            None => return Ok(out),
        }
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
    /// [`TTL_ATTR`].
    expires_at: i64,
}

/// Creates the state table as template.yaml declares it (pk/sk strings,
/// on-demand) and turns on TTL. For tests and the local stack.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::*;
    let err = |e: String| StoreError::transient(e);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| err(e.to_string()))
    };
    let ks = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| err(e.to_string()))
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(ks("pk", KeyType::Hash)?)
        .key_schema(ks("sk", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| store_error("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTR)
                .build()
                .map_err(|e| err(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| store_error("UpdateTimeToLive", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn item_size_follows_dynamodb_rules() {
        let item: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), AttributeValue::S("LEAD#a@b.c".into())), // 2 + 10
            ("opens".to_owned(), AttributeValue::N("12".into())),      // 5 + 2
            ("score".to_owned(), AttributeValue::N("-1.50".into())),   // 5 + 2
            (
                "flags".to_owned(),
                AttributeValue::Ss(vec!["engaged".into(), "replied".into()]),
            ), // 5 + 14
            (
                "m".to_owned(),
                AttributeValue::M([("k".to_owned(), AttributeValue::Bool(true))].into()),
            ), // 1 + 3 + 1 + 1 + 1
        ]
        .into();
        assert_eq!(item_size(&item), 12 + 7 + 7 + 19 + 7);
    }
}
