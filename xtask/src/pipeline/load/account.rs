//! The account of a load run, from what arrived: the table (a scan), the
//! throttling proxy's record of writes, the Slack and SmartLead stand-ins'
//! records and the tap queues of the alert topic and the bus. Nothing here
//! reads the pipeline's own metrics.

use super::mix::{Event, Mix};
use super::report::{Effect, Lags, Report};
use super::Harness;
use anyhow::Result;
use base64::Engine;
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use test_support::standins::limits::{most_in_any, Call, Write};

type Item = HashMap<String, AttributeValue>;

/// Which event each of `texts` names, by the 32 hex digits of its dedup
/// key; a text naming an event twice counts once.
pub fn named(events: &[Event], texts: &[(Instant, String)]) -> Vec<(Instant, BTreeSet<usize>)> {
    let by_hex: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.key.rsplit(':').next()?, i)))
        .collect();
    texts
        .iter()
        .map(|(at, t)| {
            let found = t
                .split(|c: char| !c.is_ascii_hexdigit())
                .filter(|w| w.len() == 32)
                .filter_map(|w| by_hex.get(w).copied())
                .collect();
            (*at, found)
        })
        .collect()
}

/// Deliveries per event: how many, and the first one's time.
pub fn per_event(n: usize, named: &[(Instant, BTreeSet<usize>)]) -> Vec<(usize, Option<Instant>)> {
    let mut out = vec![(0, None); n];
    for (at, events) in named {
        for &e in events {
            out[e].0 += 1;
            out[e].1 = Some(out[e].1.map_or(*at, |t: Instant| t.min(*at)));
        }
    }
    out
}

/// An effect's deliveries against the events that should get it.
pub fn tally(
    expected: impl Fn(&Event) -> bool,
    events: &[Event],
    got: &[(usize, Option<Instant>)],
) -> Effect {
    let mut e = Effect::default();
    for (ev, (n, _)) in events.iter().zip(got) {
        match (expected(ev), *n) {
            (true, 0) => e.missing += 1,
            (true, 1) => e.once += 1,
            (true, n) => e.doubled += n - 1,
            (false, 0) => {}
            (false, n) => e.unexpected += n,
        }
        e.expected += usize::from(expected(ev));
    }
    e
}

/// Counter increments stored beyond (doubled) and short of (missing) one
/// per event, item by item, against what the events' plans add.
pub fn counters(items: &[Item], events: &[Event]) -> (usize, usize) {
    let mut expected: HashMap<(&str, &str), HashMap<&str, f64>> = HashMap::new();
    for e in events {
        for (pk, sk, attr) in &e.counts {
            *expected
                .entry((pk, sk))
                .or_default()
                .entry(attr)
                .or_default() += 1.0;
        }
    }
    let text = |i: &Item, k: &str| {
        i.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let stored: HashMap<(String, String), &Item> = items
        .iter()
        .map(|i| ((text(i, "pk"), text(i, "sk")), i))
        .collect();
    let (mut doubled, mut missing) = (0.0, 0.0);
    for ((pk, sk), attrs) in &expected {
        let item = stored.get(&((*pk).to_owned(), (*sk).to_owned()));
        for (attr, want) in attrs {
            let got = item
                .and_then(|i| i.get(*attr))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0);
            doubled += (got - want).max(0.0);
            missing += (want - got).max(0.0);
        }
    }
    (doubled as usize, missing as usize)
}

