//! Values read from SSM that are re-read while the function runs (the
//! webhook secret, the Slack URL, the SmartLead API key), so a rotated
//! parameter is picked up without a cold start.
//!
//! A [`Refreshing`] value is re-read at most every `every` (env
//! `SECRET_REFRESH_SECONDS`, default 300), by one task at a time, while the
//! others keep using the current value. A failed re-read keeps the last good
//! value and logs the failure (never the value).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Reads the value again.
pub type Loader<T> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, String>> + Send>> + Send + Sync>;

pub struct Refreshing<T> {
    what: &'static str,
    value: RwLock<(Arc<T>, Instant)>,
    every: Duration,
    load: Option<Loader<T>>,
    busy: tokio::sync::Mutex<()>,
}

impl<T> std::fmt::Debug for Refreshing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Refreshing({}, every {:?})", self.what, self.every)
    }
}

impl<T: Send + Sync + 'static> Refreshing<T> {
    /// A value that never changes (local runs, tests).
    pub fn fixed(value: T) -> Refreshing<T> {
        Refreshing {
            what: "fixed",
            value: RwLock::new((Arc::new(value), Instant::now())),
            every: Duration::MAX,
            load: None,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// `initial` (just read), re-read with `load` at most every `every`.
    pub fn new(what: &'static str, initial: T, every: Duration, load: Loader<T>) -> Refreshing<T> {
        Refreshing {
            what,
            value: RwLock::new((Arc::new(initial), Instant::now())),
            every,
            load: Some(load),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// The value now, without re-reading.
    pub fn current(&self) -> Arc<T> {
        match self.value.read() {
            Ok(v) => v.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    fn fetched_at(&self) -> Instant {
        match self.value.read() {
            Ok(v) => v.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    fn store(&self, value: Option<T>) {
        let mut v = match self.value.write() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(value) = value {
            v.0 = Arc::new(value);
        }
        v.1 = Instant::now();
    }

    /// Re-reads the value when it is older than `every` and no other task
    /// is re-reading it.
    pub async fn refresh_if_due(&self) {
        let Some(load) = &self.load else {
            return;
        };
        if self.fetched_at().elapsed() < self.every {
            return;
        }
        let Ok(_guard) = self.busy.try_lock() else {
            return;
        };
        if self.fetched_at().elapsed() < self.every {
            return;
        }
        match load().await {
            Ok(v) => {
                self.store(Some(v));
                tracing::debug!(what = self.what, "re-read");
            }
            Err(error) => {
                // Try again after another interval, not on every request.
                self.store(None);
                tracing::warn!(
                    what = self.what,
                    error = %error,
                    "re-reading failed; keeping the last good value"
                );
            }
        }
    }

    /// The value, re-read first when due.
    pub async fn get(&self) -> Arc<T> {
        self.refresh_if_due().await;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn re_reads_at_most_every_interval_and_keeps_the_last_good_value() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let load: Loader<String> = Arc::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match n {
                    0 => Ok("second".to_owned()),
                    1 => Err("AccessDenied".to_owned()),
                    _ => Ok("third".to_owned()),
                }
            })
        });
        // An interval far longer than any stall between two statements here.
        let r = Refreshing::new("test", "first".to_owned(), Duration::from_secs(2), load);
        assert_eq!(*r.get().await, "first", "fresh: not re-read");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(*r.get().await, "second");
        assert_eq!(*r.get().await, "second", "once per interval");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(*r.get().await, "second", "a failed re-read keeps the value");
        assert_eq!(*r.get().await, "second", "and waits an interval to retry");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(*r.get().await, "third");
        let fixed = Refreshing::fixed(1);
        assert_eq!(*fixed.get().await, 1);
        assert!(!format!("{r:?}").contains("third"), "never shows the value");
    }
}
