//! One item's update, as DynamoDB's store turns it into a conditional
//! `UpdateItem` (`shared/src/adapters/aws/dynamodb/expr.rs`) and resends it
//! when refused (`apply.rs`), decided here from the item as it is: the
//! memory store's part of applying a plan (the loop over the plan's items
//! is the library's, `apply_plan`).

use super::{blob_set, new_item, set_once, Item, Table};
use smartlead::adapters::aws::dynamodb::index::index_write_units;
use smartlead::adapters::aws::dynamodb::{
    archive_key, fanout_mark, item_size, refused_units, to_attr, write_units, ItemDone, PlanRun,
    SEEN_ARCHIVE_GENS, SEEN_ATTR, SEEN_GEN_ATTR, SEEN_MAX, SEEN_OLD_ATTR,
};
use smartlead::app::store::StoreError;
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::domain::plan::{keep_greatest, Capped, ItemUpdate, Register, Val};

/// One refused conditional write DynamoDB's store would send, billed by
/// the item it saw.
fn refused(run: &mut PlanRun<'_>, item: Option<&Item>) {
    run.tally.requests += 1;
    run.tally.write_units += refused_units(item);
}

/// Applies `u` to its item unless the item absorbed the event before
/// (its `ek`, `ek_old` or archive holds the key); `mark` adds the fan-out's
/// pending mark. In the order DynamoDB's store meets the refusals: the key
/// is there; `ek` is full (rotated); the item archived generations (the
/// archive read); then a capped set without room and the registers.
pub(super) fn apply_item(
    table: &mut Table,
    u: &ItemUpdate,
    mark: bool,
    run: &mut PlanRun<'_>,
) -> Result<ItemDone, StoreError> {
    let k = (u.pk.clone(), u.sk.clone());
    let old = table.get(&k).cloned();
    let seen = run.seen;
    let holds = |i: &Item, attr: &str| blobs(i, attr).any(|b| b == seen);
    if let Some(o) = old
        .as_ref()
        .filter(|o| holds(o, SEEN_ATTR) || holds(o, SEEN_OLD_ATTR))
    {
        refused(run, Some(o));
        return Ok(ItemDone::Absorbed(old));
    }
    let mut item = old.unwrap_or_else(|| new_item(&u.pk, &u.sk));
    let gen_before = generation(&item);
    if blobs(&item, SEEN_ATTR).count() >= SEEN_MAX {
        refused(run, Some(&item));
        rotate(table, &mut item, run);
    }
    // The update assumed no archived generation: refused, the archive read.
    if gen_before > 0 {
        refused(run, Some(&item));
        if archived(table, &u.pk, &u.sk, run, generation(&item)) {
            return Ok(ItemDone::Absorbed(Some(item)));
        }
    }
    let new = updated(&item, u, mark, run)?;
    run.tally.requests += 1;
    // The item, and its indexes' entries as DynamoDB bills them.
    run.tally.write_units +=
        write_units(item_size(&item).max(item_size(&new))) + index_write_units(Some(&item), &new);
    table.insert(k, new.clone());
    Ok(ItemDone::Applied(Some(new)))
}

/// `item` after `u` (its refusals by capped sets and registers counted).
fn updated(
    item: &Item,
    u: &ItemUpdate,
    mark: bool,
    run: &mut PlanRun<'_>,
) -> Result<Item, StoreError> {
    let mut new = item.clone();
    for (attr, v) in &u.set_once {
        set_once(&mut new, attr, to_attr(v));
    }
    for (attr, v) in &u.add {
        add(&mut new, attr, to_attr(v))?;
    }
    add(&mut new, SEEN_ATTR, blob_set([run.seen.to_vec()]))?;
    if mark {
        let m = fanout_mark(run.seen, run.origin_ms);
        add(&mut new, super::FANOUT_PENDING_ATTR, blob_set([m]))?;
    }
    // A full set refuses the `ADD` once; then every set is rewritten as read.
    let full: Vec<bool> = u.capped.iter().map(|c| !has_room(item, c)).collect();
    if full.contains(&true) {
        refused(run, Some(item));
    }
    for (c, full) in u.capped.iter().zip(full) {
        capped(&mut new, item, c, full)?;
    }
    let (time, by_order) = (run.time, run.order);
    let order = |r: &Register| if r.by_time { time } else { by_order }.to_owned();
    let newest = u.latest.as_ref().filter(|r| {
        let holds = register_holds(item, r, &order(r), true);
        if !holds {
            refused(run, Some(item));
        }
        holds
    });
    if let Some(r) = newest {
        write_register(&mut new, r, &order(r));
        // Newest and no earliest yet: also the earliest.
        if let Some(early) = &u.earliest {
            set_once(&mut new, early.order_attr, AttributeValue::S(order(early)));
            for (attr, v) in &early.fields {
                set_once(&mut new, attr, to_attr(v));
            }
        }
    } else if let Some(r) = &u.earliest {
        if register_holds(item, r, &order(r), false) {
            write_register(&mut new, r, &order(r));
        } else {
            refused(run, Some(item));
        }
    }
    Ok(new)
}

/// The register's condition: its order is absent, or before (`newest`:
/// at most) or after the event's (compared as strings, as DynamoDB does).
fn register_holds(item: &Item, r: &Register, order: &str, newest: bool) -> bool {
    match item.get(r.order_attr) {
        None => true,
        Some(AttributeValue::S(o)) if newest => o.as_str() <= order,
        Some(AttributeValue::S(o)) => o.as_str() > order,
        Some(_) => false,
    }
}

