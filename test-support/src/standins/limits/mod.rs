//! Stand-ins that enforce the limits the real services enforce, which the
//! plain stand-ins do not: Slack's one message a second per webhook URL
//! ([`SlackLimit`]), SmartLead's per-key budget ([`SmartleadLimit`]) and
//! DynamoDB's per-partition write throughput ([`DynamoThrottle`], a proxy
//! in front of DynamoDB Local). Each records every call, so a load test
//! counts what arrived (and when) at the stand-in, not what the pipeline
//! says it sent.

/// An HTTP client for the stand-ins. In a workspace build reqwest has
/// rustls without a default crypto provider (the library's choice), and a
/// client built before one is installed panics: install it first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

pub mod dynamodb;
pub mod slack;
pub mod smartlead;

pub use dynamodb::{DynamoThrottle, Write};
pub use slack::SlackLimit;
pub use smartlead::SmartleadLimit;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One call a stand-in answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, credentials (`api_key`) left out.
    pub query: String,
    pub body: String,
    /// What the stand-in answered (429 when over the limit).
    pub status: u16,
}

impl Call {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// At most `limit` admissions in any sliding window of `span`.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    span: Duration,
    admitted: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: usize, span: Duration) -> Window {
        Window {
            limit: limit.max(1),
            span,
            admitted: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.span)
        {
            self.admitted.pop_front();
        }
    }

    /// How long until a call would be admitted (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.expire(now);
        match self.admitted.len().checked_sub(self.limit) {
            Some(i) => self
                .span
                .saturating_sub(now.saturating_duration_since(self.admitted[i])),
            None => Duration::ZERO,
        }
    }

    pub fn push(&mut self, now: Instant) {
        self.admitted.push_back(now);
    }

    /// Admissions left in the window now.
    pub fn remaining(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.limit.saturating_sub(self.admitted.len())
    }

    /// When the oldest admission leaves the window (now when it is empty).
    pub fn frees_at(&self, now: Instant) -> Instant {
        self.admitted.front().map_or(now, |t| *t + self.span)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The most of `times` inside any window of `span` (half-open: calls
/// exactly `span` apart are in different windows).
pub fn most_in_any(times: &[Instant], span: Duration) -> usize {
    let mut t = times.to_vec();
    t.sort();
    let mut first = 0;
    let mut most = 0;
    for last in 0..t.len() {
        while t[last].duration_since(t[first]) >= span {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

/// Whole seconds to wait, rounded up (as `Retry-After` gives them).
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Seconds since the Unix epoch of an `Instant` (for `x-ratelimit-reset`).
pub(crate) fn unix_secs(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = std::time::SystemTime::now();
    let t = if at >= now {
        wall + (at - now)
    } else {
        wall - (now - at)
    };
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, ceil_secs)
}

/// A request as the stand-ins read it: whole.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

pub(crate) type Answer = Response<Full<Bytes>>;
type Handler = Arc<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// An answer with a JSON (or text) body and extra headers.
pub(crate) fn answer(status: u16, headers: &[(&str, String)], body: String) -> Answer {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    r.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn read(req: Request<Incoming>) -> Req {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Req {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
    }
}

/// Serves `handler` on a free port of 127.0.0.1 in the background (HTTP/1.1,
/// keep-alive) for as long as the runtime runs; returns `http://127.0.0.1:<port>`.
pub(crate) async fn serve(handler: Handler) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                // Out of file descriptors and the like: the next accept may work.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(read(req).await).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service),
            );
        }
    });
    Ok(url)
}

/// A handler from a synchronous function of the request.
pub(crate) fn sync_handler(f: impl Fn(Req) -> Answer + Send + Sync + 'static) -> Handler {
    let f = Arc::new(f);
    Arc::new(move |req| {
        let f = f.clone();
        Box::pin(async move { f(req) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_says_when_the_oldest_leaves() {
        let t0 = Instant::now();
        let mut w = Window::new(2, Duration::from_secs(1));
        for _ in 0..2 {
            assert_eq!(w.wait(t0), Duration::ZERO);
            w.push(t0);
        }
        assert_eq!(w.wait(t0), Duration::from_secs(1));
        let later = t0 + Duration::from_millis(400);
        assert_eq!(w.wait(later), Duration::from_millis(600));
        assert_eq!(w.wait(t0 + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn most_in_any_window_counts_calls_less_than_a_span_apart() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let s = Duration::from_secs(1);
        assert_eq!(most_in_any(&[], s), 0);
        assert_eq!(most_in_any(&[ms(0), ms(1000), ms(2000)], s), 1);
        assert_eq!(most_in_any(&[ms(2000), ms(0), ms(999), ms(1500)], s), 2);
        assert_eq!(most_in_any(&[ms(0), ms(10), ms(20), ms(5000)], s), 3);
    }
}
