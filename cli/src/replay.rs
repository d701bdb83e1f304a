//! `smartlead replay`: archived events back onto the bus, all of a range
//! or (through temporary rules, [`crate::scope`]) one lead's or campaign's.

use crate::aws::{aws, aws_err, output, outputs};
use crate::flags::list;
use crate::terminal::spinner;
use crate::{scope, ReplayArgs};
use anyhow::{bail, Context, Result};

/// An RFC 3339 time as EventBridge takes it.
fn replay_time(s: &str) -> Result<aws_sdk_eventbridge::primitives::DateTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?;
    Ok(aws_sdk_eventbridge::primitives::DateTime::from_millis(
        t.timestamp_millis(),
    ))
}

/// The lead and campaign a replay is scoped to, each checked.
fn check_replay_scope(a: &ReplayArgs) -> Result<()> {
    if let Some(l) = &a.lead {
        if !smartlead::adapters::http::smartlead::is_valid_email(l.trim()) {
            bail!("--lead {l:?} is not an e-mail address");
        }
    }
    if let Some(c) = &a.campaign {
        smartlead::adapters::http::smartlead::path_id("--campaign", c.trim())?;
    }
    Ok(())
}

pub async fn replay(a: ReplayArgs) -> Result<()> {
    check_replay_scope(&a)?;
    let (archive, bus) = match (a.archive_arn.clone(), a.bus_arn.clone()) {
        (Some(ar), Some(b)) => (ar, b),
        _ => {
            let o = outputs(&a.stack).await?;
            (
                output(&o, "EventArchiveArn", &a.stack)?,
                output(&o, "EventBusArn", &a.stack)?,
            )
        }
    };
    let start = replay_time(&a.from)?;
    let end = match &a.to {
        Some(t) => replay_time(t)?,
        None => aws_sdk_eventbridge::primitives::DateTime::from_millis(
            chrono::Utc::now().timestamp_millis(),
        ),
    };
    let mut dest = aws_sdk_eventbridge::types::ReplayDestination::builder().arn(&bus);
    let name = scope::replay_name();
    let eb = aws_sdk_eventbridge::Client::new(&aws().await);
    let scoped = a.lead.is_some() || a.campaign.is_some();
    let bus_name = scope::bus_name(&bus);
    let (filters, temps) = replay_rules(&a, &eb, &bus_name, &name).await?;
    for f in &filters {
        dest = dest.filter_arns(f);
    }
    let out = match dest.build() {
        Ok(d) => {
            eb.start_replay()
                .replay_name(&name)
                .event_source_arn(&archive)
                .event_start_time(start)
                .event_end_time(end)
                .destination(d)
                .send()
                .await
        }
        Err(e) => {
            scope::remove(&eb, &bus_name, &temps).await;
            bail!("{e}");
        }
    };
    if scoped {
        if let Err(e) = out {
            scope::remove(&eb, &bus_name, &temps).await;
            return Err(aws_err("starting the replay")(e));
        }
        return scoped_replay_end(&a, &eb, &bus_name, &name, &temps).await;
    }
    let out = out.map_err(aws_err("starting the replay"))?;
    println!(
        "replay {name} started ({}): follow it with `aws events describe-replay --replay-name {name}`",
        out.state().map(|s| s.as_str()).unwrap_or("unknown state")
    );
    Ok(())
}

/// The rules a replay goes to (ARNs): with --lead or --campaign,
/// temporary copies of --rules (or of all enabled rules) narrowed to them,
/// made here and returned too; else --rules as given.
async fn replay_rules(
    a: &ReplayArgs,
    eb: &aws_sdk_eventbridge::Client,
    bus_name: &str,
    name: &str,
) -> Result<(Vec<String>, Vec<scope::Temp>)> {
    let rules = a.rules.as_deref().map(list).unwrap_or_default();
    if a.lead.is_none() && a.campaign.is_none() {
        return Ok((rules, Vec::new()));
    }
    // Rule ARNs end in `rule/<bus>/<name>`.
    let names: Vec<String> = rules
        .iter()
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned())
        .collect();
    let temps = scope::create(
        eb,
        bus_name,
        &names,
        a.lead.as_deref(),
        a.campaign.as_deref().map(str::trim),
        name,
    )
    .await?;
    Ok((temps.iter().map(|t| t.arn.clone()).collect(), temps))
}

/// Waits for a lead's or campaign's replay to end, then deletes its
/// temporary rules.
async fn scoped_replay_end(
    a: &ReplayArgs,
    eb: &aws_sdk_eventbridge::Client,
    bus_name: &str,
    name: &str,
    temps: &[scope::Temp],
) -> Result<()> {
    let bar = spinner("");
    let state = scope::wait(eb, name, &bar).await;
    bar.finish_and_clear();
    scope::remove(eb, bus_name, temps).await;
    let state = state?;
    let of: Vec<String> = [
        a.lead.as_deref().map(|l| format!("lead {}", l.trim())),
        a.campaign
            .as_deref()
            .map(|c| format!("campaign {}", c.trim())),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!(
        "replay {name} {state}: the events of {} went to the targets of {} rule(s); the temporary rules are deleted",
        of.join(" in "),
        temps.len()
    );
    if !state.starts_with("COMPLETED") {
        bail!("replay {name} ended {state}");
    }
    Ok(())
}
