//! `smartlead reconcile`: SmartLead's statistics against the stored state,
//! gaps reported and (without `--dry-run`) backfilled through the queue.
//! The logic is the library's ([`smartlead::app::reconcile`]); this is the table
//! and the progress bar.

use crate::api::api_key;
use crate::aws::stack_dedup_ttl;
use crate::flags::list;
use crate::terminal::print;
use crate::{ops, ReconcileArgs};
use anyhow::{anyhow, bail, Result};
use smartlead::adapters::aws::dynamodb::budget::DynamoBudget;
use smartlead::adapters::http::smartlead::Api;
use smartlead::app::reconcile::{Action, Report};
use smartlead::domain::time::EventTime;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `--since`: an RFC 3339 time, or a span back from now (`36h`, `7d`, `90m`).
pub fn since(s: &str, now: EventTime) -> Result<EventTime> {
    let t = s.trim();
    if t.starts_with('-') {
        bail!("--since {s:?}: a span back from now cannot be negative");
    }
    let span = |n: &str, unit_ms: i64| -> Option<EventTime> {
        let n: i64 = n.parse().ok()?;
        EventTime::from_millis(now.millis() - n.checked_mul(unit_ms)?)
    };
    let relative = match t.char_indices().last() {
        Some((i, 'm')) => span(&t[..i], 60_000),
        Some((i, 'h')) => span(&t[..i], 3_600_000),
        Some((i, 'd')) => span(&t[..i], 86_400_000),
        _ => None,
    };
    relative
        .or_else(|| EventTime::parse(t))
        .ok_or_else(|| anyhow!("--since {s:?}: not a time (RFC 3339) nor a span like 36h or 7d"))
}

/// The TTL to check within: `--dedup-ttl-days`, capped at the deployed
/// stack's `DedupTtlDays`; else the stack's; else the template's default.
/// With a note when capped.
pub fn dedup_ttl(flag: Option<u64>, stack: Option<u64>) -> (u64, Option<String>) {
    match (flag, stack) {
        (Some(f), Some(s)) if f > s => (
            s,
            Some(format!(
                "--dedup-ttl-days {f} is longer than the stack's DedupTtlDays {s}: using {s}"
            )),
        ),
        (Some(f), _) => (f, None),
        (None, Some(s)) => (s, None),
        (None, None) => (
            smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
            None,
        ),
    }
}

