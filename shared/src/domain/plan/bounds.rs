//! DynamoDB's limits, kept by every plan before it is written: no event is
//! refused on every delivery for what it holds.

use super::{ItemUpdate, Val};

/// Raw events kept in an item are cut here, in bytes (DynamoDB items hold 400 KB).
pub const MAX_RAW_BYTES: usize = 300_000;
/// Longest text field stored from an event (a subject, a description...).
pub const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Largest JSON value stored as a map; a larger one is kept as cut text.
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Each element of a set, and how many elements one event adds.
pub const MAX_SET_ELEMENT_BYTES: usize = 1024;
pub const MAX_SET_ELEMENTS: usize = 50;
/// Key parts (e-mail, campaign, account, type) longer than this are cut and
/// hashed: DynamoDB refuses partition keys over 2 KB and sort keys over 1 KB.
pub const MAX_KEY_PART_BYTES: usize = 256;

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
