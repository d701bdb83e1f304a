//! Values read from SSM that are re-read while the function runs (the
//! webhook secret, the Slack URL, the SmartLead API key), so a rotated
//! parameter is picked up without a cold start.
//!
//! A [`Refreshing`] value is re-read at most every `every` (env
//! `SECRET_REFRESH_SECONDS`, default 300), by one task at a time, while the
//! others keep using the current value. A failed re-read keeps the last good
//! value and logs the failure (never the value); the next try is an interval
//! later. A value that could not be read at all ([`Refreshing::unread`]: an
//! optional integration's parameter missing, denied or throttled at cold
//! start) is tried again with backoff: after 1 s, 2 s, 4 s, ... (with
//! jitter, at most `every`), until a read succeeds.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// The first wait after a read that left no value; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Reads the value again.
pub type Loader<T> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, String>> + Send>> + Send + Sync>;

struct Slot<T> {
    value: Option<Arc<T>>,
    /// When the next read is due.
    due: Instant,
    /// Reads failed in a row with no value to keep (the backoff's step).
    misses: u32,
}

pub struct Refreshing<T> {
    what: &'static str,
    slot: RwLock<Slot<T>>,
    every: Duration,
    load: Option<Loader<T>>,
    busy: tokio::sync::Mutex<()>,
}

impl<T> std::fmt::Debug for Refreshing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Refreshing({}, every {:?})", self.what, self.every)
    }
}

/// `now + wait`, however long the wait (capped at ten years).
fn after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(Duration::from_secs(10 * 365 * 86_400)))
        .unwrap_or(now)
}

/// The wait after the `misses`-th failed read with no value: 1 s doubled
/// each time, at most `every` (1 s at least), of which the second half is
/// random (so instances started together do not retry together).
fn backoff(misses: u32, every: Duration) -> Duration {
    let base = FIRST_RETRY
        .saturating_mul(1 << misses.saturating_sub(1).min(20))
        .min(every.max(FIRST_RETRY));
    let half = base / 2;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(nanos % span.saturating_add(1))
}

