//! `xtask scale`: a campaign book at scale in DynamoDB Local, and what the
//! tools' reads cost on it. Leads are spread over campaigns unevenly (the
//! `c`-th campaign gets a share in proportion to 1/(c+1): 28 % in the
//! largest of 20); every lead is sent step 1, then, by a seeded draw,
//! bounces (2 %), unsubscribes after step 2 (1 %), or is sent steps 2
//! and 3, opening each 1 to 4 times if it opens (40 %); some openers
//! click (5 % of all), fewer reply after step 2 (3 %, all of them
//! clickers; no step 3 then) and are categorized. A few sending accounts
//! disconnect and the two largest campaigns breach their bounce
//! threshold. Events go through the consumer's plan and store (its state
//! writes; no fan-out mark, no first-seen record), each lead's in time
//! order, `--parallel` leads at once. Units are as DynamoDB
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
    /// Of which the indexes': the same events on a table without them
    /// consumed `write_units - index_write_units`.
    pub index_write_units: f64,
    pub suppressed: usize,
    /// `smartlead suppression`'s read: time and read units.
    pub suppression_seconds: f64,
    pub suppression_read_units: f64,
}

/// One verb of the CLI run on the book: its arguments, wall time (the
/// process included) and the read units it reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verb {
    pub args: String,
    pub seconds: f64,
    pub read_units: f64,
    /// What it answered, in a few words.
    pub answer: String,
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
    (0..b.leads)
        .map(|n| {
            let c = campaign_of(draw(&mut state), b.campaigns) + 1;
            let u = draw(&mut state);
            let v = draw(&mut state);
            (c, lead(n, c, u, v))
        })
        .collect()
}

/// The book's events that are not a lead's: sending accounts that
/// disconnect (one in 5,000 leads, at least one), and the two largest
/// campaigns over their bounce threshold.
pub fn health_events(b: Book) -> Vec<Value> {
    let mut out = Vec::new();
    for a in 0..(b.leads / 5_000).max(1) {
        let at = (a as u64 * 613) % 20_000;
        out.push(json!({"eventType": "EMAIL_ACCOUNT_DISCONNECTED",
            "accountId": 7_000 + a, "email": format!("sender{a}@outreach.example"),
            "error": "IMAP authentication failed", "timestamp": t(at)}));
    }
    for c in 1..=b.campaigns.clamp(1, 2) {
        out.push(
            json!({"eventType": "CAMPAIGN_BOUNCE_BREACH", "campaignId": c,
            "campaignName": format!("Book {c}"), "bounceRate": 5.5, "threshold": 5,
            "message": "Bounce rate over threshold", "timestamp": t(19_000)}),
        );
    }
    out
}

/// Minute `min` of March 2025 (and on), as SmartLead writes times.
fn t(min: u64) -> String {
    format!(
        "2025-03-{:02}T{:02}:{:02}:00Z",
        1 + min / 1440 % 28,
        min / 60 % 24,
        min % 60
    )
}

/// Lead `n` of campaign `c`, by two draws: `u` picks its path (bounces
/// 2 %, unsubscribes 1 %, opens 40 %, of whom some click (5 % of all) and
/// fewer reply (3 %, then categorized: half Interested)); `v` how often
/// an opener opens (1 to 4 times per step).
fn lead(n: usize, c: usize, u: f64, v: f64) -> Vec<Value> {
    let to = format!("lead{n}@book{c}.example");
    let start = (n as u64 * 7) % 20_000;
    let ev = |ty: &str, at: u64, step: u64| {
        json!({"event_type": ty, "to_email": to, "lead_email": to, "campaign_id": c,
               "sequence_number": step, "event_timestamp": t(start + at),
               "stats_id": format!("{n}-{ty}-{at}")})
    };
    let day = 1440;
    let mut evs = vec![ev("EMAIL_SENT", 0, 1)];
    if u < 0.02 {
        evs.push(ev("EMAIL_BOUNCE", 1, 1));
        return evs;
    }
    if u < 0.03 {
        evs.push(ev("EMAIL_SENT", 3 * day, 2));
        evs.push(ev("LEAD_UNSUBSCRIBED", 3 * day + 90, 2));
        return evs;
    }
    let replies = u < 0.06;
    let steps: u64 = if replies { 2 } else { 3 };
    for step in 1..=steps {
        let sent = (step - 1) * 3 * day;
        if step > 1 {
            evs.push(ev("EMAIL_SENT", sent, step));
        }
        if u < 0.43 {
            for k in 0..1 + (v * 4.0) as u64 {
                evs.push(ev("EMAIL_OPEN", sent + 60 + k * 180, step));
            }
        }
    }
    if u < 0.08 {
        evs.push(ev("EMAIL_LINK_CLICK", 61, 1));
    }
    if replies {
        let mut r = ev("EMAIL_REPLY", 3 * day + 120, 2);
        r["preview_text"] = json!("Interested, tell me more");
        evs.push(r);
        let category = if v < 0.5 {
            "Interested"
        } else {
            "Not Interested"
        };
        evs.push(
            json!({"event_type": "LEAD_CATEGORY_UPDATED", "lead_email": to,
            "campaign_id": c, "category": category, "event_timestamp": t(start + 3 * day + 180)}),
        );
    }
    // In time order, as SmartLead sends them (the times sort as text).
    evs.sort_by(|a, b| {
        a["event_timestamp"]
            .as_str()
            .cmp(&b["event_timestamp"].as_str())
    });
    evs
}

