//! The consumer instances of a load run and the pollers that feed them:
//! what the two SQS event sources do, at the template's `MaximumConcurrency`
//! (each emulator answers one invoke at a time, as one Lambda instance does).

use super::report::Polls;
use super::Queue;
use super::{template_number, LoadOptions, API_KEY};
use crate::pipeline::template::{Template, Value};
use crate::pipeline::{poll_queue, Pool, Stack, EFFECTS_QUEUE, QUEUE};
use anyhow::{Context, Result};
use smartlead::adapters::http::hygiene::Hygiene;
use smartlead::app::effects::{AlertRules, HygieneMode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_support::standins;
use test_support::standins::limits::{DynamoThrottle, SlackLimit, SmartleadLimit};

/// What the pollers saw, summed.
#[derive(Debug, Default)]
pub struct PollCounts {
    pub received: AtomicUsize,
    /// Records reported failed (`batchItemFailures`).
    pub failed: AtomicUsize,
    /// Invokes that failed as a whole (a timeout, a crash): all records back.
    pub invokes_failed: AtomicUsize,
    pub invokes: AtomicUsize,
}

pub struct Fleet {
    pub main: Vec<standins::Service>,
    pub effects: Vec<standins::Service>,
    pub env: Vec<(String, String)>,
    pub batch: i32,
    pub webhook_polls: Arc<PollCounts>,
    pub effect_polls: Arc<PollCounts>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.pollers.iter().for_each(|p| p.abort());
    }
}

/// The consumer's environment: the stack's, pointed at the stand-ins, with
/// list hygiene on and the template's `Timeout`.
pub fn consumer_env(
    t: &Template,
    stack: &Stack,
    slack: &SlackLimit,
    smartlead: &SmartleadLimit,
    dynamodb: &DynamoThrottle,
    hygiene: &str,
) -> Result<Vec<(String, String)>> {
    let timeout: u32 = template_number(t, "ConsumerFunction", &["Timeout"])?;
    let overrides = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.endpoint.clone()),
        ("SLACK_WEBHOOK_URL", slack.webhook("T0LOAD/B0LOAD/load")),
        ("HYGIENE", hygiene.to_owned()),
        ("SMARTLEAD_API_KEY", API_KEY.to_owned()),
        ("SMARTLEAD_API_BASE", smartlead.base.clone()),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", timeout.to_string()),
    ];
    let mut set: Vec<(String, String)> = template_values(t)?;
    set.extend(overrides.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let mut env: Vec<(String, String)> = stack
        .consumer_env
        .iter()
        .filter(|(k, _)| !set.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    env.extend(set);
    Ok(env)
}

/// The consumer's variables template.yaml sets to a plain value (retry
/// base, concurrency, time window...): as deployed, not as the local
/// stack shortens them.
fn template_values(t: &Template) -> Result<Vec<(String, String)>> {
    let vars = t.props("ConsumerFunction")?["Environment"]["Variables"]
        .as_mapping()
        .context("ConsumerFunction has no Environment.Variables")?;
    Ok(vars
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str()?.to_owned(),
                crate::pipeline::template::scalar(v)?,
            ))
        })
        .collect())
}

/// The consumer's event sources in the template: (queue resource, batch
/// size, `MaximumConcurrency`).
fn event_sources(t: &Template) -> Result<Vec<(String, i32, usize)>> {
    let events = t.props("ConsumerFunction")?["Events"]
        .as_mapping()
        .context("ConsumerFunction has no Events")?;
    let mut out = Vec::new();
    for e in events.values() {
        let p = &e["Properties"];
        let queue = match &p["Queue"] {
            Value::Tagged(g) => g
                .value
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(".Arn")
                .to_owned(),
            _ => continue,
        };
        let batch = t
            .resolve(&p["BatchSize"])
            .and_then(|b| b.parse().ok())
            .unwrap_or(10);
        let most = t
            .resolve(&p["ScalingConfig"]["MaximumConcurrency"])
            .and_then(|m| m.parse().ok())
            .unwrap_or(2);
        out.push((queue, batch, most));
    }
    Ok(out)
}

