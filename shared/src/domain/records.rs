//! Where the records kept whole live: rejected events, untracked replies,
//! events of unknown types and lead events that name no lead.
//!
//! Each record's sort key is `<time>#<key>` (the event's time, or when the
//! store first saw its key: the same for every delivery, see
//! [`crate::app::store::Dedup::first_seen`]). Its partition is the kind,
//! that time's day and a shard from a hash of the sort key, e.g.
//! `REJECTED#2026-12-05#07`: a function of the sort key alone, so every
//! delivery of one event names one item. A burst of raw bodies (up to
//! 300 KB, ~300 write units each) spreads over [`RECORD_SHARDS`]
//! partitions a day instead of one partition's 1,000 write units a second
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>).
//! Readers query a day's shards and merge them by sort key
//! ([`crate::adapters::aws::dynamodb::DynamoStore::records`]).

use crate::domain::time::EventTime;

/// Partitions each day's records of one kind are spread over.
pub const RECORD_SHARDS: u8 = 16;

/// What a record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An event refused for good, with its raw body.
    Rejected,
    /// An UNTRACKED_REPLIES reply, for catch-all inbox review.
    Untracked,
    /// An event of a type this code does not know (`event_type` says which).
    Unknown,
    /// A lead event that names no lead (`event_type` says which).
    Unattributed,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Rejected,
        RecordKind::Untracked,
        RecordKind::Unknown,
        RecordKind::Unattributed,
    ];

    /// Its partition keys' first part.
    pub fn prefix(self) -> &'static str {
        match self {
            RecordKind::Rejected => "REJECTED",
            RecordKind::Untracked => "UNTRACKED",
            RecordKind::Unknown => "UNKNOWN",
            RecordKind::Unattributed => "UNATTRIBUTED",
        }
    }

    /// The kind a word names (`rejected`, `untracked`, `unknown`,
    /// `unattributed`, any case).
    pub fn parse(s: &str) -> Option<RecordKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.prefix().eq_ignore_ascii_case(s.trim()))
    }

    /// The partition of the record whose sort key is `sk`.
    pub fn pk(self, sk: &str) -> String {
        use sha2::Digest;
        let shard = sha2::Sha256::digest(sk.as_bytes())[0] % RECORD_SHARDS;
        format!("{}#{}#{shard:02}", self.prefix(), day_of(sk))
    }

    /// The partitions of the records whose time is on `day` (`YYYY-MM-DD`).
    pub fn partitions(self, day: &str) -> Vec<String> {
        (0..RECORD_SHARDS)
            .map(|s| format!("{}#{day}#{s:02}", self.prefix()))
            .collect()
    }
}

/// The day of a sort key's time (`YYYY-MM-DD`), `-` if it holds none.
fn day_of(sk: &str) -> &str {
    sk.get(..10)
        .filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
        .unwrap_or("-")
}

/// The days from `from` to `to`, both included, oldest first (UTC).
pub fn days(from: EventTime, to: EventTime) -> Vec<String> {
    const DAY_MS: i64 = 86_400_000;
    let mut out = Vec::new();
    let mut ms = from.millis() - from.millis().rem_euclid(DAY_MS);
    while ms <= to.millis() {
        if let Some(t) = EventTime::from_millis(ms) {
            out.push(t.to_string()[..10].to_owned());
        }
        ms += DAY_MS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sort_key_names_one_partition_and_a_day_s_keys_spread_over_its_shards() {
        let sk = |i: u32| format!("2026-12-05T10:00:{:02}.000Z#UNKNOWN:body:{i:032x}", i % 60);
        let k = RecordKind::Rejected;
        assert_eq!(k.pk(&sk(1)), k.pk(&sk(1)));
        assert!(k.pk(&sk(1)).starts_with("REJECTED#2026-12-05#"));
        let used: std::collections::BTreeSet<String> = (0..200).map(|i| k.pk(&sk(i))).collect();
        assert_eq!(used.len(), usize::from(RECORD_SHARDS), "{used:?}");
        let all = k.partitions("2026-12-05");
        assert!(used.iter().all(|p| all.contains(p)));
        assert_eq!(
            RecordKind::Unknown.pk("no time"),
            RecordKind::Unknown.pk("no time")
        );
        assert!(RecordKind::Unknown.pk("no time").starts_with("UNKNOWN#-#"));
        assert_eq!(
            RecordKind::parse(" Unattributed"),
            Some(RecordKind::Unattributed)
        );
    }

    #[test]
    fn days_run_from_the_first_to_the_last_included() {
        let t = |s: &str| EventTime::parse(s).expect("time");
        assert_eq!(
            days(t("2026-12-03T23:59:00Z"), t("2026-12-05T00:00:00Z")),
            ["2026-12-03", "2026-12-04", "2026-12-05"]
        );
        assert_eq!(
            days(t("2026-12-05T10:00:00Z"), t("2026-12-05T11:00:00Z")),
            ["2026-12-05"]
        );
    }
}
