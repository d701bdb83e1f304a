//! Which facts are gaps, what the stored ones teach about forms, and the
//! counts without times.

use super::facts::{Fact, Form, Kind};
use super::statistics::StepStat;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What to do about a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Send this synthesized webhook (its key is the real webhook's).
    Backfill { key: String, body: Value },
    /// Only reported: nothing exact to send.
    Report { reason: String },
    /// Not checked: webhooks of its type are keyed by something SmartLead
    /// gave for other events but not for this one (a message id its history
    /// lacks), so whether it arrived cannot be told. Listed, not counted as
    /// a gap.
    Unverified { reason: String },
}

/// One gap between SmartLead's statistics and the stored state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub lead: String,
    pub campaign: String,
    pub event_type: &'static str,
    /// What is missing, for people.
    pub missing: String,
    /// The event's time (or the earliest it can be), when known.
    pub since: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// A form is trusted for backfills of an event type in a campaign only
/// when it matched at least this many stored facts ...
pub const MIN_MATCHES: usize = 3;
/// ... and at least this share (in percent) of the facts of that type the
/// campaign is known to have stored (in any form, or in none of ours).
pub const MIN_SHARE_PERCENT: usize = 90;

/// What the stored facts of one event type in one campaign say about the
/// form its webhooks come in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Stored facts matched, per form.
    pub matched: BTreeMap<Form, usize>,
    /// Facts known to be stored: found in some form, or counted by the
    /// lead's item while matching none of the forms built (stored under a
    /// key the statistics cannot rebuild, e.g. times with milliseconds).
    pub stored: usize,
}

impl Tally {
    /// The one form well established: most matches, at least
    /// [`MIN_MATCHES`], and at least [`MIN_SHARE_PERCENT`] of the stored facts.
    pub fn established(&self) -> Option<Form> {
        let (form, n) = self.matched.iter().max_by_key(|(_, n)| **n)?;
        (*n >= MIN_MATCHES && n * 100 >= self.stored * MIN_SHARE_PERCENT).then_some(*form)
    }
}

/// What the stored facts taught, per campaign and event type.
pub type Evidence = HashMap<(String, Kind), Tally>;

fn found(f: &Fact, seen: &HashSet<String>) -> bool {
    f.candidates
        .iter()
        .chain(&f.by_id)
        .any(|c| seen.contains(&c.key))
}

/// The lead item's counter of an event type.
fn counter(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Sent => Some("sent"),
        Kind::Open => Some("opens"),
        Kind::Reply => Some("replies"),
        Kind::Bounce => Some("bounces"),
        Kind::Click | Kind::Unsubscribe => None,
    }
}

/// Tallies the forms of one lead's checked facts (`seen` holds the keys the
/// store absorbed; `rows` are all of the lead's statistics in the campaign,
/// `stored` its item). A fact not found counts as stored in no known form
/// when the item's counter exceeds what the matched facts and every event
/// of that type outside the checked ones could explain.
pub fn learn(
    rows: &[StepStat],
    facts: &[Fact],
    seen: &HashSet<String>,
    stored: &Value,
    evidence: &mut Evidence,
) {
    for kind in [Kind::Sent, Kind::Open, Kind::Reply, Kind::Bounce] {
        let of: Vec<&Fact> = facts.iter().filter(|f| f.kind == kind).collect();
        let Some(first) = of.first() else { continue };
        let tally = evidence.entry((first.campaign.clone(), kind)).or_default();
        let mut matched = 0;
        for f in of.iter().filter(|f| found(f, seen)) {
            matched += 1;
            tally.stored += 1;
            let forms: BTreeSet<Form> = f
                .candidates
                .iter()
                .chain(&f.by_id)
                .filter(|c| seen.contains(&c.key))
                .map(|c| c.form)
                .collect();
            for form in forms {
                *tally.matched.entry(form).or_default() += 1;
            }
        }
        let Some(attr) = counter(kind) else { continue };
        let count = stored.get(attr).and_then(Value::as_f64).unwrap_or(0.0) as usize;
        let lifetime: u64 = rows
            .iter()
            .map(|r| match kind {
                Kind::Sent => r.sent_time.is_some() as u64,
                Kind::Open => r.open_count,
                Kind::Reply => r.reply_count,
                _ => r.is_bounced as u64,
            })
            .sum();
        let outside = (lifetime as usize).saturating_sub(of.len());
        // Facts whose message-id form could not be built say nothing.
        let unmatched = of
            .iter()
            .filter(|f| !found(f, seen) && !f.history_unavailable)
            .count();
        tally.stored += unmatched.min(count.saturating_sub(matched + outside));
    }
}

