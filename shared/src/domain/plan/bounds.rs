//! DynamoDB's limits, kept by every plan before it is written: no event is
//! refused on every delivery for what it holds.

use super::{Capped, ItemUpdate, Val};

/// Raw events kept in an item are cut here, in bytes (DynamoDB items hold 400 KB).
pub const MAX_RAW_BYTES: usize = 300_000;
/// Longest text field stored from an event (a subject, a description...):
/// with every field of a lead's item at it, and its sets full, the item
/// stays under 64 KB (~46 KB; at 4 KB it was ~79 KB).
pub const MAX_FIELD_BYTES: usize = 2 * 1024;
/// Largest JSON value stored as a map; a larger one is kept as cut text.
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Each element of a set, and how many elements one event adds.
pub const MAX_SET_ELEMENT_BYTES: usize = 1024;
pub const MAX_SET_ELEMENTS: usize = 50;
/// Key parts (e-mail, campaign, account, type) longer than this are cut and
/// hashed: DynamoDB refuses partition keys over 2 KB and sort keys over 1 KB.
pub const MAX_KEY_PART_BYTES: usize = 256;
/// Elements an item keeps of each set that grows with its events (the
/// newest; the rest are counted): clicked links, colleagues' replies,
/// steps sent.
pub const MAX_KEPT_LINKS: usize = 10;
pub const MAX_KEPT_REPLIERS: usize = 10;
pub const MAX_KEPT_STEPS: usize = 20;

