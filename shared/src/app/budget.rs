//! One rate budget per destination (a Slack incoming webhook, a SmartLead
//! API key), shared by every process that calls it: the consumer's (or
//! effects worker's) instances, the scheduled reconcile and the CLI.
//!
//! A budget spaces calls evenly: it keeps the destination's *theoretical
//! arrival time* (`tat`, GCRA): the earliest moment the next call may go.
//! A call reserves `max(tat, now)` and moves `tat` one interval past it,
//! then sleeps until its slot; a slot past the caller's deadline is not
//! reserved at all ([`BudgetError::Later`] says how long to wait instead,
//! so the work is retried later, never dropped). There is no burst: two
//! calls never go closer than one interval, so a sliding window never
//! sees more than the destination allows (see [`JITTER`] for the margin).
//! A destination that says "not before" (a 429 `Retry-After`, a window
//! with nothing left) moves `tat` forward for everyone ([`RateBudget::pause`]);
//! one that states a lower limit than configured slows everyone
//! ([`RateBudget::stated_limit`]). Calls that reserved their slot before a
//! pause still go at it: a few at the budget's rate, none beyond it.
//!
//! `adapters::aws::dynamodb::budget` keeps the budget in the state table
//! (one conditional write a call); [`InProcess`] keeps it in memory, for
//! unit tests and a process without a table.

use async_trait::async_trait;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Added to a destination's window before it is divided into intervals,
/// so network jitter and clock skew between processes of up to this much
/// cannot put one call too many into any window of the destination's
/// length as the destination (or a stand-in counting with a sliding
/// window) sees them: the first and last of `n + 1` calls spaced
/// `(window + JITTER) / n` are `window + JITTER` apart when sent.
///
/// With more than one call a window, one is left unused (`n = count - 1`):
/// a destination's own count of what is left (SmartLead's
/// `x-ratelimit-remaining`) then reaches 0 only when someone else uses the
/// key too, and the pause it asks for (to a whole second) never slows a
/// budget that keeps the limit by itself. Slack (1 a second): one message
/// every 1.25 s; SmartLead at 60 a minute: one call every 1.022 s. (A
/// process's first call opens a connection, and a busy host wakes a
/// sleeper late: hundreds of milliseconds are seen on a loaded machine.)
pub const JITTER: Duration = Duration::from_millis(250);

/// Where calls go, named without the secret that reaches it, and how many
/// calls it takes in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `slack#<16 hex of sha256(url)>`, `smartlead#<16 hex of sha256(key)>`.
    pub id: String,
    /// At most this many calls ...
    pub count: u32,
    /// ... in any window this long.
    pub window: Duration,
}

/// The first 16 hex digits of SHA-256: names a secret without revealing it.
fn digest(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
}

impl Destination {
    /// A Slack incoming webhook: one message a second
    /// (<https://api.slack.com/docs/rate-limits>, incoming webhooks).
    pub fn slack(url: &str) -> Destination {
        Destination {
            id: format!("slack#{}", digest(url)),
            count: 1,
            window: Duration::from_secs(1),
        }
    }

    /// SmartLead's API under one key: the plan's limit a minute, across
    /// every endpoint (<https://api.smartlead.ai/reference/rate-limits>).
    pub fn smartlead(key: &str, per_minute: u32) -> Destination {
        Destination {
            id: format!("smartlead#{}", digest(key)),
            count: per_minute.max(1),
            window: Duration::from_secs(60),
        }
    }

