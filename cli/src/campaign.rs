//! `smartlead campaign <id>`: the funnel of one campaign (leads per
//! status, per day, replies per step, categories, the newest replies),
//! read from the table's indexes (one `Query` per index partition, every
//! page; no `Scan`), as text, JSON or one self-contained HTML page.

use crate::lists::{cut_since, engaged, newest_first, Entry, Listed, Lists, OneCampaign, Status};
use anyhow::{Context, Result};
use serde::Serialize;
use smartlead::adapters::aws::dynamodb::index::{CATEGORIZED, CLICKED, OPENED, REPLIED};
use smartlead::domain::time::EventTime;
use std::collections::BTreeMap;

/// How many of the newest replies the funnel shows.
pub const NEWEST_REPLIES: usize = 10;

#[derive(clap::Args)]
pub struct CampaignArgs {
    /// The campaign's SmartLead id.
    pub campaign: String,
    /// From when (entering each status): a span back from now (`90m`,
    /// `24h`, `7d`) or an RFC 3339 time. The campaign's whole life without it.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write the funnel as one self-contained HTML page to this file.
    #[arg(long)]
    pub html: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub of: OneCampaign,
}

/// One campaign's funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    pub campaign: String,
    pub since: Option<String>,
    /// Leads per status (each lead once per status).
    pub totals: BTreeMap<Status, usize>,
    /// Leads entering each status, per UTC day (`YYYY-MM-DD`).
    pub per_day: BTreeMap<String, BTreeMap<Status, usize>>,
    /// Replied leads by the deepest step sent to them (`?`: no step known).
    pub replies_by_step: BTreeMap<String, usize>,
    /// Leads per latest category.
    pub categories: BTreeMap<String, usize>,
    /// The newest replies, newest first.
    pub newest_replies: Vec<Listed>,
    /// DynamoDB read units the funnel consumed.
    pub read_units: f64,
}

/// Reads the funnel of `lists`' campaign.
pub async fn funnel(lists: &Lists, since: Option<EventTime>) -> Result<Funnel> {
    // Whole, for engaged (the earlier of the two), then cut.
    let opened = lists.status_index(OPENED, None).await?;
    let clicked = lists.status_index(CLICKED, None).await?;
    let engaged_all = cut_since(engaged(opened.clone(), clicked.clone()), since);
    let (opened, clicked) = (cut_since(opened, since), cut_since(clicked, since));
    let mut replied = lists.status_index(REPLIED, since).await?;
    newest_first(&mut replied);
    let categorized = lists.status_index(CATEGORIZED, since).await?;
    let suppression = lists.suppression_list(since).await?;
    let mut by_status: Vec<(Status, Vec<Entry>)> = vec![
        (Status::Engaged, engaged_all),
        (Status::Opened, opened),
        (Status::Clicked, clicked),
        (Status::Replied, replied.clone()),
        (
            Status::Interested,
            categorized
                .iter()
                .filter(|e| lists.is_positive(e))
                .cloned()
                .collect(),
        ),
    ];
    for st in [Status::Bounced, Status::Unsubscribed] {
        by_status.push((st, lists.suppressed(&suppression, st)));
    }
    let mut f = Funnel {
        campaign: lists.campaign.clone(),
        since: since.map(|t| t.to_string()),
        totals: BTreeMap::new(),
        per_day: BTreeMap::new(),
        replies_by_step: BTreeMap::new(),
        categories: BTreeMap::new(),
        newest_replies: Vec::new(),
        read_units: 0.0,
    };
    for (st, entries) in &by_status {
        f.totals.insert(*st, entries.len());
        for e in entries {
            let day = e.at.get(..10).unwrap_or(&e.at).to_owned();
            *f.per_day.entry(day).or_default().entry(*st).or_default() += 1;
        }
    }
    for e in &categorized {
        *f.categories.entry(e.category.clone()).or_default() += 1;
    }
    // Steps: the replied leads' campaign items; previews: the newest's replies.
    let pks: Vec<String> = replied.iter().map(|e| e.pk.clone()).collect();
    let steps = lists.details(&pks, false).await?;
    for e in &replied {
        let step = steps
            .get(&e.pk)
            .and_then(|(c, _)| crate::lists::step_of(c))
            .map_or_else(|| "?".to_owned(), |s| s.to_string());
        *f.replies_by_step.entry(step).or_default() += 1;
    }
    let newest = &replied[..replied.len().min(NEWEST_REPLIES)];
    let pks: Vec<String> = newest.iter().map(|e| e.pk.clone()).collect();
    let details = lists.details(&pks, true).await?;
    f.newest_replies = newest
        .iter()
        .map(|e| Listed::of(e, Status::Replied, details.get(&e.pk)))
        .collect();
    f.read_units = lists.units.get();
    Ok(f)
}

/// `smartlead campaign`.
pub async fn campaign(a: &CampaignArgs) -> Result<()> {
    let since = crate::lists::since(a.since.as_deref())?;
    let lists = a.of.lists(&a.campaign).await?;
    let f = funnel(&lists, since).await?;
    if let Some(path) = &a.html {
        std::fs::write(path, crate::report::html(&f, EventTime::now()))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        print!("{}", render(&f));
    }
    crate::lists::read_units(f.read_units);
    Ok(())
}

/// The funnel as text: totals, then a line per day, then steps and categories.
pub fn render(f: &Funnel) -> String {
    let mut out = format!("campaign {}", f.campaign.escape_debug());
    if let Some(s) = &f.since {
        out.push_str(&format!(" since {s}"));
    }
    out.push('\n');
    for (st, n) in &f.totals {
        out.push_str(&format!("  {:<13} {n}\n", st.name()));
    }
    if !f.per_day.is_empty() {
        out.push_str("\nper day     ");
        for st in Status::ALL {
            out.push_str(&format!(" {:>12}", st.name()));
        }
        out.push('\n');
        for (day, counts) in &f.per_day {
            out.push_str(&format!("  {day}"));
            for st in Status::ALL {
                out.push_str(&format!(" {:>12}", counts.get(&st).copied().unwrap_or(0)));
            }
            out.push('\n');
        }
    }
    let list = |title: &str, m: &BTreeMap<String, usize>| {
        let items: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}: {v}", k.escape_debug()))
            .collect();
        format!("\n{title}: {}\n", items.join(", "))
    };
    if !f.replies_by_step.is_empty() {
        out.push_str(&list(
            "replied, by the deepest step sent",
            &f.replies_by_step,
        ));
    }
    if !f.categories.is_empty() {
        out.push_str(&list("categories", &f.categories));
    }
    if !f.newest_replies.is_empty() {
        out.push_str("\nnewest replies\n");
        out.push_str(&crate::lists::render_rows(&f.newest_replies));
    }
    out
}
