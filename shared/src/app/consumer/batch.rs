//! One batch: its records handled concurrently before the invocation's
//! deadline, their effects queued, the failures named for redelivery.

use super::{
    BatchAnswer, BlobReader, Consumer, Done, Job, Outcome, QueueMessage, MAX_LEASE, QUEUE_MARGIN,
    STATE_MARGIN,
};
use crate::app::store::StateStore;
use crate::domain::time::EventTime;
use crate::metrics::Unit;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Metric names, by [`Outcome::metric_index`].
const METRIC_NAMES: [&str; 4] = ["Processed", "Duplicates", "RejectedEvents", "Failures"];

impl<S: StateStore, B: BlobReader> Consumer<S, B> {
    pub async fn handle_batch(&self, messages: Vec<QueueMessage>) -> BatchAnswer {
        self.handle_batch_until(messages, None).await
    }

    /// Handles a batch before `deadline_ms` (epoch ms, the invocation's
    /// deadline): webhook messages (state, then their effects queued), or
    /// effect messages ([`crate::app::worker`]).
    pub async fn handle_batch_until(
        &self,
        messages: Vec<QueueMessage>,
        deadline_ms: Option<i64>,
    ) -> BatchAnswer {
        let now_ms = EventTime::now().millis();
        let remaining = deadline_ms
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms).max(0) as u64))
            .unwrap_or(MAX_LEASE);
        let deadline = Instant::now() + remaining;
        // Effect messages come from the effects queue's own event source:
        // never in one batch with webhooks, but told apart record by record.
        let (effects, records): (Vec<QueueMessage>, Vec<QueueMessage>) = messages
            .into_iter()
            .partition(crate::app::worker::is_effect);
        let mut answer = BatchAnswer::default();
        if !effects.is_empty() {
            answer.retry = self.handle_effects(&effects, deadline).await;
        }
        if records.is_empty() {
            return answer;
        }
        let lease_until_ms = now_ms + remaining.min(MAX_LEASE).as_millis() as i64;
        let state_end = deadline
            .checked_sub(STATE_MARGIN)
            .unwrap_or_else(Instant::now);
        let mut results: Vec<(Option<String>, Done)> = futures::stream::iter(records.iter())
            .map(|m| async move {
                let id = m.message_id.clone();
                if Instant::now() >= state_end {
                    return (id, out_of_time("not started"));
                }
                let work = self.record(m, lease_until_ms);
                match tokio::time::timeout_at(state_end.into(), work).await {
                    Ok(done) => (id, done),
                    Err(_) => (id, out_of_time("cut off")),
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let jobs: Vec<Job> = results
            .iter_mut()
            .filter_map(|(_, d)| d.job.take())
            .collect();
        let queue_end = deadline.checked_sub(QUEUE_MARGIN).unwrap_or(state_end);
        // The effects queue answers a margin earlier: the copies of what it
        // did not take go back to the webhook queue in that margin. Both
        // steps are bounded inside: what was sent back is known.
        let send_end = queue_end.checked_sub(QUEUE_MARGIN).unwrap_or(state_end);
        let not_queued = self.enqueue(&jobs, send_end, queue_end).await;
        self.batch_metrics(&results);
        for (id, done) in results {
            let unqueued = id.as_ref().is_some_and(|i| not_queued.contains(i));
            if matches!(done.outcome, Outcome::Failed(_)) || unqueued {
                answer.retry.push(id.unwrap_or_default());
            }
        }
        answer
    }

    /// One metric document a batch, by `Function` only: a document per
    /// event type cost ~300 log bytes each. The by-type view is the
    /// ingest's `Queued`; `UNKNOWN` types keep their own (rare) count.
    fn batch_metrics(&self, results: &[(Option<String>, Done)]) {
        let mut counts = [0.0_f64; 4];
        let mut unknown = 0.0;
        let mut latencies = Vec::with_capacity(results.len());
        for (_, done) in results {
            counts[done.outcome.metric_index()] += 1.0;
            if done.event_type == "UNKNOWN" && done.outcome.metric_index() == 0 {
                unknown += 1.0;
            }
            // Whole milliseconds: what a latency percentile needs.
            latencies.push(done.ms.round());
        }
        let mut values: Vec<(&str, &[f64], Unit)> = Vec::new();
        for (i, name) in METRIC_NAMES.iter().enumerate() {
            if counts[i] > 0.0 {
                values.push((name, std::slice::from_ref(&counts[i]), Unit::Count));
            }
        }
        for chunk in latencies.chunks(100) {
            let mut v = values.clone();
            v.push(("ProcessingLatency", chunk, Unit::Milliseconds));
            self.metrics.emit_many(&[], &v);
            values.clear();
        }
        if unknown > 0.0 {
            // Already in the batch document's per-function `Processed`.
            self.metrics
                .count_without_roll_up("Processed", unknown, &[("EventType", "UNKNOWN")]);
        }
    }
}

/// A record given back unfinished: the invocation's deadline is near.
fn out_of_time(what: &'static str) -> Done {
    tracing::warn!(
        outcome = "failed",
        what,
        "no time left before the invocation's deadline; SQS will redeliver the record"
    );
    Done {
        outcome: Outcome::Failed(format!(
            "{what}: no time left before the invocation's deadline"
        )),
        event_type: "NONE".into(),
        ms: 0.0,
        job: None,
    }
}