impl Fleet {
    pub fn start(t: &Template, o: &LoadOptions, env: Vec<(String, String)>) -> Result<Fleet> {
        let sources = event_sources(t)?;
        let of = |q: &str| sources.iter().find(|s| s.0 == q).cloned();
        let (_, batch, main_most) = of("WebhookQueue").context("no WebhookQueue event source")?;
        let effects_most = of("EffectsQueue").map_or(0, |s| s.2);
        let bin = o.bin_dir.join("smartlead-consumer");
        let start = |n: usize| -> Result<Vec<standins::Service>> {
            (0..n)
                .map(|_| {
                    standins::start_rie_any(&bin, &env).context("starting a consumer instance")
                })
                .collect()
        };
        Ok(Fleet {
            main: start(o.consumers.unwrap_or(main_most))?,
            effects: start(o.effect_consumers.unwrap_or(effects_most))?,
            env,
            batch,
            webhook_polls: Arc::default(),
            effect_polls: Arc::default(),
            pollers: Vec::new(),
        })
    }

    /// The rules that decide an event's effects, as the consumer reads them.
    pub fn rules(&self) -> Result<(AlertRules, Hygiene)> {
        let var = |k: &str| {
            self.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let alerts = AlertRules::parse(&var("ALERT_EVENTS"), &var("POSITIVE_CATEGORIES"))
            .map_err(|e| anyhow::anyhow!("ALERT_EVENTS: {e}"))?;
        let mode = match var("HYGIENE").as_str() {
            "unsubscribe" => HygieneMode::Unsubscribe,
            _ => HygieneMode::Block,
        };
        let api =
            smartlead::adapters::http::smartlead::Api::new(&var("SMARTLEAD_API_BASE"), API_KEY);
        let hygiene = Hygiene {
            api,
            mode,
            soft_bounces: var("HYGIENE_SOFT_BOUNCES") == "true",
        };
        Ok((alerts, hygiene))
    }

    /// What the pollers saw: (webhook queue, effects queue).
    pub fn counts(&self) -> (Polls, Polls) {
        let of = |c: &PollCounts| Polls {
            invokes: c.invokes.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            invokes_failed: c.invokes_failed.load(Ordering::Relaxed),
        };
        (of(&self.webhook_polls), of(&self.effect_polls))
    }

    pub fn describe(&self) -> String {
        format!(
            "consumers: {} on the webhook queue, {} on the effects queue (batches of {})",
            self.main.len(),
            self.effects.len(),
            self.batch
        )
    }

    /// Starts one poller per instance on each queue.
    pub fn poll(&mut self, webhooks: Queue, effects: Queue) {
        let urls = |s: &[standins::Service]| s.iter().map(standins::rie_invoke_url).collect();
        let sources = [
            (
                Pool::new(urls(&self.main)),
                self.main.len(),
                webhooks,
                QUEUE,
                self.webhook_polls.clone(),
            ),
            (
                Pool::new(urls(&self.effects)),
                self.effects.len(),
                effects,
                EFFECTS_QUEUE,
                self.effect_polls.clone(),
            ),
        ];
        for (pool, instances, queue, name, counts) in sources {
            for _ in 0..instances {
                let (pool, queue, counts, batch) =
                    (pool.clone(), queue.clone(), counts.clone(), self.batch);
                self.pollers.push(tokio::spawn(async move {
                    loop {
                        let p = poll_queue(&queue.sqs, &pool, (&queue.url, name), batch, 1).await;
                        count(&counts, p).await;
                    }
                }));
            }
        }
    }
}

async fn count(c: &PollCounts, p: Result<crate::pipeline::Poll>) {
    match p {
        Ok(p) if p.received > 0 => {
            c.invokes.fetch_add(1, Ordering::Relaxed);
            c.received.fetch_add(p.received, Ordering::Relaxed);
            if p.invoke_failed {
                c.invokes_failed.fetch_add(1, Ordering::Relaxed);
            } else {
                c.failed
                    .fetch_add(p.received - p.done.len(), Ordering::Relaxed);
            }
        }
        Ok(_) => {}
        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
    }
}
