//! The webhooks of a load run: every fixture of `events/payloads/` made
//! into distinct events (its lead's address, ids and times varied per
//! copy), in the proportions of a Monday reply wave, with SmartLead-style
//! second deliveries of some.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use smartlead::app::effects::{AlertRules, Notifier};
use smartlead::domain::event::{EventType, SmartleadEvent};
use smartlead::domain::plan::{plan, ScoreWeights, Val};
use smartlead::domain::time::EventTime;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Shares of the distinct events: replies (all of them inside the wave),
/// bounces, and SmartLead's second deliveries of the webhooks.
pub const REPLY_SHARE: f64 = 0.10;
pub const BOUNCE_SHARE: f64 = 0.025;
pub const DUPLICATE_SHARE: f64 = 0.02;
/// The wave: every reply within one minute (or half the run, if shorter),
/// starting a quarter into the run.
pub const WAVE: Duration = Duration::from_secs(60);

/// One distinct event.
#[derive(Debug, Clone)]
pub struct Event {
    pub stem: String,
    pub body: String,
    pub event_type: String,
    /// Its dedup key, and the compact key the store keeps of it (`ek`).
    pub key: String,
    pub seen: Vec<u8>,
    pub lead_email: Option<String>,
    pub lead_id: Option<String>,
    /// Which effects it should get.
    pub alert: bool,
    pub hygiene: bool,
    /// The counters its plan adds one to: (pk, sk, attribute).
    pub counts: Vec<(String, String, String)>,
}

/// One POST: an event, when (from the start of the run), whether it is a
/// second delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: usize,
    pub body: String,
    pub at: Duration,
    pub duplicate: bool,
}

pub struct Mix {
    pub events: Vec<Event>,
    /// In the order they are sent.
    pub deliveries: Vec<Delivery>,
}

/// What decides an event's effects: the consumer's alert rules and its
/// list-hygiene notifier.
pub struct Rules<'a> {
    pub alerts: &'a AlertRules,
    pub hygiene: &'a dyn Notifier,
}

/// Weights of the event types besides replies and bounces: sends and opens
/// dominate, unsubscribes and account events are rare.
fn weight(t: &EventType) -> usize {
    match t {
        EventType::EmailSent | EventType::EmailOpen => 60,
        EventType::FirstEmailSent | EventType::EmailLinkClick => 20,
        EventType::LeadCategoryUpdated => 6,
        EventType::ManualStepReached => 4,
        EventType::LeadUnsubscribed => 2,
        _ => 1,
    }
}

fn group(t: &EventType) -> usize {
    match t {
        EventType::EmailReply | EventType::UntrackedReplies => 0,
        EventType::EmailBounce => 1,
        _ => 2,
    }
}

/// `webhooks` POSTs over `run`: replies in the wave, bounces and the rest
/// spread evenly, and [`DUPLICATE_SHARE`] of them second deliveries.
pub fn build(root: &std::path::Path, webhooks: usize, run: Duration, rules: &Rules) -> Result<Mix> {
    let fixtures = test_support::payloads(root).context("reading events/payloads")?;
    let mut groups: [Vec<(String, EventType)>; 3] = Default::default();
    for (stem, body) in &fixtures {
        let ev = SmartleadEvent::from_slice(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("events/payloads/{stem}.json: {e}"))?;
        groups[group(&ev.event_type)].push((stem.clone(), ev.event_type.clone()));
    }
    let dups = (webhooks as f64 * DUPLICATE_SHARE).round() as usize;
    let distinct = webhooks - dups;
    let replies = (distinct as f64 * REPLY_SHARE).round() as usize;
    let bounces = (distinct as f64 * BOUNCE_SHARE).round() as usize;
    let wave = WAVE.min(run / 2);
    let plan = [
        (replies, run / 4, wave),
        (bounces, Duration::ZERO, run),
        (distinct - replies - bounces, Duration::ZERO, run),
    ];
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    let mut seen_keys = HashSet::new();
    for (g, (n, from, span)) in plan.into_iter().enumerate() {
        let stems = wheel(&groups[g]);
        if stems.is_empty() && n > 0 {
            bail!("no fixture in events/payloads for group {g}");
        }
        for j in 0..n {
            let i = events.len();
            let stem = &stems[j % stems.len()];
            let ev = event(stem, &fixtures[stem], i, rules)?;
            if !seen_keys.insert(ev.key.clone()) {
                bail!("events/payloads/{stem}.json: copy {i} has the key of another copy; vary another field");
            }
            let at = from + span.mul_f64((j as f64 + 0.5) / n as f64);
            deliveries.push(Delivery {
                event: i,
                body: ev.body.clone(),
                at,
                duplicate: false,
            });
            events.push(ev);
        }
    }
    add_duplicates(&mut deliveries, &events, dups);
    deliveries.sort_by_key(|d| d.at);
    Ok(Mix { events, deliveries })
}

