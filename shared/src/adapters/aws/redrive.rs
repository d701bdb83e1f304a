//! Moving messages from the dead-letter queue back to the queue, with their
//! bodies and attributes unchanged (the consumer deduplicates, so a message
//! that was in fact processed is harmless).
//!
//! Each message is deleted from the DLQ only after `SendMessageBatch`
//! accepted its copy: a crash in between leaves a duplicate, never a loss.
//!
//! Batches are packed by size: `SendMessageBatch` refuses a whole request
//! whose messages (bodies and attributes) add up to more than
//! [`MAX_BATCH_BYTES`], so a batch closes before that, and a message too
//! large to share a batch goes alone. Every failure is per message:
//! `SendMessageBatch` and `DeleteMessageBatch` answer per entry, and both
//! answers are read. Counts are per message: one seen again in the same run
//! (its visibility timeout ran out) is not counted twice.
//!
//! A redrive must not bring back a message whose effect markers or
//! first-seen record may be gone (their TTL ran out): the consumer could
//! run its alerts, or apply its time-keyed records, a second time. So it
//! refuses, and leaves in the DLQ, every message the ingest received longer
//! ago than that TTL less [`MARGIN_DAYS`] (by the `received_at`
//! attribute the ingest sets and a redrive keeps, or SQS's `SentTimestamp`,
//! whichever is older), unless forced. That is also why it does not use
//! SQS's `StartMessageMoveTask`, which moves every message without looking.

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Days a redrive keeps clear of a marker's (and a claim-checked body's)
/// expiry: a redriven message may wait in the queue up to its retention (14
/// days) before the consumer sees it, and a day more.
pub const MARGIN_DAYS: u64 = 15;

/// The oldest a message may be (since the ingest received it) for a redrive
/// to be sure its effect markers and first-seen record, if it was
/// processed, still exist.
pub fn max_age(dedup_ttl_days: u64) -> Duration {
    Duration::from_secs(dedup_ttl_days.saturating_sub(MARGIN_DAYS) * 86_400)
}

/// How to redrive.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Handle at most this many messages (all, if `None`).
    pub limit: Option<usize>,
    /// Refuse messages received longer ago than this ([`max_age`]); `None`
    /// moves them all (`--force`).
    pub max_age: Option<Duration>,
}

/// A message left in the DLQ because it is too old to redrive safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message_id: String,
    /// When the ingest received it (RFC 3339), if known.
    pub received_at: Option<String>,
}

/// When the ingest received a message, in epoch milliseconds: the older of
/// its `received_at` attribute and its `SentTimestamp`.
pub fn received_ms(m: &Message) -> Option<i64> {
    let attr = m
        .message_attributes()
        .and_then(|a| a.get(crate::domain::message::attr::RECEIVED_AT))
        .and_then(MessageAttributeValue::string_value)
        .and_then(crate::domain::time::EventTime::parse)
        .map(|t| t.millis());
    let sent = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|s| s.parse::<i64>().ok());
    match (attr, sent) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The most a `SendMessageBatch` request may carry, bodies and attributes
/// together: 256 KiB, SQS's limit until 2025 and still what a queue with the
/// old `MaximumMessageSize` accepts (packing below a larger limit is valid).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Entries in one batch request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// How long a received message stays hidden from this run's next receives.
pub const VISIBILITY_SECS: i32 = 300;
/// Sends tried per message before it is left in the DLQ as failed.
const SEND_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// A whole request failed (permissions, a wrong URL, the network): the
    /// run stops; `so_far` says what it did until then.
    #[error("SQS request failed: {message} (so far: {so_far})")]
    Sqs {
        message: String,
        so_far: Redriven,
        #[source]
        source: crate::app::store::BoxError,
    },
}

fn sqs_err<E: std::error::Error + Send + Sync + 'static>(e: E, so_far: Redriven) -> RedriveError {
    RedriveError::Sqs {
        message: super::error::error_chain(&e),
        so_far,
        source: Box::new(e),
    }
}

/// What a redrive did, one count per message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Copied to the queue and deleted from the DLQ.
    pub moved: usize,
    /// Refused by `SendMessageBatch` (every attempt): still in the DLQ only.
    pub failed: usize,
    /// Copied to the queue, but `DeleteMessageBatch` refused to delete it:
    /// in both queues (the consumer deduplicates; a later redrive moves the
    /// DLQ copy again).
    pub not_deleted: usize,
    /// Too old to redrive safely (see [`Options::max_age`]): left in the DLQ.
    pub refused: usize,
    /// Those messages.
    pub refused_messages: Vec<Refused>,
}

impl fmt::Display for Redriven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "moved {}, failed {}, sent but not deleted from the DLQ {}, refused (too old) {}",
            self.moved, self.failed, self.not_deleted, self.refused
        )
    }
}

/// Where a message seen in this run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Moved,
    /// The copy is queued; the DLQ delete failed.
    Sent,
    /// Sends refused so far.
    Failed(u32),
    /// Too old: left in the DLQ.
    Refused,
}

