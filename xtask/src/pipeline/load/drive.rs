//! The clients that POST the mix on its schedule, and the wait for the
//! queues to empty.

use super::mix::Mix;
use super::{Harness, Queue};
use anyhow::Result;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One delivery as the client saw it.
#[derive(Debug, Clone)]
pub struct Posted {
    pub event: usize,
    pub duplicate: bool,
    pub sent: Instant,
    /// When the last try was answered.
    pub answered: Instant,
    /// The last try's status (0: no answer).
    pub status: u16,
    pub tries: u32,
}

impl Posted {
    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

/// SmartLead sends a webhook again when it gets no 2xx: tries per delivery.
const TRIES: u32 = 3;
/// API Gateway's integration timeout.
const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every delivery of `mix`, each POSTed at its time from `start` by one of
/// `clients` clients (later when all are busy).
pub async fn post_all(url: &str, mix: &Mix, clients: usize, start: Instant) -> Vec<Posted> {
    let http = smartlead::adapters::http::client();
    let next = Arc::new(AtomicUsize::new(0));
    let total = mix.deliveries.len();
    let progress = {
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let sent = next.load(Ordering::Relaxed).min(total);
                println!(
                    "{:>5.0} s  {sent} of {total} webhooks sent",
                    start.elapsed().as_secs_f64()
                );
            }
        })
    };
    let deliveries = Arc::new(mix.deliveries.clone());
    let workers: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (http, url, next, deliveries) = (
                http.clone(),
                url.to_owned(),
                next.clone(),
                deliveries.clone(),
            );
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = deliveries.get(i) else {
                        return out;
                    };
                    tokio::time::sleep_until((start + d.at).into()).await;
                    let sent = Instant::now();
                    let (status, tries) = post(&http, &url, &d.body).await;
                    out.push(Posted {
                        event: d.event,
                        duplicate: d.duplicate,
                        sent,
                        answered: Instant::now(),
                        status,
                        tries,
                    });
                }
            })
        })
        .collect();
    let mut posted = Vec::new();
    for w in workers {
        posted.extend(w.await.unwrap_or_default());
    }
    progress.abort();
    posted
}

/// POSTs a body until it is accepted (or [`TRIES`] times): (status, tries).
async fn post(http: &reqwest::Client, url: &str, body: &str) -> (u16, u32) {
    let mut status = 0;
    for tries in 1..=TRIES {
        let r = http
            .post(url)
            .timeout(POST_TIMEOUT)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        status = r.map(|r| r.status().as_u16()).unwrap_or(0);
        if status == 200 || (400..500).contains(&status) {
            return (status, tries);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (status, TRIES)
}

/// How the wait for the queues ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drained {
    /// Seconds from the last POST to empty queues (or to the time limit).
    pub secs: f64,
    pub empty: bool,
}

/// Messages in a queue (visible and in flight).
pub async fn depth_of(q: &Queue) -> Result<usize> {
    let (v, i) = in_queue(q).await?;
    Ok(v + i)
}

/// Messages in a queue, visible and in flight (moto, busy, may take a few tries).
async fn in_queue(q: &Queue) -> Result<(usize, usize)> {
    let mut tries = 0;
    loop {
        tries += 1;
        match crate::pipeline::depth(&q.sqs, &q.url).await {
            Ok((v, i)) => return Ok((v.parse().unwrap_or(0), i.parse().unwrap_or(0))),
            Err(e) if tries >= 5 => return Err(e.context("reading a queue's depth")),
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Waits until the webhook and effects queues stay empty for a few
/// seconds, or `limit`; prints where things stand now and then.
pub async fn drain(h: &Harness, limit: Duration) -> Result<Drained> {
    let from = Instant::now();
    let mut quiet = 0;
    let mut shown = Instant::now();
    loop {
        let main = in_queue(&h.webhooks).await?;
        let effects = in_queue(&h.side.effects).await?;
        let empty = main == (0, 0) && effects == (0, 0);
        quiet = if empty { quiet + 1 } else { 0 };
        let secs = from.elapsed().as_secs_f64();
        if quiet >= 3 || from.elapsed() > limit {
            return Ok(Drained { secs, empty });
        }
        if shown.elapsed() > Duration::from_secs(15) {
            shown = Instant::now();
            let dlq = in_queue(&h.webhooks_dlq).await?.0;
            let effects_dlq = in_queue(&h.side.effects_dlq).await?.0;
            println!(
                "{:>5.0} s  webhook queue {}+{}  effects queue {}+{}  DLQs {dlq}/{effects_dlq}  \
                 Slack {} accepted  SmartLead {} accepted",
                h.started.elapsed().as_secs_f64(),
                main.0,
                main.1,
                effects.0,
                effects.1,
                h.slack.accepted().len(),
                h.smartlead.accepted().len(),
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