/// The stems of a group, each as often as its type's weight, interleaved.
fn wheel(group: &[(String, EventType)]) -> Vec<String> {
    let mut by_type: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (stem, t) in group {
        by_type.entry(t.as_str().to_owned()).or_default().push(stem);
    }
    let mut out = Vec::new();
    let most = group.iter().map(|(_, t)| weight(t)).max().unwrap_or(0);
    for round in 0..most {
        for (stem, t) in group {
            let same = &by_type[t.as_str()];
            // A type's weight is shared by its fixtures.
            let share = weight(t).div_ceil(same.len());
            if round < share {
                out.push(stem.clone());
            }
        }
    }
    out
}

/// Every 1/`share`-th event delivered a second time, 1 to 10 s later (an
/// envelope's `meta.attempt` counted up, as SmartLead's retries do).
fn add_duplicates(deliveries: &mut Vec<Delivery>, events: &[Event], dups: usize) {
    if dups == 0 || deliveries.is_empty() {
        return;
    }
    let step = deliveries.len() / dups;
    let picks: Vec<Delivery> = (0..dups)
        .filter_map(|k| deliveries.get(k * step.max(1)).cloned())
        .collect();
    for (k, d) in picks.into_iter().enumerate() {
        let mut body: Value = serde_json::from_str(&events[d.event].body).unwrap_or(Value::Null);
        if let Some(a) = body.pointer_mut("/meta/attempt") {
            *a = Value::from(a.as_u64().unwrap_or(1) + 1);
        }
        deliveries.push(Delivery {
            event: d.event,
            body: body.to_string(),
            at: d.at + Duration::from_secs(1 + (k as u64 % 10)),
            duplicate: true,
        });
    }
}

/// Copy `i` of a fixture, as a distinct event.
fn event(stem: &str, fixture: &str, i: usize, rules: &Rules) -> Result<Event> {
    let original = SmartleadEvent::from_slice(fixture.as_bytes())
        .map_err(|e| anyhow::anyhow!("{stem}: {e}"))?;
    let email = original.normalized().lead_email;
    let mut v: Value = serde_json::from_str(fixture).context(stem.to_owned())?;
    vary(&mut v, email.as_deref(), i);
    let body = v.to_string();
    let ev = SmartleadEvent::from_slice(body.as_bytes())
        .map_err(|e| anyhow::anyhow!("{stem} copy {i}: {e}"))?;
    let n = ev.normalized();
    let key = ev.dedup_key();
    let p = plan(&ev, EventTime::now(), &ScoreWeights::default());
    let counts = p
        .items
        .iter()
        .flat_map(|u| {
            u.add.iter().filter_map(|(attr, val)| match val {
                Val::N(x) if *x == 1.0 => Some((u.pk.clone(), u.sk.clone(), (*attr).to_owned())),
                _ => None,
            })
        })
        .collect();
    Ok(Event {
        stem: stem.to_owned(),
        event_type: ev.event_type.as_str().to_owned(),
        seen: smartlead::adapters::aws::dynamodb::seen_key(&key),
        key: key.to_string(),
        lead_email: n.lead_email.clone(),
        lead_id: n.lead_id.as_ref().map(|i| i.as_str().to_owned()),
        alert: rules.alerts.is_hot(&ev),
        hygiene: rules.hygiene.applies(&ev, rules.alerts),
        counts,
        body,
    })
}

/// Field names (lower case, without `_` and `-`) of ids made distinct per copy.
const IDS: &[&str] = &[
    "id",
    "statsid",
    "messageid",
    "leadid",
    "slemailleadid",
    "slemailleadmapid",
    "statsthreadid",
    "accountid",
    "emailaccountid",
];