/// The gaps as a table: lead, campaign, what is missing, since when, and
/// what was done.
pub fn table(r: &Report, dry_run: bool) -> String {
    let mut rows = vec![[
        "LEAD".to_owned(),
        "CAMPAIGN".to_owned(),
        "MISSING".to_owned(),
        "SINCE".to_owned(),
        "ACTION".to_owned(),
    ]];
    for (g, count) in r
        .gaps
        .iter()
        .map(|g| (g, false))
        .chain(r.count_mismatches.iter().map(|g| (g, true)))
    {
        let action = match &g.action {
            Action::Backfill { .. } if dry_run => "would backfill".to_owned(),
            Action::Backfill { .. } => "backfilled".to_owned(),
            Action::Report { reason } if count => format!("count mismatch (not a gap): {reason}"),
            Action::Report { reason } => format!("reported only: {reason}"),
            Action::Unverified { reason } => format!("not checked: {reason}"),
        };
        rows.push([
            g.lead.clone(),
            g.campaign.clone(),
            format!("{} ({})", g.missing, g.event_type),
            g.since.clone().unwrap_or_else(|| "-".into()),
            action,
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if i < 4 {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            } else {
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The summary line, and whether something is left for a person (exit 2).
pub fn summary(r: &Report, dry_run: bool) -> (String, bool) {
    let backfillable = r.gaps_found() - r.reported_only();
    let mut s = format!(
        "{} campaign(s), {} lead(s), {} event(s) checked: {} gap(s), {} {}, {} reported only",
        r.campaigns,
        r.leads,
        r.facts_checked,
        r.gaps_found(),
        if dry_run { backfillable } else { r.backfilled },
        if dry_run {
            "could be backfilled (run without --dry-run)"
        } else {
            "backfilled through the queue"
        },
        r.reported_only()
    );
    if r.unreadable_rows > 0 {
        s.push_str(&format!(
            "; {} statistics row(s) named no lead and were skipped",
            r.unreadable_rows
        ));
    }
    if r.unverified() > 0 {
        s.push_str(&format!(
            "; {} event(s) could not be checked (SmartLead gave no message id for them)",
            r.unverified()
        ));
    }
    if !r.count_mismatches.is_empty() {
        s.push_str(&format!(
            "; {} count mismatch(es): lifetime opens or clicks above the stored (reported, not gaps)",
            r.count_mismatches.len()
        ));
    }
    if r.leads_left > 0 {
        s.push_str(&format!(
            "; out of time: {} lead(s) not checked (run again)",
            r.leads_left
        ));
    }
    if r.too_old > 0 {
        s.push_str(&format!(
            "; {} event(s) older than DedupTtlDays less {} days were not checked",
            r.too_old,
            smartlead::app::reconcile::MARGIN_DAYS
        ));
    }
    let left = r.leads_left > 0
        || if dry_run {
            r.gaps_found() > 0
        } else {
            r.reported_only() > 0
        };
    (s, left)
}

/// An agency's gaps by client (`-`: a campaign without one); empty when
/// no campaign has a client.
pub fn per_client(r: &Report, client_of: &HashMap<String, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if client_of.is_empty() {
        return out;
    }
    for g in &r.gaps {
        let c = client_of
            .get(&g.campaign)
            .cloned()
            .unwrap_or_else(|| "-".into());
        *out.entry(c).or_insert(0) += 1;
    }
    out
}

/// Checks the campaign ids given with `--campaign`.
pub fn campaign_ids(list: &[String]) -> Result<Vec<String>> {
    if list.is_empty() {
        bail!("--campaign <id> or --all-campaigns");
    }
    for c in list {
        smartlead::adapters::http::smartlead::path_id("--campaign", c)?;
    }
    Ok(list.to_vec())
}

/// The campaigns to check (`--campaign`, `--client`'s, or all but
/// drafts) and each listed campaign's client (an agency's report is per
/// client).
async fn chosen_campaigns(
    api: &Api,
    campaign: Option<&str>,
    client: Option<&str>,
    deadline: Instant,
) -> Result<(Vec<String>, HashMap<String, String>)> {
    let listed = match (campaign, client) {
        (Some(_), None) => Vec::new(),
        _ => smartlead::app::reconcile::campaign_clients(api, false, deadline).await?,
    };
    let client_of: HashMap<String, String> = listed
        .iter()
        .filter_map(|(c, cl)| Some((c.clone(), cl.clone()?)))
        .collect();
    let campaigns = match (campaign, client) {
        (Some(c), _) => campaign_ids(&list(c))?,
        (None, Some(client)) => listed
            .iter()
            .filter(|(_, cl)| cl.as_deref() == Some(client))
            .map(|(c, _)| c.clone())
            .collect(),
        (None, None) => listed.iter().map(|(c, _)| c.clone()).collect(),
    };
    if let (Some(client), true) = (client, campaigns.is_empty()) {
        bail!("SmartLead lists no campaign of client {client}");
    }
    Ok((campaigns, client_of))
}

pub async fn reconcile_cmd(a: ReconcileArgs) -> Result<()> {
    let now = smartlead::domain::time::EventTime::now();
    let since = a.since.as_deref().map(|s| since(s, now)).transpose()?;
    let st = ops::Stack::resolve(&a.stack).await?;
    // The key's budget in the stack's table (the local one's with --local).
    let budget = Arc::new(DynamoBudget::new(st.ddb.clone(), st.table.clone()));
    let api = Api::new(&a.api.api_base, &api_key(&a.api).await?)
        .with_budget(budget, a.api.requests_per_minute);
    let hour = Instant::now() + Duration::from_secs(3600);
    let (campaigns, client_of) =
        chosen_campaigns(&api, a.campaign.as_deref(), a.client.as_deref(), hour).await?;
    let deployed = match &st.deployed {
        Some((name, o)) => stack_dedup_ttl(name, o).await?,
        None => None,
    };
    let (ttl, capped) = dedup_ttl(a.dedup_ttl_days, deployed);
    if let Some(note) = capped {
        eprintln!("{note}");
    }
    let queue = smartlead::adapters::aws::SqsQueue {
        client: st.sqs.clone(),
        queue_url: st.queues().await?.0,
    };
    let store =
        smartlead::adapters::aws::dynamodb::DynamoStore::new(st.ddb.clone(), st.table.clone());
    let opts = smartlead::app::reconcile::Options {
        since,
        dry_run: a.dry_run,
        dedup_ttl_days: ttl,
        now,
        deadline: hour,
    };
    // Drawn on stderr, and only on a terminal.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} leads {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("reading SmartLead's statistics");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report =
        smartlead::app::reconcile::reconcile(&api, &store, &queue, &campaigns, &opts, &progress)
            .await;
    bar.finish_and_clear();
    let report = report?;
    let (line, left) = summary(&report, a.dry_run);
    let clients = per_client(&report, &client_of);
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if !clients.is_empty() {
            v["gaps_by_client"] = serde_json::to_value(&clients)?;
        }
        print(&v);
    } else {
        if !report.gaps.is_empty() {
            print!("{}", table(&report, a.dry_run));
        }
        for (client, n) in &clients {
            println!("client {client}: {n} gap(s)");
        }
        println!("{line}");
    }
    if left {
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ttl_flag_is_capped_at_the_stacks() {
        assert_eq!(super::dedup_ttl(Some(7), Some(3)).0, 3);
        assert!(super::dedup_ttl(Some(7), Some(3)).1.is_some());
        assert_eq!(super::dedup_ttl(Some(2), Some(3)), (2, None));
        assert_eq!(super::dedup_ttl(None, Some(3)), (3, None));
        assert_eq!(super::dedup_ttl(Some(9), None), (9, None));
    }

    use super::*;

    #[test]
    fn since_takes_times_and_spans() {
        let now = EventTime::parse("2026-11-27T12:00:00Z").unwrap();
        assert_eq!(
            since("36h", now).unwrap().to_string(),
            "2026-11-26T00:00:00.000Z"
        );
        assert_eq!(
            since("7d", now).unwrap().to_string(),
            "2026-11-20T12:00:00.000Z"
        );
        assert_eq!(
            since("2026-11-01T00:00:00Z", now).unwrap().to_string(),
            "2026-11-01T00:00:00.000Z"
        );
        assert!(since("yesterday", now).is_err());
        for negative in ["-3d", " -36h", "-90m"] {
            let e = since(negative, now).expect_err(negative).to_string();
            assert!(e.contains("negative"), "{e}");
        }
        assert!(since("99999999999999999d", now).is_err());
    }
}