fn counts(seen: &HashMap<String, State>) -> Redriven {
    let mut r = Redriven::default();
    for s in seen.values() {
        match s {
            State::Moved => r.moved += 1,
            State::Sent => r.not_deleted += 1,
            State::Failed(_) => r.failed += 1,
            State::Refused => r.refused += 1,
        }
    }
    r
}

/// A message's size as `SendMessageBatch` counts it: the body plus each
/// attribute's name, type and value.
pub fn message_bytes(body: &str, attrs: &HashMap<String, MessageAttributeValue>) -> usize {
    body.len()
        + attrs
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.data_type().len()
                    + v.string_value().map_or(0, str::len)
                    + v.binary_value().map_or(0, |b| b.as_ref().len())
            })
            .sum::<usize>()
}

/// Groups messages, in order, into batches of at most [`MAX_BATCH_ENTRIES`]
/// and [`MAX_BATCH_BYTES`]; one message larger than that goes alone.
/// Returns indexes into `sizes`.
pub fn pack(sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        match out
            .last_mut()
            .filter(|b| b.len() < MAX_BATCH_ENTRIES && bytes + size <= MAX_BATCH_BYTES)
        {
            Some(batch) => {
                batch.push(i);
                bytes += size;
            }
            None => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

/// Moves messages from `dlq_url` to `queue_url` as `options` say;
/// `progress` is called with the running count.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    options: &Options,
    mut progress: impl FnMut(&Redriven),
) -> Result<Redriven, RedriveError> {
    let mut run = Run {
        sqs,
        dlq_url,
        queue_url,
        oldest: options
            .max_age
            .map(|age| chrono::Utc::now().timestamp_millis() - age.as_millis() as i64),
        refused: Vec::new(),
        seen: HashMap::new(),
        left: HashMap::new(),
    };
    loop {
        let want = options.limit.map_or(MAX_BATCH_ENTRIES, |l| {
            l.saturating_sub(run.seen.len()).min(MAX_BATCH_ENTRIES)
        });
        if want == 0 {
            break;
        }
        let msgs = run.receive(want).await?;
        if msgs.is_empty() {
            break;
        }
        let before = run.seen.len();
        let (to_send, mut to_delete) = run.triage(&msgs);
        if to_send.is_empty() && to_delete.is_empty() && run.seen.len() == before {
            // Only messages this run gave up on, or refused, are left.
            break;
        }
        run.send(&msgs, &to_send, &mut to_delete).await?;
        run.delete(&msgs, &to_delete).await?;
        progress(&counts(&run.seen));
    }
    release(sqs, dlq_url, &run.left).await;
    Ok(Redriven {
        refused_messages: run.refused,
        ..counts(&run.seen)
    })
}

/// Sends the batch `request` (`send_message_batch()`,
/// `delete_message_batch()`: named at the call, where the IAM audit in
/// xtask/tests/template.rs finds it) to `queue` with `entries`, as run `run`.
macro_rules! batch_call {
    ($run:expr, $request:expr, $queue:expr, $entries:expr) => {
        $request
            .queue_url($queue)
            .set_entries(Some($entries))
            .send()
            .await
            .map_err(|e| $run.err(e))
    };
}

/// One redrive's state.
struct Run<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    dlq_url: &'a str,
    queue_url: &'a str,
    /// Messages received before this (epoch ms) are refused.
    oldest: Option<i64>,
    refused: Vec<Refused>,
    seen: HashMap<String, State>,
    /// Messages left in the DLQ, with their latest receipt handle: visible
    /// again at the end rather than after the visibility timeout.
    left: HashMap<String, String>,
}

fn id(m: &Message) -> String {
    m.message_id().unwrap_or_default().to_owned()
}

fn attrs(m: &Message) -> HashMap<String, MessageAttributeValue> {
    m.message_attributes.clone().unwrap_or_default()
}

/// The entry indexes a batch answer lists as successful.
fn succeeded<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<usize> {
    ids.filter_map(|id| id.parse().ok()).collect()
}