    /// The spacing of calls at the configured limit, or at `stated` (what
    /// the destination says it allows a window) when that is lower (see
    /// [`JITTER`]); in whole milliseconds, rounded up.
    pub fn interval_ms(&self, stated: Option<u32>) -> i64 {
        let count = stated.map_or(self.count, |s| s.min(self.count));
        let calls = count.saturating_sub(1).max(1);
        let ns = (self.window + JITTER)
            .as_nanos()
            .div_ceil(u128::from(calls));
        i64::try_from(ns.div_ceil(1_000_000)).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The next slot comes after the deadline: nothing was reserved; the
    /// call may be tried again after `after`.
    #[error("no slot in the rate budget before the deadline: the next is in {} ms", after.as_millis())]
    Later { after: Duration },
    /// The budget could not be read or written (retryable): the call is
    /// not made, as nothing would keep it inside the destination's limit.
    #[error("the rate budget is unavailable: {0}")]
    Unavailable(#[source] crate::app::store::BoxError),
}

impl BudgetError {
    /// How long to wait before trying again, when the budget said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BudgetError::Later { after } => Some(*after),
            BudgetError::Unavailable(_) => None,
        }
    }
}

/// The rate budget of every destination, shared by the processes using it.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Reserves the first free slot for one call to `dest` and returns how
    /// long to wait for it; [`BudgetError::Later`], reserving nothing,
    /// when the slot would come after `latest`.
    async fn reserve(&self, dest: &Destination, latest: Instant) -> Result<Duration, BudgetError>;

    /// The destination said "not before `until_ms`" (epoch ms): no slot
    /// is given before it, in any process.
    async fn pause(&self, dest: &Destination, until_ms: i64) -> Result<(), BudgetError>;

    /// The destination stated it allows `count` calls a window: below the
    /// configured count, every process spaces its calls for `count`.
    async fn stated_limit(&self, dest: &Destination, count: u32) -> Result<(), BudgetError>;

    /// [`RateBudget::reserve`], then waits for the slot.
    async fn acquire(&self, dest: &Destination, latest: Instant) -> Result<(), BudgetError> {
        let wait = self.reserve(dest, latest).await?;
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Now, in epoch milliseconds (the budgets' clock, shared across processes).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `at` on the epoch-millisecond clock (saturating far in the future).
pub fn epoch_ms(at: Instant) -> i64 {
    let now = Instant::now();
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2);
    match at.checked_duration_since(now) {
        Some(ahead) => now_ms().saturating_add(ms(ahead)),
        None => now_ms().saturating_sub(ms(now - at)),
    }
}

/// Milliseconds (never negative) as a wait.
pub fn wait_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A budget in this process's memory: for unit tests, and for a process
/// with no table to share one through (its calls are then paced alone).
#[derive(Default)]
pub struct InProcess {
    /// By destination id: `(tat, stated interval)`, epoch ms.
    state: std::sync::Mutex<HashMap<String, (i64, Option<i64>)>>,
}

impl InProcess {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (i64, Option<i64>)>) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }
}

#[async_trait]
impl RateBudget for InProcess {
    async fn reserve(&self, dest: &Destination, latest: Instant) -> Result<Duration, BudgetError> {
        let (now, latest) = (now_ms(), epoch_ms(latest));
        self.with(|state| {
            let (tat, stated) = state.entry(dest.id.clone()).or_insert((0, None));
            let slot = (*tat).max(now);
            if slot > latest {
                return Err(BudgetError::Later {
                    after: wait_ms(slot - now),
                });
            }
            *tat = slot + stated.unwrap_or_else(|| dest.interval_ms(None));
            Ok(wait_ms(slot - now))
        })
    }

    async fn pause(&self, dest: &Destination, until_ms: i64) -> Result<(), BudgetError> {
        self.with(|state| {
            let (tat, _) = state.entry(dest.id.clone()).or_insert((0, None));
            *tat = (*tat).max(until_ms);
        });
        Ok(())
    }