/// Every binary value in the table (`ek`, `ek_old`, archived generations).
fn binaries(items: &[Item]) -> HashSet<Vec<u8>> {
    fn walk(v: &AttributeValue, out: &mut HashSet<Vec<u8>>) {
        match v {
            AttributeValue::B(b) => {
                out.insert(b.as_ref().to_vec());
            }
            AttributeValue::Bs(bs) => out.extend(bs.iter().map(|b| b.as_ref().to_vec())),
            AttributeValue::L(l) => l.iter().for_each(|x| walk(x, out)),
            AttributeValue::M(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    items
        .iter()
        .flat_map(|i| i.values())
        .for_each(|v| walk(v, &mut out));
    out
}

/// When each event's first item was stored: the first successful write
/// carrying its compact key, as the proxy saw it.
fn stored_at(mix: &Mix, writes: &[Write]) -> Vec<Option<Instant>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut first: HashMap<&str, Instant> = HashMap::new();
    for w in writes.iter().filter(|w| w.status == 200) {
        for b in &w.binaries {
            first.entry(b.as_str()).or_insert(w.at);
        }
    }
    mix.events
        .iter()
        .map(|e| first.get(b64.encode(&e.seen).as_str()).copied())
        .collect()
}

/// The first time each event was accepted (200) by the front.
fn accepted_at(h: &Harness) -> Vec<Option<Instant>> {
    let mut out = vec![None; h.mix.events.len()];
    for p in h.posted.iter().filter(|p| p.accepted()) {
        let slot: &mut Option<Instant> = &mut out[p.event];
        *slot = Some(slot.map_or(p.answered, |t| t.min(p.answered)));
    }
    out
}

/// The replies' wave as it arrived: (replies accepted, seconds from the
/// first to the last).
fn wave(events: &[Event], accepted: &[Option<Instant>]) -> (usize, f64) {
    let times: Vec<Instant> = events
        .iter()
        .zip(accepted)
        .filter(|(e, _)| matches!(e.event_type.as_str(), "EMAIL_REPLY" | "UNTRACKED_REPLIES"))
        .filter_map(|(_, a)| *a)
        .collect();
    match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => (times.len(), b.duration_since(*a).as_secs_f64()),
        _ => (0, 0.0),
    }
}

/// Lags from `from` to `to`, per event that has both.
fn lags(from: &[Option<Instant>], to: &[Option<Instant>]) -> Lags {
    let ms: Vec<f64> = from
        .iter()
        .zip(to)
        .filter_map(|(a, b)| Some(b.as_ref()?.saturating_duration_since(*a.as_ref()?)))
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    Lags::of(ms)
}

/// The hygiene calls SmartLead accepted, as events: a block names the
/// address, an unsubscribe the lead id (SmartLead's, or the stand-in's).
fn hygiene_calls(h: &Harness) -> Vec<(Instant, BTreeSet<usize>)> {
    let events = &h.mix.events;
    let by_email: HashMap<String, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.lead_email.as_ref()?.to_ascii_lowercase(), i)))
        .collect();
    let by_id: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.lead_id.as_deref()?, i)))
        .collect();
    let of = |c: &Call| -> BTreeSet<usize> {
        if c.path.ends_with("/add-domain-block-list") {
            let v: serde_json::Value = serde_json::from_str(&c.body).unwrap_or_default();
            let list = v["domain_block_list"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            return list
                .iter()
                .filter_map(|e| by_email.get(&e.as_str()?.to_ascii_lowercase()).copied())
                .collect();
        }
        let Some(id) = c
            .path
            .strip_suffix("/unsubscribe")
            .and_then(|p| p.rsplit('/').next())
        else {
            return BTreeSet::new();
        };
        let by_lookup = h
            .smartlead
            .lead_email(id)
            .and_then(|e| by_email.get(&e).copied());
        by_id.get(id).copied().or(by_lookup).into_iter().collect()
    };
    h.smartlead
        .accepted()
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| (c.at, of(c)))
        .collect()
}

/// The most write units one partition key took in any second.
fn hottest(writes: &[Write]) -> (String, f64) {
    let mut by_pk: HashMap<&str, Vec<(Instant, f64)>> = HashMap::new();
    for w in writes.iter().filter(|w| !w.throttled) {
        by_pk.entry(&w.pk).or_default().push((w.at, w.units));
    }
    let mut best = (String::new(), 0.0);
    for (pk, mut ws) in by_pk {
        ws.sort_by_key(|w| w.0);
        let (mut first, mut sum) = (0, 0.0);
        for last in 0..ws.len() {
            sum += ws[last].1;
            while ws[last].0.duration_since(ws[first].0) >= Duration::from_secs(1) {
                sum -= ws[first].1;
                first += 1;
            }
            if sum > best.1 {
                best = (pk.to_owned(), sum);
            }
        }
    }
    best
}

