//! `smartlead replay --lead/--campaign`: EventBridge replays only filter by
//! rule, so for the replay the CLI adds, next to each rule it replays to, a
//! temporary copy (`smartlead-replay-...`) whose pattern also requires the
//! lead or campaign, with the same targets; the replay goes to the copies
//! only, and they are deleted when it ends. Replayed events keep their `id`
//! (the dedup key), so subscribers that dedupe on it see duplicates.

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_eventbridge::types::{ReplayState, RuleState};
use serde_json::{json, Value};

/// `pattern` narrowed to one lead (its address, lower case as the consumer
/// publishes it) and/or one campaign.
pub fn scoped_pattern(pattern: &str, lead: Option<&str>, campaign: Option<&str>) -> Result<String> {
    let mut p: Value = serde_json::from_str(pattern).context("a rule's event pattern")?;
    let Some(o) = p.as_object_mut() else {
        bail!("a rule's event pattern is not an object");
    };
    let detail = o.entry("detail").or_insert_with(|| json!({}));
    let Some(d) = detail.as_object_mut() else {
        bail!("a rule's pattern matches `detail` as a whole: scope it by hand");
    };
    let normalized = d.entry("normalized").or_insert_with(|| json!({}));
    let Some(n) = normalized.as_object_mut() else {
        bail!("a rule's pattern matches `detail.normalized` as a whole: scope it by hand");
    };
    if let Some(l) = lead {
        n.insert("lead_email".into(), json!([l.trim().to_ascii_lowercase()]));
    }
    if let Some(c) = campaign {
        n.insert("campaign_id".into(), json!([c.trim()]));
    }
    Ok(p.to_string())
}

/// A temporary rule: its name, ARN and target ids.
pub struct Temp {
    pub name: String,
    pub arn: String,
    pub targets: Vec<String>,
}

fn eb_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow!(
        "{what}: {}",
        aws_sdk_eventbridge::error::DisplayErrorContext(e)
    )
}

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
    let mut names = rules.to_vec();
    if names.is_empty() {
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
                if !managed && r.state() == Some(&RuleState::Enabled) && r.event_pattern().is_some()
                {
                    names.push(name.to_owned());
                }
            }
            next = out.next_token;
            if next.is_none() {
                break;
            }
        }
    }
    if names.is_empty() {
        bail!(
            "bus {bus} has no enabled rule with an event pattern: nothing would receive the replay"
        );
    }
    let mut made = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let made_one = async {
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
            let scoped =
                scoped_pattern(pattern, lead, campaign).with_context(|| format!("rule {name}"))?;
            let targets = eb
                .list_targets_by_rule()
                .rule(name)
                .event_bus_name(bus)
                .send()
                .await
                .map_err(|e| eb_err(&format!("reading rule {name}'s targets"), e))?
                .targets
                .unwrap_or_default();
            let temp = format!("{prefix}-{i}");
            let arn = eb
                .put_rule()
                .name(&temp)
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
            let ids = targets.iter().map(|t| t.id().to_owned()).collect();
            let t = Temp {
                name: temp.clone(),
                arn,
                targets: ids,
            };
            if !targets.is_empty() {
                eb.put_targets()
                    .rule(&temp)
                    .event_bus_name(bus)
                    .set_targets(Some(targets))
                    .send()
                    .await
                    .map_err(|e| eb_err(&format!("copying rule {name}'s targets"), e))?;
            }
            Ok::<Temp, anyhow::Error>(t)
        }
        .await;
        match made_one {
            Ok(t) => made.push(t),
            Err(e) => {
                remove(eb, bus, &made).await;
                return Err(e);
            }
        }
    }
    Ok(made)
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

/// Waits until the replay ends; its final state.
pub async fn wait(
    eb: &aws_sdk_eventbridge::Client,
    replay: &str,
    bar: &indicatif::ProgressBar,
) -> Result<String> {
    loop {
        let r = eb
            .describe_replay()
            .replay_name(replay)
            .send()
            .await
            .map_err(|e| eb_err(&format!("reading replay {replay}"), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_pattern_is_narrowed_to_the_lead_and_campaign() {
        let p = scoped_pattern(
            r#"{"source":["smartlead.webhooks"],"detail-type":["EMAIL_REPLY"],"detail":{"normalized":{"category":["Interested"]}}}"#,
            Some(" Jane@Acme.COM "),
            Some("123"),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["source"], json!(["smartlead.webhooks"]));
        assert_eq!(v["detail"]["normalized"]["category"], json!(["Interested"]));
        assert_eq!(
            v["detail"]["normalized"]["lead_email"],
            json!(["jane@acme.com"])
        );
        assert_eq!(v["detail"]["normalized"]["campaign_id"], json!(["123"]));
        assert!(scoped_pattern(r#"{"detail":["x"]}"#, Some("a@b.co"), None).is_err());
        assert!(scoped_pattern("[]", Some("a@b.co"), None).is_err());
    }
}