    async fn stated_limit(&self, dest: &Destination, count: u32) -> Result<(), BudgetError> {
        self.with(|state| {
            state.entry(dest.id.clone()).or_insert((0, None)).1 =
                Some(dest.interval_ms(Some(count)));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn intervals_leave_the_jitter_margin_and_never_name_the_secret() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRET";
        let slack = Destination::slack(url);
        assert_eq!(slack.interval_ms(None), 1250);
        assert!(slack.id.starts_with("slack#") && slack.id.len() == 6 + 16);
        assert!(!slack.id.contains("SECRET"));
        let sl = Destination::smartlead("KEY-1", 60);
        // (60 s + 250 ms) / 59, rounded up: 60 calls span 60.25 s.
        assert_eq!(sl.interval_ms(None), 1022);
        assert_eq!(sl.interval_ms(Some(30)), 2078);
        // A stated limit above the configured one changes nothing.
        assert_eq!(sl.interval_ms(Some(120)), 1022);
        assert_ne!(sl.id, Destination::smartlead("KEY-2", 60).id);
        assert_eq!(Destination::smartlead("k", 0).count, 1);
    }

    #[tokio::test]
    async fn calls_are_spaced_one_interval_apart_and_a_late_slot_is_not_taken() {
        let b = InProcess::default();
        let d = Destination {
            id: "t".into(),
            count: 11,
            window: Duration::from_millis(750),
        };
        let waits: Vec<u128> = futures::future::join_all((0..5).map(|_| b.reserve(&d, far())))
            .await
            .into_iter()
            .map(|w| w.expect("slot").as_millis())
            .collect();
        // 0, 100, 200, 300, 400 ms (less the milliseconds the calls took).
        for (i, w) in waits.iter().enumerate() {
            let want = 100 * i as u128;
            assert!(*w <= want && *w + 20 >= want, "{waits:?}");
        }
        // The next slot is ~500 ms away: with 100 ms left, none is taken.
        let soon = Instant::now() + Duration::from_millis(100);
        let e = b.reserve(&d, soon).await.expect_err("past the deadline");
        let after = e.retry_after().expect("a wait");
        assert!(after > Duration::from_millis(400), "{after:?}");
        // Nothing was reserved: the next caller gets that same slot.
        let w = b.reserve(&d, far()).await.expect("slot");
        assert!(w <= after && w + Duration::from_millis(20) >= after);
    }

    #[tokio::test]
    async fn a_pause_and_a_stated_limit_hold_for_every_caller() {
        let b = InProcess::default();
        let d = Destination::smartlead("k", 60);
        b.pause(&d, now_ms() + 5_000).await.expect("pause");
        let w = b.reserve(&d, far()).await.expect("slot");
        assert!(w > Duration::from_millis(4_900), "{w:?}");
        // A pause never moves the budget back.
        b.pause(&d, now_ms()).await.expect("pause");
        b.stated_limit(&d, 30).await.expect("limit");
        let w2 = b.reserve(&d, far()).await.expect("slot");
        // The slot after the paused one is one interval later: 1022 ms, as
        // it was reserved before SmartLead stated 30; the next, 2078 ms.
        let w3 = b.reserve(&d, far()).await.expect("slot");
        assert!(w2 >= w + Duration::from_millis(990), "{w:?} {w2:?}");
        assert!(w3 >= w2 + Duration::from_millis(1990), "{w2:?} {w3:?}");
    }

    /// SmartLead counts what is left of its window for the key
    /// (`x-ratelimit-remaining`, <https://api.smartlead.ai/reference/rate-limits>);
    /// a budget at full rate leaves one call of it, so a 0 there means
    /// another client, and the pause it asks for is never ours to wait.
    #[test]
    fn at_full_rate_the_destinations_window_is_never_used_up() {
        for per_minute in [60, 120, 1000] {
            let d = Destination::smartlead("k", per_minute);
            let step = Duration::from_millis(d.interval_ms(None) as u64);
            let mut window =
                test_support::standins::limits::Window::new(per_minute as usize, d.window);
            let t0 = Instant::now();
            for i in 0..(3 * per_minute) {
                // Each call arrives up to JITTER late, alternately.
                let late = if i % 2 == 0 { JITTER } else { Duration::ZERO };
                let at = t0 + step * i + late;
                assert!(window.wait(at).is_zero(), "{per_minute}: call {i} refused");
                window.push(at);
                assert!(
                    window.remaining(at) > 0,
                    "{per_minute}: used up at call {i}"
                );
            }
        }
    }
}