fn write_register(item: &mut Item, r: &Register, order: &str) {
    item.insert(r.order_attr.to_owned(), AttributeValue::S(order.to_owned()));
    for (attr, v) in &r.fields {
        item.insert((*attr).to_owned(), to_attr(v));
    }
}

/// Whether `c`'s set in `item` has room for its elements (the `ADD`'s condition).
fn has_room(item: &Item, c: &Capped) -> bool {
    match item.get(c.attr) {
        None => true,
        Some(v) => set_val(v).is_some_and(|s| set_len(&s) + set_len(&c.add) <= c.cap),
    }
}

/// `c`'s elements into `new`: added while the set (in `item`) has room,
/// else the set rewritten to its greatest; the others counted.
fn capped(new: &mut Item, item: &Item, c: &Capped, full: bool) -> Result<(), StoreError> {
    let dropped = if full {
        let was = item.get(c.attr).and_then(set_val);
        let (kept, n) = keep_greatest(was.as_ref(), &c.add, c.cap);
        new.insert(c.attr.to_owned(), to_attr(&kept));
        c.extra + n
    } else {
        add(new, c.attr, to_attr(&c.add))?;
        c.extra
    };
    if dropped > 0 {
        add(new, c.dropped, AttributeValue::N(dropped.to_string()))?;
    }
    Ok(())
}

/// A stored set as a plan's value; none for another type.
fn set_val(a: &AttributeValue) -> Option<Val> {
    match a {
        AttributeValue::Ss(s) => Some(Val::Ss(s.clone())),
        AttributeValue::Ns(n) => Some(Val::Ns(n.iter().filter_map(|f| f.parse().ok()).collect())),
        _ => None,
    }
}

fn set_len(v: &Val) -> usize {
    match v {
        Val::Ss(s) => s.len(),
        Val::Ns(n) => n.len(),
        _ => 1,
    }
}

/// DynamoDB's `ADD`: a number summed, a set joined; absent, written. Other
/// types refuse, as DynamoDB's `ValidationException` does.
fn add(item: &mut Item, attr: &str, v: AttributeValue) -> Result<(), StoreError> {
    let Some(now) = item.get_mut(attr) else {
        item.insert(attr.to_owned(), v);
        return Ok(());
    };
    let num = |n: &str| n.parse::<f64>().unwrap_or(0.0);
    match (now, v) {
        (AttributeValue::N(a), AttributeValue::N(b)) => {
            let sum = to_attr(&Val::N(num(a) + num(&b)));
            item.insert(attr.to_owned(), sum);
        }
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => union(a, b, |x, y| x == y),
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => union(a, b, |x, y| num(x) == num(y)),
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => union(a, b, |x, y| x == y),
        _ => {
            return Err(StoreError::permanent(format!(
                "ADD of another type to {attr}"
            )))
        }
    }
    Ok(())
}

fn union<T>(set: &mut Vec<T>, add: Vec<T>, same: impl Fn(&T, &T) -> bool) {
    for x in add {
        if !set.iter().any(|y| same(y, &x)) {
            set.push(x);
        }
    }
}

/// The elements of a binary set attribute (none if absent).
fn blobs<'a>(item: &'a Item, attr: &str) -> impl Iterator<Item = &'a [u8]> {
    let set = item.get(attr).and_then(|v| v.as_bs().ok());
    set.into_iter().flatten().map(|b| b.as_ref())
}

/// The generations an item has archived (`ek_gen`; absent: 0).
fn generation(item: &Item) -> u64 {
    let n = item.get(SEEN_GEN_ATTR).and_then(|v| v.as_n().ok());
    n.and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A new generation of absorbed keys: `ek` becomes `ek_old`, and the
/// `ek_old` it replaces is first added to the archive and counted in `ek_gen`.
fn rotate(table: &mut Table, item: &mut Item, run: &mut PlanRun<'_>) {
    let key = |a: &str| item.get(a).and_then(|v| v.as_s().ok()).cloned();
    let (pk, sk) = (key("pk").unwrap_or_default(), key("sk").unwrap_or_default());
    let gen = generation(item);
    let old: Vec<Vec<u8>> = blobs(item, SEEN_OLD_ATTR).map(<[u8]>::to_vec).collect();
    if !old.is_empty() {
        run.tally.requests += 1;
        let (apk, ask) = archive_key(&pk, &sk, gen);
        let archive = table
            .entry((apk.clone(), ask.clone()))
            .or_insert_with(|| new_item(&apk, &ask));
        // A set of new keys: its type is right, the `ADD` cannot refuse.
        let _ = add(archive, SEEN_ATTR, blob_set(old));
        item.insert(
            SEEN_GEN_ATTR.to_owned(),
            AttributeValue::N((gen + 1).to_string()),
        );
    }
    run.tally.requests += 1;
    if let Some(ek) = item.remove(SEEN_ATTR) {
        item.insert(SEEN_OLD_ATTR.to_owned(), ek);
    }
    table.insert((pk, sk), item.clone());
}

/// Whether the archive of `pk`/`sk` holds the event's key among its `gen`
/// archived generations (newest archive item first, each one read).
fn archived(table: &Table, pk: &str, sk: &str, run: &mut PlanRun<'_>, gen: u64) -> bool {
    if gen == 0 {
        return false;
    }
    for chain in (0..=(gen - 1) / SEEN_ARCHIVE_GENS).rev() {
        let (apk, ask) = archive_key(pk, sk, chain * SEEN_ARCHIVE_GENS);
        run.tally.requests += 1;
        let hit = table
            .get(&(apk, ask))
            .is_some_and(|a| blobs(a, SEEN_ATTR).any(|b| b == run.seen));
        if hit {
            return true;
        }
    }
    false
}
