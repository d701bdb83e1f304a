//! HTTP stand-ins for Slack and SmartLead on `wiremock`: routes answered
//! with fixed or computed bodies, scripted one-off answers (a 429 with
//! `Retry-After`, a 5xx) whose guards check they were used, and every
//! request readable afterwards.

use std::time::Duration;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// What a stand-in answers where no route says otherwise (as Slack does).
pub const OK: &str = r#"{"ok":true}"#;

/// A JSON answer.
pub fn json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json")
}

/// A stand-in that answers every request 200 with [`OK`] unless a route
/// or a scripted answer says otherwise.
pub async fn server() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(any())
        .respond_with(json(200, OK))
        .with_priority(u8::MAX)
        .mount(&s)
        .await;
    s
}

/// Answers `METHOD /path` (any query) with `body`, from now on.
pub async fn route(s: &MockServer, method_and_path: &str, body: &str) {
    let body = body.to_owned();
    route_fn(s, method_and_path, move |_| body.clone()).await;
}

/// Answers `METHOD /path` (any query) with what `f` computes from the
/// request (a page of a listing by its `offset`), from now on.
pub async fn route_fn(
    s: &MockServer,
    method_and_path: &str,
    f: impl Fn(&Request) -> String + Send + Sync + 'static,
) {
    let (m, p) = method_and_path.split_once(' ').expect("`METHOD /path`");
    Mock::given(method(m))
        .and(path(p))
        .respond_with(move |r: &Request| json(200, &f(r)))
        .mount(s)
        .await;
}

/// Answers the next `n` requests with `body` (200), before the default
/// answer; [`verify`] checks that exactly `n` came.
pub async fn answer_next(s: &MockServer, n: u64, body: &str) {
    Mock::given(any())
        .respond_with(json(200, body))
        .up_to_n_times(n)
        .expect(n)
        .with_priority(u8::MAX - 1)
        .named(format!("{n} x {body}"))
        .mount(s)
        .await;
}

/// Answers every later request with `body` (200) where no route or
/// scripted answer says otherwise; after an [`answer_next`] runs out.
pub async fn answer_rest(s: &MockServer, body: &str) {
    Mock::given(any())
        .respond_with(json(200, body))
        .with_priority(u8::MAX - 1)
        .mount(s)
        .await;
}

/// Answers the next request with `status` (and `Retry-After`), before any
/// route; [`verify`] checks that exactly one request got it.
///
/// (Not a scoped mock: wiremock 0.6 sorts its mocks by priority in place,
/// so a `MockGuard` of a mock mounted after one of lower priority reads
/// and unmounts another mock.)
pub async fn once(s: &MockServer, status: u16, retry_after: Option<u64>) {
    let mut answer = json(status, OK);
    if let Some(r) = retry_after {
        answer = answer.insert_header("retry-after", r.to_string().as_str());
    }
    Mock::given(any())
        .respond_with(answer)
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .named(format!("one {status}"))
        .mount(s)
        .await;
}

/// Every request is answered 200 after `delay`; [`verify`] checks that
/// exactly `calls` came.
pub async fn slow(s: &MockServer, delay: Duration, calls: u64) {
    Mock::given(any())
        .respond_with(json(200, OK).set_delay(delay))
        .with_priority(1)
        .expect(calls)
        .named("slow answers")
        .mount(s)
        .await;
}

/// Checks every `expect` of the stand-in's answers now (a dropped server
/// checks them too, but a test says where).
pub async fn verify(s: &MockServer) {
    s.verify().await;
}

/// Every request the stand-in received, in order.
pub async fn requests(s: &MockServer) -> Vec<Request> {
    s.received_requests().await.expect("recording is on")
}

/// A request's target as sent: path and query.
pub fn target(r: &Request) -> String {
    match r.url.query() {
        Some(q) => format!("{}?{q}", r.url.path()),
        None => r.url.path().to_owned(),
    }
}

/// A request's body as text.
pub fn body(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A query parameter of a request, decoded.
pub fn query_param(r: &Request, name: &str) -> Option<String> {
    r.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