/// `s` cut to at most `n` bytes, at a character boundary.
pub fn cut_bytes(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A key part as stored: itself, or when over [`MAX_KEY_PART_BYTES`] its
/// first 128 bytes and a hash of the whole (distinct parts stay distinct).
pub fn key_part(s: &str) -> std::borrow::Cow<'_, str> {
    // A short value that ends like a hashed one is hashed too, so a stored
    // part ending in `~<32 hex>` always comes from hashing.
    let looks_hashed = s.len() > 33
        && s.as_bytes()[s.len() - 33] == b'~'
        && s[s.len() - 32..].bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() <= MAX_KEY_PART_BYTES && !looks_hashed {
        return std::borrow::Cow::Borrowed(s);
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(s.as_bytes());
    std::borrow::Cow::Owned(format!("{}~{}", cut_bytes(s, 128), hex::encode(&h[..16])))
}

/// Whether DynamoDB can store `f` as a number (magnitude 1e-130 to 1e126).
pub fn dynamo_number_ok(f: f64) -> bool {
    f == 0.0 || (f.is_finite() && (1e-130..1e126).contains(&f.abs()))
}

/// Keeps every value of a plan inside what DynamoDB accepts, so that no
/// event is refused on every delivery: sets de-duplicated, without empty
/// elements and bounded; texts and JSON values bounded in bytes; numbers
/// DynamoDB cannot hold kept as text.
pub(super) fn bound(items: &mut [ItemUpdate]) {
    for u in items {
        for c in u.capped.iter_mut() {
            bound_capped(c);
        }
        u.capped.retain(|c| match &c.add {
            Val::Ss(s) => !s.is_empty(),
            Val::Ns(n) => !n.is_empty(),
            _ => false,
        });
        for (attr, v) in u.add.iter_mut() {
            bound_val(attr, v, true);
        }
        u.add.retain(|(_, v)| match v {
            Val::Ss(s) => !s.is_empty(),
            Val::Ns(n) => !n.is_empty(),
            Val::N(f) => dynamo_number_ok(*f),
            _ => true,
        });
        let registers = u.latest.iter_mut().chain(u.earliest.iter_mut());
        for (attr, v) in u
            .set_once
            .iter_mut()
            .chain(registers.flat_map(|r| r.fields.iter_mut()))
        {
            bound_val(attr, v, false);
        }
    }
}

/// A capped set's elements as DynamoDB takes them (texts cut, no empty
/// ones, numbers it can hold), the greatest `cap` of them; the others are
/// the event's `extra`.
fn bound_capped(c: &mut Capped) {
    match &mut c.add {
        Val::Ss(set) => {
            for e in set.iter_mut() {
                e.truncate(cut_bytes(e, MAX_SET_ELEMENT_BYTES).len());
            }
            set.retain(|e| !e.is_empty());
        }
        Val::Ns(set) => set.retain(|f| dynamo_number_ok(*f)),
        _ => {}
    }
    let (kept, extra) = keep_greatest(None, &c.add, c.cap);
    c.add = kept;
    c.extra = extra;
}

/// The `cap` greatest distinct elements of the sets `old` and `add` (of one
/// kind: `Val::Ss` or `Val::Ns`; an `old` of another kind counts as none)
/// and how many others there were. Numbers order by value; texts stamped
/// `<epoch seconds> <text>` by their stamp (then text), and after any text
/// without one (kept before the sets were capped: older than every stamp).
pub fn keep_greatest(old: Option<&Val>, add: &Val, cap: usize) -> (Val, usize) {
    fn greatest<T: Clone>(
        mut all: Vec<T>,
        cap: usize,
        cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
    ) -> (Vec<T>, usize) {
        all.sort_by(|a, b| cmp(b, a));
        all.dedup_by(|a, b| cmp(a, b).is_eq());
        let dropped = all.len().saturating_sub(cap);
        all.truncate(cap);
        all.sort_by(&cmp);
        (all, dropped)
    }
    match add {
        Val::Ns(new) => {
            let old = match old {
                Some(Val::Ns(o)) => o.as_slice(),
                _ => &[],
            };
            let (kept, n) = greatest([old, new].concat(), cap, f64::total_cmp);
            (Val::Ns(kept), n)
        }
        Val::Ss(new) => {
            let old = match old {
                Some(Val::Ss(o)) => o.as_slice(),
                _ => &[],
            };
            let stamped = |s: &String| {
                let b = s.as_bytes();
                b.len() > 11 && b[..10].iter().all(u8::is_ascii_digit) && b[10] == b' '
            };
            let (kept, n) = greatest([old, new].concat(), cap, |a, b| {
                (stamped(a), a).cmp(&(stamped(b), b))
            });
            (Val::Ss(kept), n)
        }
        other => (other.clone(), 0),
    }
}

fn bound_val(attr: &str, v: &mut Val, added: bool) {
    match v {
        Val::S(s) => {
            let max = if attr == "raw" {
                MAX_RAW_BYTES
            } else {
                MAX_FIELD_BYTES
            };
            let n = cut_bytes(s, max).len();
            s.truncate(n);
        }
        Val::N(f) if !added && !dynamo_number_ok(*f) => *v = Val::S(f.to_string()),
        Val::N(_) => {}
        Val::Ss(set) => {
            let mut out: Vec<String> = set
                .iter()
                .filter(|e| !e.is_empty())
                .map(|e| cut_bytes(e, MAX_SET_ELEMENT_BYTES).to_owned())
                .collect();
            out.sort();
            out.dedup();
            out.truncate(MAX_SET_ELEMENTS);
            *set = out;
        }
        Val::Ns(set) => {
            set.retain(|f| dynamo_number_ok(*f));
            set.sort_by(f64::total_cmp);
            set.dedup();
            set.truncate(MAX_SET_ELEMENTS);
        }
        Val::Json(j) => {
            let text = j.to_string();
            if text.len() > MAX_JSON_BYTES {
                *v = Val::S(cut_bytes(&text, MAX_JSON_BYTES).to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ss(v: &[&str]) -> Val {
        Val::Ss(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn a_capped_set_keeps_its_newest_and_counts_the_others_once() {
        let old = ss(&["1700000002 b", "legacy link", "1700000004 d"]);
        let (kept, n) = keep_greatest(Some(&old), &ss(&["1700000001 a", "1700000003 c"]), 2);
        assert_eq!(kept, ss(&["1700000003 c", "1700000004 d"]));
        assert_eq!(n, 3, "one new element, an older one and the unstamped one");
        // An element the set holds is not counted again.
        let (kept, n) = keep_greatest(Some(&kept), &ss(&["1700000004 d"]), 2);
        assert_eq!((kept, n), (ss(&["1700000003 c", "1700000004 d"]), 0));
        // Numbers by value; a set of another kind counts as none.
        let (kept, n) = keep_greatest(Some(&old), &Val::Ns(vec![10.0, 2.0, 3.0]), 2);
        assert_eq!((kept, n), (Val::Ns(vec![3.0, 10.0]), 1));
    }

    #[test]
    fn an_event_adds_at_most_a_capped_set_s_room_and_counts_the_rest() {
        let mut items = vec![ItemUpdate::new("p".into(), "s".into()).keep_newest(
            "links",
            "links_dropped",
            2,
            ss(&[
                "1700000001 a",
                "1700000001 c",
                "1700000001 b",
                "1700000001 b",
                "",
            ]),
        )];
        bound(&mut items);
        assert_eq!(
            items[0].capped[0].add,
            ss(&["1700000001 b", "1700000001 c"])
        );
        assert_eq!(
            items[0].capped[0].extra, 1,
            "the empty and the repeated ones are none"
        );
    }
}
