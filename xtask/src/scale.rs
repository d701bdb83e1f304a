//! `xtask scale`: a campaign book at scale in DynamoDB Local, and what the
//! tools' reads cost on it. Leads are spread over campaigns unevenly (the
//! `c`-th campaign gets a share in proportion to 1/(c+1): 28 % in the
//! largest of 20); every lead is sent step 1, then, by one seeded draw,
//! bounces (2 %), unsubscribes (1 %) or opens (40 %), and of those who
//! open some click (5 % of all) and fewer reply (3 %, all of them
//! clickers). Events go through the consumer's plan and store (its state
//! writes; no fan-out mark, no first-seen record). Units are as DynamoDB
//! Local reports them. The same seed gives the same book.

use anyhow::Result;
use serde_json::{json, Value};
use smartlead::adapters::aws::dynamodb::DynamoStore;
use smartlead::app::store::ApplyOutcome;
use std::time::Instant;

/// What a book of leads is.
#[derive(Debug, Clone, Copy)]
pub struct Book {
    pub leads: usize,
    pub campaigns: usize,
    pub seed: u64,
}

/// What writing a book and reading it back measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub leads: usize,
    pub campaigns: usize,
    pub events: usize,
    /// Events the store applied (the others were taken for duplicates).
    pub applied: usize,
    pub largest_campaign_leads: usize,
    pub write_seconds: f64,
    /// DynamoDB's consumed write units, indexes included.
    pub write_units: f64,
    pub suppressed: usize,
    /// `smartlead suppression`'s read: time and read units.
    pub suppression_seconds: f64,
    pub suppression_read_units: f64,
}

/// xorshift64*: a seeded, dependency-free draw in [0, 1).
fn draw(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// Lead `n`'s campaign: shares in proportion to 1/(c+1).
fn campaign_of(u: f64, campaigns: usize) -> usize {
    let total: f64 = (1..=campaigns).map(|c| 1.0 / c as f64).sum();
    let mut acc = 0.0;
    for c in 0..campaigns {
        acc += 1.0 / (c + 1) as f64 / total;
        if u < acc {
            return c;
        }
    }
    campaigns - 1
}

/// Every event of the book, lead by lead: (lead's campaign, events).
/// At least one campaign.
pub fn events(b: Book) -> Vec<(usize, Vec<Value>)> {
    let b = Book {
        campaigns: b.campaigns.max(1),
        ..b
    };
    let mut state = b.seed.max(1);
    let t = |min: u64| {
        format!(
            "2025-03-{:02}T{:02}:{:02}:00Z",
            1 + min / 1440 % 28,
            min / 60 % 24,
            min % 60
        )
    };
    (0..b.leads)
        .map(|n| {
            let c = campaign_of(draw(&mut state), b.campaigns) as u64 + 1;
            let to = format!("lead{n}@book{c}.example");
            let start = (n as u64 * 7) % 20_000;
            let ev = |ty: &str, at: u64| {
                json!({"event_type": ty, "to_email": to, "lead_email": to, "campaign_id": c,
                       "sequence_number": 1, "event_timestamp": t(start + at),
                       "stats_id": format!("{n}-{ty}")})
            };
            let mut evs = vec![ev("EMAIL_SENT", 0)];
            let u = draw(&mut state);
            if u < 0.02 {
                evs.push(ev("EMAIL_BOUNCE", 1));
            } else if u < 0.03 {
                evs.push(ev("LEAD_UNSUBSCRIBED", 90));
            } else if u < 0.43 {
                evs.push(ev("EMAIL_OPEN", 60));
                if u < 0.08 {
                    evs.push(ev("EMAIL_LINK_CLICK", 61));
                }
                if u < 0.06 {
                    let mut r = ev("EMAIL_REPLY", 120);
                    r["preview_text"] = json!("Interested, tell me more");
                    evs.push(r);
                }
            }
            (c as usize, evs)
        })
        .collect()
}

/// Writes `b` into `store` (`parallel` events at once), then reads it back
/// as the tools do.
pub async fn run(store: &DynamoStore, b: Book, parallel: usize) -> Result<Figures> {
    let book = events(b);
    let mut per_campaign = vec![0usize; b.campaigns.max(1) + 1];
    for (c, _) in &book {
        per_campaign[*c] += 1;
    }
    let bodies: Vec<Value> = book.into_iter().flat_map(|(_, e)| e).collect();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let (mut units, mut events, mut applied) = (0.0, 0, 0);
    let mut tally = |r: Option<f64>| {
        if let Some(u) = r {
            units += u;
            applied += 1;
        }
    };
    for (i, body) in bodies.into_iter().enumerate() {
        if set.len() >= parallel.max(1) {
            tally(set.join_next().await.expect("a task")??);
        }
        let store = store.clone();
        set.spawn(async move { apply(&store, body, i).await });
        events += 1;
    }
    while let Some(r) = set.join_next().await {
        tally(r??);
    }
    let write_seconds = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let (suppressed, read_units) = store.suppressed_counted(None).await?;
    Ok(Figures {
        leads: b.leads,
        campaigns: b.campaigns,
        events,
        applied,
        largest_campaign_leads: per_campaign.into_iter().max().unwrap_or(0),
        write_seconds,
        write_units: units,
        suppressed: suppressed.len(),
        suppression_seconds: t.elapsed().as_secs_f64(),
        suppression_read_units: read_units,
    })
}

/// One event applied: its write units, `None` if taken for a duplicate.
async fn apply(store: &DynamoStore, body: Value, i: usize) -> Result<Option<f64>> {
    let outcome = test_support::store::apply_body(store, body, &format!("scale-{i}"))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(match outcome {
        ApplyOutcome::Applied { write_units, .. } => Some(write_units),
        _ => None,
    })
}

/// The figures as BENCHMARKS.md shows them.
pub fn markdown(f: &Figures) -> String {
    format!(
        "| leads | campaigns (largest) | events | written in | write units (per event) | suppressed | `suppression`: time, read units |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {} ({} leads) | {} | {:.1} s | {:.0} ({:.3}) | {} | {:.2} s, {:.1} RRU |\n",
        f.leads,
        f.campaigns,
        f.largest_campaign_leads,
        f.events,
        f.write_seconds,
        f.write_units,
        f.write_units / f.events.max(1) as f64,
        f.suppressed,
        f.suppression_seconds,
        f.suppression_read_units,
    )
}