impl Run<'_> {
    fn err<E: std::error::Error + Send + Sync + 'static>(&self, e: E) -> RedriveError {
        sqs_err(e, counts(&self.seen))
    }

    /// Leaves `m` in the DLQ as `state`.
    fn leave(&mut self, m: &Message, state: State) {
        self.seen.insert(id(m), state);
        self.left
            .insert(id(m), m.receipt_handle().unwrap_or_default().to_owned());
    }

    async fn receive(&self, want: usize) -> Result<Vec<Message>, RedriveError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(self.dlq_url)
            .max_number_of_messages(want as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .visibility_timeout(VISIBILITY_SECS)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        Ok(received.messages.unwrap_or_default())
    }

    /// Sorts received messages into those to send and those whose copy is
    /// queued already (only the DLQ copy is left to delete); refuses the
    /// ones too old and leaves the ones given up on.
    fn triage(&mut self, msgs: &[Message]) -> (Vec<usize>, Vec<usize>) {
        let mut to_send = Vec::new();
        let mut to_delete = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let received = received_ms(m);
            let too_old = self.oldest.is_some_and(|o| received.is_none_or(|r| r < o));
            match self.seen.get(&id(m)) {
                None if too_old => {
                    self.refused.push(Refused {
                        message_id: id(m),
                        received_at: received
                            .and_then(crate::domain::time::EventTime::from_millis)
                            .map(|t| t.to_string()),
                    });
                    self.leave(m, State::Refused);
                }
                None => to_send.push(i),
                Some(State::Failed(n)) if *n < SEND_ATTEMPTS => to_send.push(i),
                Some(State::Moved | State::Sent) => to_delete.push(i),
                Some(s @ (State::Failed(_) | State::Refused)) => {
                    let s = *s;
                    self.leave(m, s);
                }
            }
        }
        (to_send, to_delete)
    }

    /// Sends copies of `msgs[to_send]` to the queue, packed by size; the
    /// accepted ones join `to_delete`.
    async fn send(
        &mut self,
        msgs: &[Message],
        to_send: &[usize],
        to_delete: &mut Vec<usize>,
    ) -> Result<(), RedriveError> {
        let sizes: Vec<usize> = to_send
            .iter()
            .map(|&i| message_bytes(msgs[i].body().unwrap_or_default(), &attrs(&msgs[i])))
            .collect();
        for batch in pack(&sizes) {
            let batch: Vec<usize> = batch.iter().map(|&j| to_send[j]).collect();
            let entries = batch
                .iter()
                .map(|&i| send_entry(i, &msgs[i]).map_err(|e| self.err(e)))
                .collect::<Result<Vec<_>, _>>()?;
            let sent = batch_call!(self, self.sqs.send_message_batch(), self.queue_url, entries)?;
            let ok = succeeded(sent.successful.iter().map(|s| s.id.as_str()));
            for i in batch {
                let m = &msgs[i];
                if ok.contains(&i) {
                    self.seen.insert(id(m), State::Sent);
                    to_delete.push(i);
                } else {
                    let tries = match self.seen.get(&id(m)) {
                        Some(State::Failed(n)) => n + 1,
                        _ => 1,
                    };
                    self.leave(m, State::Failed(tries));
                }
            }
        }
        Ok(())
    }

    /// Deletes the DLQ copies of `msgs[to_delete]`, whose copies are queued.
    async fn delete(&mut self, msgs: &[Message], to_delete: &[usize]) -> Result<(), RedriveError> {
        if to_delete.is_empty() {
            return Ok(());
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = to_delete
            .iter()
            .filter_map(|&i| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(msgs[i].receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let deleted = batch_call!(self, self.sqs.delete_message_batch(), self.dlq_url, entries)?;
        let ok = succeeded(deleted.successful().iter().map(|s| s.id()));
        for &i in to_delete {
            let m = &msgs[i];
            if ok.contains(&i) {
                self.seen.insert(id(m), State::Moved);
                self.left.remove(&id(m));
            } else {
                // Still in the DLQ; the copy is queued.
                self.leave(m, State::Sent);
            }
        }
        Ok(())
    }
}

/// The `SendMessageBatch` entry copying message `i`.
fn send_entry(
    i: usize,
    m: &Message,
) -> Result<SendMessageBatchRequestEntry, aws_sdk_sqs::error::BuildError> {
    let a = attrs(m);
    SendMessageBatchRequestEntry::builder()
        .id(i.to_string())
        .message_body(m.body().unwrap_or_default())
        .set_message_attributes((!a.is_empty()).then_some(a))
        .build()
}

/// Makes the messages left in the DLQ visible again now (best effort: they
/// reappear after [`VISIBILITY_SECS`] anyway).
async fn release(sqs: &aws_sdk_sqs::Client, dlq_url: &str, left: &HashMap<String, String>) {
    let handles: Vec<&String> = left.values().collect();
    for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h.as_str())
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        let _ = sqs
            .change_message_visibility_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_request_size_and_a_big_message_goes_alone() {
        let kb = 1024;
        // Ten 254 KB messages: one per request.
        assert_eq!(pack(&[254 * kb; 10]).len(), 10);
        // Small ones: ten to a request.
        assert_eq!(pack(&[100; 25]), {
            let v: Vec<usize> = (0..25).collect();
            v.chunks(10).map(<[usize]>::to_vec).collect::<Vec<_>>()
        });
        // Mixed: never over the limit, order kept, every message once.
        let sizes = [
            100 * kb,
            100 * kb,
            100 * kb,
            300 * kb,
            10,
            200 * kb,
            56 * kb,
        ];
        let batches = pack(&sizes);
        assert_eq!(
            batches,
            vec![vec![0, 1], vec![2], vec![3], vec![4, 5], vec![6]]
        );
        for b in &batches {
            let total: usize = b.iter().map(|&i| sizes[i]).sum();
            assert!(total <= MAX_BATCH_BYTES || b.len() == 1, "{b:?}");
        }
    }

    #[test]
    fn attributes_count_toward_the_size() {
        let mut attrs = HashMap::new();
        attrs.insert(
            "received_at".to_owned(),
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("2026-01-01T00:00:00.000Z")
                .build()
                .unwrap(),
        );
        assert_eq!(message_bytes("abc", &attrs), 3 + 11 + 6 + 24);
    }
}
