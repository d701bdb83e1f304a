//! The figures of a load run, beside their targets.

use super::drive::{Drained, Posted};
use serde::Serialize;

/// Latencies in ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lags {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lags {
    pub fn of(mut ms: Vec<f64>) -> Lags {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            ms.get(((ms.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0)
        };
        Lags {
            count: ms.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// One effect's deliveries (Slack, SNS, fan-out, hygiene) against the
/// events that should get it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Effect {
    pub expected: usize,
    /// Expected and delivered exactly once.
    pub once: usize,
    /// Deliveries past the first.
    pub doubled: usize,
    pub missing: usize,
    /// Deliveries for events that should not get it.
    pub unexpected: usize,
}

impl Effect {
    pub fn exact(&self) -> bool {
        self.once == self.expected && self.doubled == 0 && self.unexpected == 0
    }
}

/// What the pollers saw on one queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Polls {
    pub invokes: usize,
    pub received: usize,
    /// Records reported failed (redelivered).
    pub failed: usize,
    /// Invokes that failed as a whole (timed out, crashed).
    pub invokes_failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub webhooks: usize,
    pub accepted: usize,
    /// The last answer of each webhook not accepted, by status (0: none
    /// within API Gateway's 30 s), after SmartLead's tries.
    pub not_accepted: std::collections::BTreeMap<u16, usize>,
    pub accepted_per_s: f64,
    pub events: usize,
    pub duplicates_posted: usize,
    /// Replies accepted, and the seconds from the first to the last.
    pub reply_wave: (usize, f64),
    /// Accepted -> the event's first item stored.
    pub state_lag: Lags,
    /// Events whose key is in no item.
    pub lost: usize,
    /// Counter increments past one per event.
    pub doubled: usize,
    pub missing_increments: usize,
    pub rejected: usize,
    /// Accepted -> the first Slack message naming the event.
    pub alert_lag: Lags,
    pub slack_calls: usize,
    pub slack_refused: usize,
    pub slack_most_per_second: usize,
    pub slack_accepted_most_per_second: usize,
    pub smartlead_calls: usize,
    pub smartlead_refused: usize,
    pub smartlead_most_per_minute: usize,
    pub smartlead_most_per_second: usize,
    pub slack: Effect,
    pub sns: Effect,
    pub fanout: Effect,
    pub hygiene: Effect,
    pub dlq: usize,
    pub effects_dlq: usize,
    pub ddb_writes: usize,
    pub ddb_throttled: usize,
    /// The partition key that took the most write units in one second.
    pub hottest_partition: (String, f64),
    /// (webhook queue, effects queue).
    pub polls: (Polls, Polls),
    pub drained: Option<Drained>,
}

/// Accepted deliveries a second, first POST to last answer.
pub fn rate(posted: &[Posted]) -> f64 {
    let ok: Vec<&Posted> = posted.iter().filter(|p| p.accepted()).collect();
    let (Some(first), Some(last)) = (
        posted.iter().map(|p| p.sent).min(),
        ok.iter().map(|p| p.answered).max(),
    ) else {
        return 0.0;
    };
    ok.len() as f64 / last.duration_since(first).as_secs_f64().max(1e-3)
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn effect_row(name: &str, e: &Effect) -> String {
    format!(
        "| {name} delivered exactly once | all | {} of {} ({} missing, {} doubled, {} unexpected) | {} |",
        e.once,
        e.expected,
        e.missing,
        e.doubled,
        e.unexpected,
        yes(e.exact())
    )
}

impl Report {
    /// Every target met.
    pub fn met(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.dlq + self.effects_dlq == 0
            && [&self.slack, &self.sns, &self.fanout, &self.hygiene]
                .iter()
                .all(|e| e.exact())
            && self.slack_most_per_second <= 1
            && self.smartlead_most_per_minute <= 60
            && self.state_lag.p99 < 10_000.0
    }

    /// The statuses of the webhooks not accepted, if any.
    fn refusals(&self) -> String {
        if self.not_accepted.is_empty() {
            return String::new();
        }
        let each: Vec<String> = self
            .not_accepted
            .iter()
            .map(|(status, n)| match status {
                0 => format!("no answer ×{n}"),
                s => format!("{s} ×{n}"),
            })
            .collect();
        format!("; not accepted: {}", each.join(", "))
    }

    /// The figures beside their targets, as a Markdown table.
    pub fn markdown(&self) -> String {
        let s = |l: &Lags| format!("{:.0} / {:.0} ms", l.p50, l.p99);
        let drained = self
            .drained
            .as_ref()
            .map_or("not waited for".to_owned(), |d| {
                format!(
                    "{} after {:.0} s",
                    if d.empty { "empty" } else { "**not empty**" },
                    d.secs
                )
            });
        let (w, e) = &self.polls;
        let rows = [
            format!("| webhooks accepted | all | {} of {} ({} second deliveries; {:.1}/s){} | {} |",
                self.accepted, self.webhooks, self.duplicates_posted, self.accepted_per_s,
                self.refusals(), yes(self.accepted == self.webhooks)),
            format!("| reply wave as accepted | in one minute | {} replies in {:.0} s | {} |",
                self.reply_wave.0, self.reply_wave.1, yes(self.reply_wave.1 <= 60.0)),
            format!("| state lag (accepted → stored) p50 / p99 | p99 < 10 s | {} ({} events) | {} |",
                s(&self.state_lag), self.state_lag.count, yes(self.state_lag.p99 < 10_000.0)),
            format!("| events lost (key in no item) | 0 | {} of {} | {} |", self.lost, self.events, yes(self.lost == 0)),
            format!("| events doubled (counter increments past one an event) | 0 | {} ({} missing) | {} |",
                self.doubled, self.missing_increments, yes(self.doubled == 0)),
            format!("| alert lag (accepted → Slack) p50 / p99 / max | | {} / {:.0} ms ({} alerts) | |",
                s(&self.alert_lag), self.alert_lag.max, self.alert_lag.count),
            format!("| most Slack calls in any second | ≤ 1 | {} ({} calls, {} answered 429) | {} |",
                self.slack_most_per_second, self.slack_calls, self.slack_refused, yes(self.slack_most_per_second <= 1)),
            format!("| most SmartLead calls in any minute (every process) | ≤ 60 | {} (≤ {} in a second; {} calls, {} answered 429) | {} |",
                self.smartlead_most_per_minute, self.smartlead_most_per_second, self.smartlead_calls,
                self.smartlead_refused, yes(self.smartlead_most_per_minute <= 60)),
            effect_row("Slack alerts", &self.slack),
            effect_row("SNS alerts", &self.sns),
            effect_row("EventBridge fan-out", &self.fanout),
            effect_row("SmartLead hygiene calls", &self.hygiene),
            format!("| DLQ depth at the end (webhooks / effects) | 0 / 0 | {} / {} | {} |",
                self.dlq, self.effects_dlq, yes(self.dlq + self.effects_dlq == 0)),
            format!("| queues after the last POST | empty | {drained} | |"),
            format!("| DynamoDB writes throttled (1,000 units/s a key) | | {} of {}; hottest key `{}` {:.0} units in a second | |",
                self.ddb_throttled, self.ddb_writes, self.hottest_partition.0, self.hottest_partition.1),
            format!("| records redelivered (failed / whole invokes failed) | | webhooks {} / {} of {} invokes; effects {} / {} of {} | |",
                w.failed, w.invokes_failed, w.invokes, e.failed, e.invokes_failed, e.invokes),
            format!("| rejected events | 0 | {} | {} |", self.rejected, yes(self.rejected == 0)),
        ];
        format!(
            "| figure | target | measured | met |\n|---|---|---|---|\n{}\n",
            rows.join("\n")
        )
    }
}