impl<T: Send + Sync + 'static> Refreshing<T> {
    fn with(
        what: &'static str,
        value: Option<T>,
        every: Duration,
        load: Option<Loader<T>>,
    ) -> Self {
        let misses = u32::from(value.is_none());
        let due = match value {
            Some(_) => after(every),
            None => after(backoff(misses, every)),
        };
        Refreshing {
            what,
            slot: RwLock::new(Slot {
                value: value.map(Arc::new),
                due,
                misses,
            }),
            every,
            load,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// A value that never changes (local runs, tests).
    pub fn fixed(value: T) -> Refreshing<T> {
        Refreshing::with("fixed", Some(value), Duration::MAX, None)
    }

    /// `initial` (just read), re-read with `load` at most every `every`.
    pub fn new(what: &'static str, initial: T, every: Duration, load: Loader<T>) -> Refreshing<T> {
        Refreshing::with(what, Some(initial), every, Some(load))
    }

    /// Read now with `load`; a read that fails is logged and the value is
    /// read again with backoff ([`Self::unread`]): a cold start goes on
    /// without it.
    pub async fn read_at_start(
        what: &'static str,
        every: Duration,
        load: Loader<T>,
    ) -> Refreshing<T> {
        match load().await {
            Ok(value) => Refreshing::new(what, value, every, load),
            Err(error) => {
                tracing::error!(
                    what,
                    error = %error,
                    "could not read it at start: going on without it, reading it again with backoff"
                );
                Refreshing::unread(what, every, load)
            }
        }
    }

    /// No value yet, read with `load` on first use (then as [`Self::unread`]
    /// when that read fails).
    pub fn on_first_use(what: &'static str, every: Duration, load: Loader<T>) -> Refreshing<T> {
        let r = Refreshing::with(what, None, every, Some(load));
        r.slot.write().unwrap_or_else(|p| p.into_inner()).due = Instant::now();
        r
    }

    /// No value yet (the first read failed): read with `load` after a
    /// backoff until a read succeeds, then every `every`.
    pub fn unread(what: &'static str, every: Duration, load: Loader<T>) -> Refreshing<T> {
        Refreshing::with(what, None, every, Some(load))
    }

    fn slot(&self) -> std::sync::RwLockReadGuard<'_, Slot<T>> {
        self.slot.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The value now, without re-reading; `None` while none could be read.
    pub fn current(&self) -> Option<Arc<T>> {
        self.slot().value.clone()
    }

    fn is_due(&self) -> bool {
        Instant::now() >= self.slot().due
    }

    /// Keeps a value just read (`Some`) or counts a failed read.
    fn store(&self, value: Option<T>) -> Duration {
        let mut s = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = value {
            s.value = Some(Arc::new(value));
            s.misses = 0;
        } else if s.value.is_none() {
            s.misses = s.misses.saturating_add(1);
        }
        let wait = match s.value {
            Some(_) => self.every,
            None => backoff(s.misses, self.every),
        };
        s.due = after(wait);
        wait
    }

    /// Re-reads the value when it is due and no other task is re-reading it.
    pub async fn refresh_if_due(&self) {
        let Some(load) = &self.load else {
            return;
        };
        if !self.is_due() {
            return;
        }
        let Ok(_guard) = self.busy.try_lock() else {
            return;
        };
        if !self.is_due() {
            return;
        }
        match load().await {
            Ok(v) => {
                self.store(Some(v));
                tracing::debug!(what = self.what, "re-read");
            }
            Err(error) => {
                // Try again later, not on every request.
                let had_value = self.current().is_some();
                let retry_in = self.store(None);
                tracing::warn!(
                    what = self.what,
                    error = %error,
                    had_value,
                    retry_in_secs = retry_in.as_secs_f64(),
                    "re-reading failed; keeping the last good value, if any"
                );
            }
        }
    }

    /// The value, re-read first when due; `None` while none could be read.
    pub async fn get(&self) -> Option<Arc<T>> {
        self.refresh_if_due().await;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loader answering its `n`-th call (from 0) with `answer(n)`, and
    /// the count of its calls.
    fn counted(answer: fn(usize) -> Result<String, String>) -> (Arc<AtomicUsize>, Loader<String>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let load: Loader<String> = Arc::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { answer(n) })
        });
        (calls, load)
    }

    async fn got(r: &Refreshing<String>) -> String {
        r.get().await.map(|v| (*v).clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn re_reads_at_most_every_interval_and_keeps_the_last_good_value() {
        let (calls, load) = counted(|n| match n {
            0 => Ok("second".to_owned()),
            1 => Err("AccessDenied".to_owned()),
            _ => Ok("third".to_owned()),
        });
        // An interval far longer than any stall between two statements here.
        let r = Refreshing::new("test", "first".to_owned(), Duration::from_secs(2), load);
        assert_eq!(got(&r).await, "first", "fresh: not re-read");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(got(&r).await, "second");
        assert_eq!(got(&r).await, "second", "once per interval");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(got(&r).await, "second", "a failed re-read keeps the value");
        assert_eq!(got(&r).await, "second", "and waits an interval to retry");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(got(&r).await, "third");
        let fixed = Refreshing::fixed(1);
        assert_eq!(fixed.get().await.as_deref(), Some(&1));
        assert!(!format!("{r:?}").contains("third"), "never shows the value");
    }

    /// An optional integration's parameter missing at cold start: no value,
    /// read again after 0.5-1 s, 1-2 s, 2-4 s (capped at the interval), not
    /// on every call; once a read succeeds, the value is kept and re-read
    /// every interval.
    #[tokio::test]
    async fn an_unread_value_is_read_again_with_backoff_until_it_is_there() {
        let (calls, load) = counted(|n| match n {
            0 => Err("ParameterNotFound".to_owned()),
            _ => Ok("there".to_owned()),
        });
        let r = Refreshing::unread("test", Duration::from_secs(3), load);
        assert_eq!(r.get().await, None);
        assert_eq!(r.get().await, None, "not read again at once");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(r.get().await, None, "the first retry fails too");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.get().await, None, "and backs off");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(2050)).await;
        assert_eq!(got(&r).await, "there");
        assert_eq!(got(&r).await, "there");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "then read every interval");
        for misses in 1..40 {
            let b = backoff(misses, Duration::from_secs(300));
            assert!(b <= Duration::from_secs(300), "{misses}: {b:?}");
            assert!(b >= Duration::from_millis(500), "{misses}: {b:?}");
        }
        assert!(backoff(1, Duration::ZERO) >= Duration::from_millis(500));
    }
}
