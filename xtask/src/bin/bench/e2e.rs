//! End to end over HTTP on the local stack, and the consumer's rate by batch size.
#[allow(unused_imports)]
use super::*;

// ------------------------------------------------------------- end to end

#[derive(Debug, Clone, serde::Serialize)]
pub struct E2e {
    pub concurrency: usize,
    pub events: usize,
    /// Webhooks stored per second, first POST to last record stored.
    pub stored_per_s: f64,
    /// Webhooks accepted (200) per second.
    pub accepted_per_s: f64,
    pub post_ms: Stats,
    pub post_to_stored_ms: Stats,
    #[serde(skip)]
    pub samples: Vec<f64>,
}

pub(crate) type DoneMap = Arc<Mutex<HashMap<String, Instant>>>;

/// Pollers that record when each message's state was stored.
pub(crate) fn spawn_pollers(
    stack: Arc<Stack>,
    consumer: Pool,
    done: DoneMap,
    pollers: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..pollers)
        .map(|_| {
            let (stack, consumer, done) = (stack.clone(), consumer.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    // The effects the webhooks queued, in turn (the emulator
                    // answers one invoke at a time).
                    let _ = pipeline::poll_effects(&stack, &consumer, 10, 0).await;
                    match pipeline::poll_once(&stack, &consumer, 10, 1).await {
                        Ok(p) => {
                            if let (Some(at), Ok(mut d)) = (p.answered_at, done.lock()) {
                                for id in p.done {
                                    d.entry(id).or_insert(at);
                                }
                            }
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        })
        .collect()
}

pub(crate) async fn e2e(
    http_port: u16,
    done: &DoneMap,
    concurrency: usize,
    events: usize,
) -> Result<E2e> {
    let url = format!(
        "http://127.0.0.1:{http_port}/webhooks/smartlead?token={}",
        pipeline::TOKEN
    );
    let started = Instant::now();
    let posted = post_all(&url, concurrency, events).await?;
    let accepted_at = Instant::now();
    wait_stored(done, &posted, events).await?;
    let d = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let stored: Vec<f64> = posted
        .iter()
        .map(|(id, t, _)| ms(d[id].saturating_duration_since(*t)))
        .collect();
    let last = posted
        .iter()
        .map(|(id, _, _)| d[id])
        .max()
        .unwrap_or(started);
    Ok(E2e {
        concurrency,
        events,
        stored_per_s: events as f64 / last.duration_since(started).as_secs_f64(),
        accepted_per_s: events as f64 / accepted_at.duration_since(started).as_secs_f64(),
        post_ms: Stats::of(
            &posted
                .iter()
                .map(|(_, t, e)| ms(e.duration_since(*t)))
                .collect::<Vec<_>>(),
        ),
        post_to_stored_ms: Stats::of(&stored),
        samples: stored,
    })
}

/// A webhook POSTed: its message id, when it was sent and when answered.
type Posted = (String, Instant, Instant);

/// `events` webhooks POSTed to `url` by `concurrency` workers.
async fn post_all(url: &str, concurrency: usize, events: usize) -> Result<Vec<Posted>> {
    let http = smartlead::adapters::http::client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let run = format!("e2e-c{concurrency}-{}", std::process::id());
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next, run) = (http.clone(), url.to_owned(), next.clone(), run.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    return Ok::<_, anyhow::Error>(out);
                }
                let body = open_body(&format!("{run}-{i}@bench.example"), i as u32);
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let ended = Instant::now();
                if status != 200 {
                    bail!("POST answered {status}: {v}");
                }
                let id = v["id"].as_str().context("no id in the answer")?.to_owned();
                out.push((id, t, ended));
            }
        }));
    }
    let mut posted = Vec::new();
    for w in workers {
        posted.extend(w.await??);
    }
    Ok(posted)
}

/// Waits (180 s at most) until the pollers stored every webhook posted.
async fn wait_stored(done: &DoneMap, posted: &[Posted], events: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let missing = {
            let d = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            posted
                .iter()
                .filter(|(id, _, _)| !d.contains_key(id))
                .count()
        };
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{missing} of {events} events were not stored within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerRate {
    pub batch: i32,
    pub events: usize,
    pub events_per_s: f64,
    /// The emulator's REPORT Duration per invoke (what Lambda bills), ms.
    pub invoke_billed_ms: Stats,
}

pub(crate) async fn consumer_rate(
    stack: &Stack,
    consumer: &Pool,
    batch: i32,
    events: usize,
) -> Result<ConsumerRate> {
    use smartlead::aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let run = format!("rate-b{batch}-{}", std::process::id());
    for chunk in (0..events).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|&i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(open_body(&format!("{run}-{i}@bench.example"), i as u32))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        stack
            .sqs
            .send_message_batch()
            .queue_url(&stack.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    let offset = log_len(&stack.consumer.log);
    let started = Instant::now();
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored < events {
        if Instant::now() > deadline {
            bail!("batch {batch}: {stored} of {events} stored within 300 s");
        }
        stored += pipeline::poll_once(stack, consumer, batch, 0)
            .await?
            .done
            .len();
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(ConsumerRate {
        batch,
        events,
        events_per_s: events as f64 / elapsed.as_secs_f64(),
        invoke_billed_ms: Stats::of(&report_durations(&log_lines(&stack.consumer.log, offset).0)),
    })
}
