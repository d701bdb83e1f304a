//! SmartLead's API with its per-key budget: 60 requests a minute and a
//! burst of 10 a second on the standard plan, all endpoints together
//! (<https://api.smartlead.ai/reference/rate-limits>,
//! <https://api.smartlead.ai/guides/rate-limits>). Every answer carries
//! `x-ratelimit-limit`, `x-ratelimit-remaining` (left in the sliding
//! minute) and `x-ratelimit-reset` (Unix seconds when the oldest request
//! leaves it); a request over either limit is answered 429 with
//! `Retry-After` (seconds) and SmartLead's error body.
//!
//! It answers the list-hygiene calls (`shared/src/adapters/http/smartlead/`):
//! `GET /api/v1/leads/?email=` with a lead id of its own (the same for an
//! address every time: [`SmartleadLimit::lead_email`] maps it back),
//! `POST /api/v1/leads/<id>/unsubscribe` and
//! `POST /api/v1/leads/add-domain-block-list`; anything else with `{"ok":true}`.

use super::{answer, ceil_secs, serve, sync_handler, unix_secs, Call, Req, Window};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The standard plan's limits.
pub const PER_MINUTE: usize = 60;
pub const PER_SECOND: usize = 10;
/// Where the first lead id this stand-in hands out starts.
const FIRST_LEAD_ID: u64 = 7_000_000;

struct State {
    per_minute: usize,
    per_second: usize,
    /// Per API key: (the minute, the second).
    keys: HashMap<String, (Window, Window)>,
    calls: Vec<Call>,
    /// Address -> the lead id handed out for it.
    leads: HashMap<String, u64>,
}

/// A SmartLead API stand-in on 127.0.0.1.
#[derive(Clone)]
pub struct SmartleadLimit {
    /// The API base, `http://127.0.0.1:<port>/api/v1` (`SMARTLEAD_API_BASE`).
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl SmartleadLimit {
    /// With the standard plan's limits.
    pub async fn start() -> std::io::Result<SmartleadLimit> {
        SmartleadLimit::start_with(PER_MINUTE, PER_SECOND).await
    }

    pub async fn start_with(
        per_minute: usize,
        per_second: usize,
    ) -> std::io::Result<SmartleadLimit> {
        let state = Arc::new(Mutex::new(State {
            per_minute,
            per_second,
            keys: HashMap::new(),
            calls: Vec::new(),
            leads: HashMap::new(),
        }));
        let s = state.clone();
        let url = serve(sync_handler(move |req| on_request(&s, req))).await?;
        Ok(SmartleadLimit {
            base: format!("{url}/api/v1"),
            state,
        })
    }

    /// Every call (all keys), in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    pub fn accepted(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::accepted).collect()
    }

    /// The address a lead id this stand-in handed out stands for.
    pub fn lead_email(&self, id: &str) -> Option<String> {
        let id: u64 = id.parse().ok()?;
        let s = self.state.lock().ok()?;
        s.leads
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
    }
}

/// A query parameter, percent-decoded (`%40` in addresses).
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn without_key(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.starts_with("api_key="))
        .collect::<Vec<_>>()
        .join("&")
}

fn on_request(state: &Mutex<State>, req: Req) -> super::Answer {
    let now = Instant::now();
    let Ok(mut s) = state.lock() else {
        return answer(500, &[], "poisoned".into());
    };
    let (status, headers, body) = match param(&req.query, "api_key") {
        None => (
            401,
            Vec::new(),
            json!({"error": "api_key is required"}).to_string(),
        ),
        Some(key) => admit(&mut s, &key, now, &req),
    };
    s.calls.push(Call {
        at: now,
        method: req.method,
        path: req.path,
        query: without_key(&req.query),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status,
    });
    let mut headers = headers;
    headers.push(("content-type", "application/json".into()));
    answer(status, &headers, body)
}

/// The key's budget decides: the answer, or 429 with how long to wait.
fn admit(
    s: &mut State,
    key: &str,
    now: Instant,
    req: &Req,
) -> (u16, Vec<(&'static str, String)>, String) {
    let (per_minute, per_second) = (s.per_minute, s.per_second);
    let (minute, second) = s.keys.entry(key.to_owned()).or_insert_with(|| {
        (
            Window::new(per_minute, Duration::from_secs(60)),
            Window::new(per_second, Duration::from_secs(1)),
        )
    });
    let wait = minute.wait(now).max(second.wait(now));
    if wait.is_zero() {
        minute.push(now);
        second.push(now);
    }
    let mut headers = vec![
        ("x-ratelimit-limit", minute.limit().to_string()),
        ("x-ratelimit-remaining", minute.remaining(now).to_string()),
        (
            "x-ratelimit-reset",
            unix_secs(minute.frees_at(now)).to_string(),
        ),
    ];
    if !wait.is_zero() {
        let secs = ceil_secs(wait).max(1);
        headers.push(("retry-after", secs.to_string()));
        let body = json!({"error": {"code": "RATE_LIMIT_EXCEEDED",
            "message": format!("Too many requests. Please retry after {secs} seconds."),
            "retry_after": secs}});
        return (429, headers, body.to_string());
    }
    (200, headers, route(s, req).to_string())
}

/// What an accepted request is answered.
fn route(s: &mut State, req: &Req) -> serde_json::Value {
    let path = req.path.trim_end_matches('/');
    if req.method == "GET" && path.ends_with("/leads") {
        let Some(email) = param(&req.query, "email") else {
            return json!({});
        };
        let next = FIRST_LEAD_ID + s.leads.len() as u64;
        let id = *s.leads.entry(email.to_ascii_lowercase()).or_insert(next);
        return json!({"id": id, "email": email});
    }
    json!({"ok": true})
}
