//! `smartlead replay --lead/--campaign`: EventBridge replays only filter by
//! rule, so for the replay the CLI adds, next to each rule it replays to, a
//! temporary copy (`smartlead-replay-...`) whose pattern also requires the
//! lead or campaign, with the same targets; the replay goes to the copies
//! only, and they are deleted when it ends. Replayed events keep their `id`
//! (the dedup key), so subscribers that dedupe on it see duplicates.

mod lead;
mod pattern;
mod rules;

pub use lead::lead_events;
pub use rules::{create, remove};

use anyhow::Result;
use aws_sdk_eventbridge::types::ReplayState;

/// A temporary rule: its name, ARN and target ids.
pub struct Temp {
    pub name: String,
    pub arn: String,
    pub targets: Vec<String>,
}

/// An AWS SDK error (EventBridge, SQS, ...) with what was being done.
fn eb_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    crate::aws_err(what)(e)
}

/// A replay's name, unique even for two replays started in the same second.
pub fn replay_name() -> String {
    format!(
        "smartlead-replay-{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// A bus's name, from its ARN (`.../event-bus/<name>`) or the name itself.
pub fn bus_name(bus: &str) -> String {
    bus.rsplit('/').next().unwrap_or(bus).to_owned()
}

/// Reads of a running replay that may fail in a row before the wait gives up.
const WAIT_READ_ATTEMPTS: u32 = 5;

/// Waits until the replay ends; its final state.
pub async fn wait(
    eb: &aws_sdk_eventbridge::Client,
    replay: &str,
    bar: &indicatif::ProgressBar,
) -> Result<String> {
    let mut failures = 0;
    loop {
        let r = match eb.describe_replay().replay_name(replay).send().await {
            Ok(r) => {
                failures = 0;
                r
            }
            // A passing error (throttling, a dropped connection) must not end
            // the wait while the replay still runs: try again, a few times.
            Err(e) if failures < WAIT_READ_ATTEMPTS => {
                failures += 1;
                eprintln!(
                    "{:#} (trying again)",
                    eb_err(&format!("reading replay {replay}"), e)
                );
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(eb_err(&format!("reading replay {replay}"), e)),
        };
        let state = r.state().cloned();
        bar.set_message(format!(
            "replay {replay}: {}",
            state.as_ref().map(|s| s.as_str()).unwrap_or("?")
        ));
        match state {
            Some(ReplayState::Completed | ReplayState::Failed | ReplayState::Cancelled) | None => {
                let mut s = state.map(|s| s.as_str().to_owned()).unwrap_or_default();
                if let Some(reason) = r.state_reason() {
                    s.push_str(&format!(" ({reason})"));
                }
                return Ok(s);
            }
            _ => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
        }
    }
}
