//! Slack's incoming webhooks, with their limit: one message a second per
//! webhook URL (<https://api.slack.com/docs/rate-limits>, "Posting
//! messages"; incoming webhooks). Slack tolerates short bursts without
//! promising them; this stand-in allows none: a message less than a second
//! after the last one it accepted on the same URL is answered 429 with
//! `Retry-After` (whole seconds), as Slack answers.

use super::{answer, ceil_secs, serve, sync_handler, Call, Req, Window};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages a webhook URL takes per [`SPAN`].
pub const PER_SECOND: usize = 1;
const SPAN: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    per_url: HashMap<String, Window>,
    calls: Vec<Call>,
}

/// A Slack stand-in on 127.0.0.1: any path is a webhook URL of its own.
#[derive(Clone)]
pub struct SlackLimit {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl SlackLimit {
    pub async fn start() -> std::io::Result<SlackLimit> {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let url = serve(sync_handler(move |req| on_message(&s, req))).await?;
        Ok(SlackLimit { url, state })
    }

    /// A webhook URL of this stand-in (`/services/<name>`).
    pub fn webhook(&self, name: &str) -> String {
        format!("{}/services/{name}", self.url)
    }

    /// Every call, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    /// The messages Slack would have posted.
    pub fn accepted(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::accepted).collect()
    }
}

fn on_message(state: &Mutex<State>, req: Req) -> super::Answer {
    let now = Instant::now();
    let Ok(mut s) = state.lock() else {
        return answer(500, &[], "poisoned".into());
    };
    let window = s
        .per_url
        .entry(req.path.clone())
        .or_insert_with(|| Window::new(PER_SECOND, SPAN));
    let wait = window.wait(now);
    let status = if wait.is_zero() {
        window.push(now);
        200
    } else {
        429
    };
    s.calls.push(Call {
        at: now,
        method: req.method,
        path: req.path,
        query: req.query,
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status,
    });
    if status == 200 {
        answer(200, &[("content-type", "text/plain".into())], "ok".into())
    } else {
        let retry = ceil_secs(wait).max(1).to_string();
        answer(
            429,
            &[
                ("retry-after", retry),
                ("content-type", "text/plain".into()),
            ],
            "rate_limited".into(),
        )
    }
}
