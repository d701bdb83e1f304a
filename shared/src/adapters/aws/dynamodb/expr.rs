//! The conditional `UpdateItem` of one item: its expression, condition,
//! names and values, with generated placeholders.
//!
//! Registers (see [`crate::domain::plan`]) add a condition: "this event is
//! the newest" (or the oldest). The sets that grow with an item's events
//! ([`Capped`]: clicked links, colleagues' replies, steps sent) keep their
//! newest elements, so no stream of events grows an item past a few KB
//! (each write of an item is billed one unit per started KB, refused ones
//! included). The update adds the event's elements (`ADD`) on the condition
//! that the set has room for them: one request, whatever the set holds. A
//! full set refuses; the item the refusal returns shows it, and the update
//! is sent again rewriting the set whole: the greatest of its elements and
//! the event's (texts are stamped with their time, so the greatest are the
//! newest), the others counted (`links_dropped`...), on the condition that
//! the set is still what was read ([`SetRead`]). A writer that lost the
//! race finds the set changed, reads it again from its own refusal and
//! merges again; a retry or a redelivery finds its key in `ek` first. So
//! the set holds the greatest elements of all ever added, whatever their
//! order of arrival, and its counter how many others, each event counted
//! once.

use super::apply::{Attempt, Stage};
use super::attr::to_attr;
use super::seen::fanout_mark;
use super::{FANOUT_PENDING_ATTR, SEEN_ATTR, SEEN_GEN_ATTR, SEEN_MAX, SEEN_OLD_ATTR};
use crate::app::store::StoreError;
use crate::domain::plan::{keep_greatest, Capped, ItemUpdate, Val};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

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

/// One item's conditional update: its expression, condition, names and
/// values. Besides the plan's changes it adds `key` to the absorbed keys,
/// on the condition that neither generation holds it, `ek` is not full and
/// the item has archived `gen` generations (the archive was checked for
/// the key up to that one; see `DynamoStore::archived`).
pub(super) struct ItemRequest {
    pub(super) update: String,
    pub(super) condition: String,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

/// `u`'s request as `at` stands: its register stage, the generations it
/// assumes, its fan-out mark and how it knows its capped sets.
pub(super) fn build_update(
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
pub(super) enum SetRead {
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
pub(super) fn capped_moved(
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
