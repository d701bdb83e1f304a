//! The temporary rules: copies of the bus's rules narrowed by
//! [`scoped_pattern`], with the same targets, deleted after the replay.

use super::pattern::{only_replay, scoped_pattern};
use super::{eb_err, Temp};
use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_eventbridge::types::RuleState;

/// Copies of `rules` (names; all enabled rules of the bus with a pattern
/// when empty) narrowed by [`scoped_pattern`], with the same targets.
pub async fn create(
    eb: &aws_sdk_eventbridge::Client,
    bus: &str,
    rules: &[String],
    lead: Option<&str>,
    campaign: Option<&str>,
    prefix: &str,
) -> Result<Vec<Temp>> {
    let names = if rules.is_empty() {
        enabled_rules(eb, bus).await?
    } else {
        rules.to_vec()
    };
    if names.is_empty() {
        bail!(
            "bus {bus} has no enabled rule with an event pattern: nothing would receive the replay"
        );
    }
    let mut made = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let temp = format!("{prefix}-{i}");
        match copy_rule(eb, bus, name, &temp, lead, campaign, prefix).await {
            Ok(t) => made.push(t),
            Err(e) => {
                remove(eb, bus, &made).await;
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// The bus's enabled rules with an event pattern, but managed and replay ones.
async fn enabled_rules(eb: &aws_sdk_eventbridge::Client, bus: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut next = None;
    loop {
        let out = eb
            .list_rules()
            .event_bus_name(bus)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| eb_err("listing the bus's rules", e))?;
        for r in out.rules() {
            let name = r.name().unwrap_or_default();
            let managed = r.managed_by().is_some() || name.starts_with("smartlead-replay-");
            if !managed && r.state() == Some(&RuleState::Enabled) && r.event_pattern().is_some() {
                names.push(name.to_owned());
            }
        }
        next = out.next_token;
        if next.is_none() {
            return Ok(names);
        }
    }
}

/// Rule `name` copied as `temp`, narrowed to the lead or campaign and to
/// the replay, with the same targets.
async fn copy_rule(
    eb: &aws_sdk_eventbridge::Client,
    bus: &str,
    name: &str,
    temp: &str,
    lead: Option<&str>,
    campaign: Option<&str>,
    prefix: &str,
) -> Result<Temp> {
    let r = eb
        .describe_rule()
        .name(name)
        .event_bus_name(bus)
        .send()
        .await
        .map_err(|e| eb_err(&format!("reading rule {name}"), e))?;
    let pattern = r
        .event_pattern()
        .ok_or_else(|| anyhow!("rule {name} has no event pattern"))?;
    let scoped = scoped_pattern(pattern, lead, campaign)
        .and_then(|p| only_replay(&p, prefix))
        .with_context(|| format!("rule {name}"))?;
    let targets = eb
        .list_targets_by_rule()
        .rule(name)
        .event_bus_name(bus)
        .send()
        .await
        .map_err(|e| eb_err(&format!("reading rule {name}'s targets"), e))?
        .targets
        .unwrap_or_default();
    let arn = eb
        .put_rule()
        .name(temp)
        .event_bus_name(bus)
        .event_pattern(scoped)
        .state(RuleState::Enabled)
        .description(format!(
            "smartlead replay: {name} for one lead or campaign (deleted after the replay)"
        ))
        .send()
        .await
        .map_err(|e| eb_err(&format!("creating rule {temp}"), e))?
        .rule_arn
        .unwrap_or_default();
    let t = Temp {
        name: temp.to_owned(),
        arn,
        targets: targets.iter().map(|t| t.id().to_owned()).collect(),
    };
    if !targets.is_empty() {
        let copied = match eb
            .put_targets()
            .rule(temp)
            .event_bus_name(bus)
            .set_targets(Some(targets))
            .send()
            .await
        {
            Ok(out) => targets_all_taken(&out, &format!("copying rule {name}'s targets")),
            Err(e) => Err(eb_err(&format!("copying rule {name}'s targets"), e)),
        };
        if let Err(e) = copied {
            // Not handed back to the caller: deleted here, not left behind.
            remove(eb, bus, std::slice::from_ref(&t)).await;
            return Err(e);
        }
    }
    Ok(t)
}

/// Deletes the temporary rules (best effort: says what it could not).
pub async fn remove(eb: &aws_sdk_eventbridge::Client, bus: &str, temps: &[Temp]) {
    for t in temps {
        if !t.targets.is_empty() {
            if let Err(e) = eb
                .remove_targets()
                .rule(&t.name)
                .event_bus_name(bus)
                .set_ids(Some(t.targets.clone()))
                .send()
                .await
            {
                eprintln!(
                    "{:#}",
                    eb_err(&format!("removing rule {}'s targets", t.name), e)
                );
            }
        }
        if let Err(e) = eb
            .delete_rule()
            .name(&t.name)
            .event_bus_name(bus)
            .send()
            .await
        {
            eprintln!(
                "{:#} (delete it by hand: aws events delete-rule --event-bus-name {bus} --name {})",
                eb_err(&format!("deleting rule {}", t.name), e),
                t.name
            );
        }
    }
}

/// `PutTargets` answers 200 even when it refused some targets: an error
/// names the first refusal.
pub(super) fn targets_all_taken(
    out: &aws_sdk_eventbridge::operation::put_targets::PutTargetsOutput,
    what: &str,
) -> Result<()> {
    match out.failed_entries().first() {
        None if out.failed_entry_count() == 0 => Ok(()),
        first => Err(anyhow!(
            "{what}: {} target(s) refused ({})",
            out.failed_entry_count().max(1),
            first
                .and_then(|f| f.error_message().or(f.error_code()))
                .unwrap_or("no reason given")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_targets_answer_with_refused_entries_is_an_error() {
        use aws_sdk_eventbridge::operation::put_targets::PutTargetsOutput;
        use aws_sdk_eventbridge::types::PutTargetsResultEntry;
        let ok = PutTargetsOutput::builder().failed_entry_count(0).build();
        assert!(targets_all_taken(&ok, "x").is_ok());
        let refused = PutTargetsOutput::builder()
            .failed_entry_count(1)
            .failed_entries(
                PutTargetsResultEntry::builder()
                    .target_id("q")
                    .error_code("AccessDenied")
                    .error_message("no permission to the queue")
                    .build(),
            )
            .build();
        let e = targets_all_taken(&refused, "pointing the rule at the queue").unwrap_err();
        assert!(e.to_string().contains("no permission to the queue"), "{e}");
        // A count without entries still fails.
        let counted = PutTargetsOutput::builder().failed_entry_count(2).build();
        assert!(targets_all_taken(&counted, "x").is_err());
    }
}