/// Makes copy `i` distinct: the lead's address, ids and times.
fn vary(v: &mut Value, email: Option<&str>, i: usize) {
    match v {
        Value::Object(m) => {
            for (name, x) in m.iter_mut() {
                let n: String = name
                    .chars()
                    .filter(|c| !matches!(c, '_' | '-'))
                    .collect::<String>()
                    .to_ascii_lowercase();
                if IDS.contains(&n.as_str()) && vary_id(x, i) {
                    continue;
                }
                if (n.contains("time") || n.ends_with("at") || n.contains("date"))
                    && shift_time(x, i)
                {
                    continue;
                }
                vary(x, email, i);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| vary(x, email, i)),
        Value::String(s) => {
            if let Some(e) = email.filter(|e| !e.is_empty()) {
                if s.to_ascii_lowercase().contains(&e.to_ascii_lowercase()) {
                    *s = s.replace(e, &lead_address(i));
                    if s.eq_ignore_ascii_case(e) {
                        *s = lead_address(i);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The address of copy `i`'s lead.
pub fn lead_address(i: usize) -> String {
    format!("lead{i}@load.example")
}

fn vary_id(x: &mut Value, i: usize) -> bool {
    match x {
        Value::Number(_) => *x = Value::from(900_000_000u64 + i as u64),
        Value::String(s) if !s.is_empty() => *s = format!("{s}-{i}"),
        _ => return false,
    }
    true
}

/// A time `i` seconds later (when the value is one).
fn shift_time(x: &mut Value, i: usize) -> bool {
    let Some(t) = x.as_str().and_then(EventTime::parse) else {
        return false;
    };
    match EventTime::from_millis(t.millis() + i as i64 * 1000) {
        Some(t) => *x = Value::String(t.to_string()),
        None => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> (AlertRules, smartlead::adapters::http::hygiene::Hygiene) {
        let api = smartlead::adapters::http::smartlead::Api::new("http://127.0.0.1:9", "k");
        let hygiene = smartlead::adapters::http::hygiene::Hygiene {
            api,
            mode: smartlead::app::effects::HygieneMode::Block,
            soft_bounces: false,
        };
        (AlertRules::default(), hygiene)
    }

    #[test]
    fn every_copy_is_a_distinct_event_in_the_waves_proportions() {
        let (alerts, hygiene) = rules();
        let r = Rules {
            alerts: &alerts,
            hygiene: &hygiene,
        };
        let run = Duration::from_secs(300);
        let mix = build(&crate::pipeline::workspace_root(), 2000, run, &r).unwrap();
        assert_eq!(mix.deliveries.len(), 2000);
        assert_eq!(mix.events.len(), 1960);
        let keys: HashSet<&str> = mix.events.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys.len(), 1960, "distinct keys");
        let replies: Vec<&Delivery> = mix
            .deliveries
            .iter()
            .filter(|d| !d.duplicate)
            .filter(|d| {
                matches!(
                    mix.events[d.event].event_type.as_str(),
                    "EMAIL_REPLY" | "UNTRACKED_REPLIES"
                )
            })
            .collect();
        assert_eq!(replies.len(), 196);
        assert!(replies
            .iter()
            .all(|d| d.at >= run / 4 && d.at < run / 4 + WAVE));
        let bounces = mix
            .events
            .iter()
            .filter(|e| e.event_type == "EMAIL_BOUNCE")
            .count();
        assert_eq!(bounces, 49);
        // Every fixture is used, and the effects are decided per event.
        let stems: HashSet<&str> = mix.events.iter().map(|e| e.stem.as_str()).collect();
        assert_eq!(
            stems.len(),
            test_support::payloads(&crate::pipeline::workspace_root())
                .unwrap()
                .len()
        );
        assert!(mix.events.iter().any(|e| e.alert) && mix.events.iter().any(|e| e.hygiene));
        let emails: HashSet<&str> = mix
            .events
            .iter()
            .filter_map(|e| e.lead_email.as_deref())
            .collect();
        let with_email = mix.events.iter().filter(|e| e.lead_email.is_some()).count();
        assert_eq!(emails.len(), with_email, "one event per lead");
    }
}