fn describe(f: &Fact) -> String {
    let step = f
        .sequence_number
        .map(|s| format!(" of step {s}"))
        .unwrap_or_default();
    match f.kind {
        Kind::Sent => format!("send{step}"),
        Kind::Open => format!("open{step}"),
        Kind::Click => format!("click{step}"),
        Kind::Reply => format!("reply{step}"),
        Kind::Bounce => format!("bounce{step}"),
        Kind::Unsubscribe => "unsubscribe".into(),
    }
}

/// The gaps among `facts`: facts absorbed in no form, each to backfill in
/// the one form well established for its type in its campaign (see
/// [`Tally::established`]), or to report. Unsubscribes are only reported.
pub fn gaps(facts: &[Fact], seen: &HashSet<String>, evidence: &Evidence) -> Vec<Gap> {
    let mut out = Vec::new();
    for f in facts {
        if found(f, seen) {
            continue;
        }
        let t = f.kind.event_type();
        let tally = evidence.get(&(f.campaign.clone(), f.kind));
        let action = match tally.and_then(Tally::established) {
            _ if f.kind == Kind::Unsubscribe => Action::Report {
                reason: "unsubscribes are reported only: webhooks that carry a time are keyed by it, which the statistics lack".into(),
            },
            _ if f.rotated => Action::Report {
                reason: "the lead's campaign item has rotated its absorbed keys: whether it arrived cannot be told".into(),
            },
            None => Action::Report {
                reason: match tally.and_then(|t| t.matched.iter().max_by_key(|(_, n)| **n).map(|(f, n)| (f, n, t.stored))) {
                    Some((form, n, stored)) => format!(
                        "no form of {t} webhooks is well established in this campaign: {form:?} matched {n} of {stored} stored (needs {MIN_MATCHES} and {MIN_SHARE_PERCENT}%)"
                    ),
                    None => format!(
                        "no stored {t} webhook of this campaign matched a form: which form SmartLead sends it in is unknown"
                    ),
                },
            },
            Some(form) => match f.candidates.iter().find(|c| c.form == form) {
                Some(_) if f.history_unavailable && form != Form::Msg && matches!(f.kind, Kind::Sent | Kind::Reply) => Action::Report {
                    reason: "history unavailable: the message-id form, which the key rules rank first, could not be built".into(),
                },
                Some(c) => Action::Backfill {
                    key: c.key.clone(),
                    body: c.body.clone(),
                },
                None => Action::Unverified {
                    reason: format!(
                        "{t} webhooks are keyed by {form:?}, which SmartLead did not give for this one"
                    ),
                },
            },
        };
        out.push(Gap {
            lead: f.lead.clone(),
            campaign: f.campaign.clone(),
            event_type: t,
            missing: describe(f),
            since: f.not_before.map(|t| t.to_string()),
            action,
        });
    }
    out
}

/// Counts SmartLead gives without times, against the stored counts after
/// the backfills: opens past each step's timed one, and clicks.
pub fn count_gaps(
    campaign: &str,
    rows: &[StepStat],
    stored: &Value,
    backfilled_opens: u64,
) -> Vec<Gap> {
    let Some(lead) = rows.first().map(|r| r.lead_email.clone()) else {
        return Vec::new();
    };
    let n = |attr: &str| stored.get(attr).and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let since = rows
        .iter()
        .filter_map(|r| r.sent_time)
        .min()
        .map(|t| t.to_string());
    let mut out = Vec::new();
    for (kind, attr, total, extra_reason) in [
        (
            Kind::Open,
            "opens",
            rows.iter().map(|r| r.open_count).sum::<u64>(),
            "SmartLead gives one open time a step; the other opens have no time to key them by",
        ),
        (
            Kind::Click,
            "clicks",
            rows.iter().map(|r| r.click_count).sum::<u64>(),
            "click keys include the clicked links, which the statistics lack",
        ),
    ] {
        let have = n(attr)
            + if kind == Kind::Open {
                backfilled_opens
            } else {
                0
            };
        if total > have {
            out.push(Gap {
                lead: lead.clone(),
                campaign: campaign.to_owned(),
                event_type: kind.event_type(),
                missing: format!("{} of {total} {attr} (stored {})", total - have, n(attr)),
                since: since.clone(),
                action: Action::Report {
                    reason: extra_reason.into(),
                },
            });
        }
    }
    out
}