/// The account of the run.
pub async fn account(h: &Harness) -> Result<Report> {
    let store = smartlead::adapters::aws::dynamodb::DynamoStore::new(h.ddb.clone(), &h.stack.table);
    let items = store.scan_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let events = &h.mix.events;
    let writes = h.dynamodb.writes();
    let accepted = accepted_at(h);
    let found = binaries(&items);
    let lost = events.iter().filter(|e| !found.contains(&e.seen)).count();
    let (doubled, missing) = counters(&items, events);
    let slack_calls = h.slack.calls();
    let slack_texts: Vec<(Instant, String)> = slack_calls
        .iter()
        .filter(|c| c.accepted())
        .map(|c| (c.at, c.body.clone()))
        .collect();
    let slack = per_event(events.len(), &named(events, &slack_texts));
    let alert_times: Vec<Option<Instant>> = slack.iter().map(|s| s.1).collect();
    let (sns_texts, bus_texts) = h.taps().await?;
    let sns = per_event(events.len(), &named(events, &sns_texts));
    let bus = per_event(events.len(), &named(events, &bus_texts));
    let hygiene = per_event(events.len(), &hygiene_calls(h));
    let smartlead_calls = h.smartlead.calls();
    let times = |calls: &[Call]| calls.iter().map(|c| c.at).collect::<Vec<_>>();
    let accepted_times = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| c.accepted())
            .map(|c| c.at)
            .collect::<Vec<_>>()
    };
    let dlq = super::drive::depth_of(&h.webhooks_dlq).await?;
    let effects_dlq = super::drive::depth_of(&h.side.effects_dlq).await?;
    Ok(Report {
        webhooks: h.posted.len(),
        accepted: h.posted.iter().filter(|p| p.accepted()).count(),
        not_accepted: h.posted.iter().filter(|p| !p.accepted()).fold(
            Default::default(),
            |mut m, p| {
                *m.entry(p.status).or_default() += 1;
                m
            },
        ),
        accepted_per_s: super::report::rate(&h.posted),
        events: events.len(),
        duplicates_posted: h.posted.iter().filter(|p| p.duplicate).count(),
        reply_wave: wave(events, &accepted),
        state_lag: lags(&accepted, &stored_at(&h.mix, &writes)),
        lost,
        doubled,
        missing_increments: missing,
        rejected: items.iter().filter(|i| pk_starts(i, "REJECTED")).count(),
        alert_lag: lags(&accepted, &alert_times),
        slack_calls: slack_calls.len(),
        slack_refused: slack_calls.iter().filter(|c| c.status == 429).count(),
        slack_most_per_second: most_in_any(&times(&slack_calls), Duration::from_secs(1)),
        slack_accepted_most_per_second: most_in_any(
            &accepted_times(&slack_calls),
            Duration::from_secs(1),
        ),
        smartlead_calls: smartlead_calls.len(),
        smartlead_refused: smartlead_calls.iter().filter(|c| c.status == 429).count(),
        smartlead_most_per_minute: most_in_any(&times(&smartlead_calls), Duration::from_secs(60)),
        smartlead_most_per_second: most_in_any(&times(&smartlead_calls), Duration::from_secs(1)),
        slack: tally(|e| e.alert, events, &slack),
        sns: tally(|e| e.alert, events, &sns),
        fanout: tally(|_| true, events, &bus),
        hygiene: tally(|e| e.hygiene, events, &hygiene),
        dlq,
        effects_dlq,
        ddb_writes: writes.len(),
        ddb_throttled: writes.iter().filter(|w| w.throttled).count(),
        hottest_partition: hottest(&writes),
        polls: h.fleet.counts(),
        drained: h.drained.clone(),
    })
}

fn pk_starts(i: &Item, prefix: &str) -> bool {
    i.get("pk")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|p| p.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(key: &str, alert: bool) -> Event {
        Event {
            stem: "s".into(),
            body: String::new(),
            event_type: "EMAIL_REPLY".into(),
            key: key.into(),
            seen: Vec::new(),
            lead_email: None,
            lead_id: None,
            alert,
            hygiene: false,
            counts: vec![("LEAD#a".into(), "C".into(), "replies".into())],
        }
    }

    #[test]
    fn deliveries_are_told_apart_into_once_doubled_missing_and_unexpected() {
        let a = format!("EMAIL_REPLY:msg:{}", "a".repeat(32));
        let b = format!("EMAIL_REPLY:msg:{}", "b".repeat(32));
        let c = format!("EMAIL_REPLY:msg:{}", "c".repeat(32));
        let events = vec![ev(&a, true), ev(&b, true), ev(&c, false)];
        let t = Instant::now();
        // a once, b twice (once in a message of two), c (not expected) once.
        let texts = vec![
            (t, format!("alert `{a}` and `{b}` ({b})")),
            (t, b.clone()),
            (t, format!("x {c}")),
        ];
        let got = per_event(3, &named(&events, &texts));
        let e = tally(|e| e.alert, &events, &got);
        assert_eq!(
            (e.expected, e.once, e.doubled, e.missing, e.unexpected),
            (2, 1, 1, 0, 1)
        );
        let got = per_event(3, &named(&events, &texts[2..]));
        let e = tally(|e| e.alert, &events, &got);
        assert_eq!((e.once, e.missing, e.unexpected), (0, 2, 1));
    }

    #[test]
    fn counters_past_one_per_event_are_doubles_and_short_ones_missing() {
        let events = vec![ev("k1", false), ev("k2", false)];
        let item = |n: &str| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S("LEAD#a".into())),
                ("sk".to_owned(), AttributeValue::S("C".into())),
                ("replies".to_owned(), AttributeValue::N(n.into())),
            ])
        };
        assert_eq!(counters(&[item("2")], &events), (0, 0));
        assert_eq!(counters(&[item("3")], &events), (1, 0));
        assert_eq!(counters(&[item("1")], &events), (0, 1));
        assert_eq!(counters(&[], &events), (0, 2));
    }
}