/// Writes `b` into `store` and, for the indexes' share, into `bare` (the
/// same table without indexes), `parallel` leads at once (each lead's events in order); then reads it
/// back as `smartlead suppression` does.
pub async fn run(
    store: &DynamoStore,
    bare: &DynamoStore,
    b: Book,
    parallel: usize,
) -> Result<Figures> {
    let book = events(b);
    let mut per_campaign = vec![0usize; b.campaigns.max(1) + 1];
    for (c, _) in &book {
        per_campaign[*c] += 1;
    }
    // A lead's events in their order (SmartLead sends them over days),
    // `parallel` leads at once; each event into both tables.
    let units_of_work: Vec<Vec<Value>> = book
        .into_iter()
        .map(|(_, e)| e)
        .chain(health_events(b).into_iter().map(|e| vec![e]))
        .collect();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let (mut units, mut bare_units, mut events, mut applied) = (0.0, 0.0, 0, 0);
    let mut tally = |r: (f64, f64, usize)| {
        units += r.0;
        bare_units += r.1;
        applied += r.2;
    };
    for (n, lead) in units_of_work.into_iter().enumerate() {
        if set.len() >= parallel.max(1) {
            tally(set.join_next().await.expect("a task")??);
        }
        events += lead.len();
        let (store, bare) = (store.clone(), bare.clone());
        set.spawn(async move {
            let mut sum = (0.0, 0.0, 0);
            for (k, body) in lead.into_iter().enumerate() {
                let id = n * 100 + k;
                let (a, b) = tokio::join!(apply(&store, body.clone(), id), apply(&bare, body, id));
                if let Some(u) = a? {
                    sum.0 += u;
                    sum.2 += 1;
                }
                sum.1 += b?.unwrap_or(0.0);
            }
            Ok::<_, anyhow::Error>(sum)
        });
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
        index_write_units: units - bare_units,
        suppressed: suppressed.len(),
        suppression_seconds: t.elapsed().as_secs_f64(),
        suppression_read_units: read_units,
    })
}

/// The list verbs on the largest campaign (`1`), through the `smartlead`
/// binary at `cli` against the local stack's table on DynamoDB Local at
/// `port`: each one's time and the read units it reports on stderr.
pub fn verbs(cli: &std::path::Path, port: u16) -> Result<Vec<Verb>> {
    let html = std::env::temp_dir().join(format!("scale-report-{}.html", std::process::id()));
    let html = html.to_string_lossy().into_owned();
    let runs: [&[&str]; 8] = [
        &["leads", "--campaign", "1", "--status", "replied"],
        &["leads", "--campaign", "1", "--status", "interested"],
        &["leads", "--campaign", "1", "--status", "engaged"],
        &["leads", "--campaign", "1", "--status", "bounced"],
        &["campaign", "1"],
        &["campaign", "1", "--html", &html],
        &["accounts"],
        &["suppression", "--csv"],
    ];
    let mut out = Vec::new();
    for args in runs {
        let t = Instant::now();
        let o = std::process::Command::new(cli)
            .args(args)
            .args(["--local", "--dynamodb-port", &port.to_string()])
            .output()?;
        let seconds = t.elapsed().as_secs_f64();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        anyhow::ensure!(o.status.success(), "smartlead {args:?}: {stderr}");
        let read_units = stderr
            .lines()
            .find_map(|l| {
                l.strip_prefix("read ")?
                    .strip_suffix(" read units")?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| {
                anyhow::anyhow!("smartlead {args:?} reported no read units: {stderr}")
            })?;
        let answer = if args[0] == "campaign" && args.len() > 2 {
            "one HTML page".to_owned()
        } else {
            stdout.lines().next().unwrap_or_default().to_owned()
        };
        let shown = args
            .iter()
            .map(|a| if *a == html { "report.html" } else { a });
        out.push(Verb {
            args: shown.collect::<Vec<_>>().join(" "),
            seconds,
            read_units,
            answer,
        });
    }
    Ok(out)
}

/// `xtask scale`: the book written into DynamoDB Local (started for it)
/// under the local stack's table name, so `smartlead --local` reads it,
/// and into a table without indexes; then the list verbs of the
/// `smartlead` binary beside this one.
pub async fn measure(b: Book, parallel: usize) -> Result<(Figures, Vec<Verb>)> {
    let endpoint = test_support::store::dynamodb().endpoint();
    let store = test_support::store::store_at(&endpoint, smartlead::local_stack::TABLE).await;
    let bare = test_support::store::bare_store_at(&endpoint, "scale-bare").await;
    let cli = std::env::current_exe()?.with_file_name("smartlead");
    anyhow::ensure!(
        cli.exists(),
        "{} is missing: build it beside xtask first \
         (cargo build --release --workspace --bin smartlead --bin xtask)",
        cli.display()
    );
    let f = run(&store, &bare, b, parallel).await?;
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {endpoint}"))?;
    Ok((f, verbs(&cli, port)?))
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
pub fn markdown(f: &Figures, verbs: &[Verb]) -> String {
    let per = |u: f64| u / f.events.max(1) as f64;
    let mut m = format!(
        "| leads | campaigns (largest) | events | written in | write units (per event) | of which indexes (per event) | suppressed |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {} ({} leads) | {} | {:.1} s | {:.0} ({:.3}) | {:.0} (+{:.3}) | {} |\n",
        f.leads,
        f.campaigns,
        f.largest_campaign_leads,
        f.events,
        f.write_seconds,
        f.write_units,
        per(f.write_units),
        f.index_write_units,
        per(f.index_write_units),
        f.suppressed,
    );
    m.push_str(
        "\n| verb (largest campaign) | time | read units | first line |\n|---|---|---|---|\n",
    );
    for v in verbs {
        m.push_str(&format!(
            "| `smartlead {}` | {:.2} s | {:.1} | {} |\n",
            v.args,
            v.seconds,
            v.read_units,
            v.answer.trim().replace('|', "\\|")
        ));
    }
    m
}
