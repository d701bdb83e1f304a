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

/// `pattern` matched only by the events of the replay `replay`
/// (EventBridge marks replayed events with `replay-name`): a temporary rule
/// never doubles live events, and one left behind (an interrupted run)
/// matches nothing again.
pub fn only_replay(pattern: &str, replay: &str) -> Result<String> {
    let mut p: Value = serde_json::from_str(pattern).context("an event pattern")?;
    let Some(o) = p.as_object_mut() else {
        bail!("an event pattern is not an object");
    };
    o.insert("replay-name".into(), json!([replay]));
    Ok(p.to_string())
}

/// A temporary rule: its name, ARN and target ids.
pub struct Temp {
    pub name: String,
    pub arn: String,
    pub targets: Vec<String>,
}

/// An AWS SDK error (EventBridge, SQS, ...) with what was being done.
fn eb_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    crate::aws_err(what)(e)
}

/// A replay's name, unique even for two replays started in the same second.
pub fn replay_name() -> String {
    format!(
        "smartlead-replay-{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// A bus's name, from its ARN (`.../event-bus/<name>`) or the name itself.
pub fn bus_name(bus: &str) -> String {
    bus.rsplit('/').next().unwrap_or(bus).to_owned()
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

/// Reads of a running replay that may fail in a row before the wait gives up.
const WAIT_READ_ATTEMPTS: u32 = 5;

/// `PutTargets` answers 200 even when it refused some targets: an error
/// names the first refusal.
fn targets_all_taken(
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

/// Waits until the replay ends; its final state.
pub async fn wait(
    eb: &aws_sdk_eventbridge::Client,
    replay: &str,
    bar: &indicatif::ProgressBar,
) -> Result<String> {
    let mut failures = 0;
    loop {
        let r = match eb.describe_replay().replay_name(replay).send().await {
            Ok(r) => {
                failures = 0;
                r
            }
            // A passing error (throttling, a dropped connection) must not end
            // the wait while the replay still runs: try again, a few times.
            Err(e) if failures < WAIT_READ_ATTEMPTS => {
                failures += 1;
                eprintln!(
                    "{:#} (trying again)",
                    eb_err(&format!("reading replay {replay}"), e)
                );
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(eb_err(&format!("reading replay {replay}"), e)),
        };
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

/// One archived event of a lead, as `lead --events` shows it.
pub fn event_line(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let d = v.get("detail")?;
    let n = d.get("normalized");
    let field = |x: Option<&Value>| match x {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(o) => o.to_string(),
    };
    let time = field(n.and_then(|n| n.get("event_time")).or(v.get("time")));
    Some((
        time.clone(),
        format!(
            "{time}  {:<22} campaign {:<8} key={}",
            field(d.get("event_type")),
            field(n.and_then(|n| n.get("campaign_id"))),
            field(d.get("dedup_key").or(d.get("id")))
        ),
    ))
}

/// A lead's archived events of the last `days`: replays them (from the
/// stack's archive) to a temporary queue through a temporary rule narrowed
/// to the lead, reads the queue, deletes both. Nothing else receives them.
pub async fn lead_events(
    cfg: &aws_config::SdkConfig,
    archive: &str,
    bus: &str,
    email: &str,
    days: i64,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<String>> {
    let sqs = smartlead::aws_sdk_sqs::Client::new(cfg);
    let name = replay_name();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .map_err(|e| eb_err("creating a temporary queue", e))?
        .queue_url
        .unwrap_or_default();
    let replay = LeadReplay {
        eb: aws_sdk_eventbridge::Client::new(cfg),
        sqs,
        archive,
        bus,
        bus_name: bus_name(bus),
        name,
        queue,
    };
    let result = replay.run(email, days, bar).await;
    let queue = &replay.queue;
    if let Err(e) = replay.sqs.delete_queue().queue_url(queue).send().await {
        eprintln!(
            "could not delete the temporary queue {queue}: {}",
            smartlead::adapters::aws::error::error_chain(&e)
        );
    }
    result
}

/// One `lead --events` replay: its clients, archive, bus and temporary queue.
struct LeadReplay<'a> {
    eb: aws_sdk_eventbridge::Client,
    sqs: smartlead::aws_sdk_sqs::Client,
    archive: &'a str,
    bus: &'a str,
    bus_name: String,
    /// The replay's name, also its temporary rule's and queue's.
    name: String,
    queue: String,
}

impl LeadReplay<'_> {
    /// Creates the rule narrowed to the lead, replays through it, deletes it.
    async fn run(
        &self,
        email: &str,
        days: i64,
        bar: &indicatif::ProgressBar,
    ) -> Result<Vec<String>> {
        use smartlead::aws_sdk_sqs::types::QueueAttributeName as Q;
        let queue_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue)
            .attribute_names(Q::QueueArn)
            .send()
            .await
            .map_err(|e| eb_err("reading the temporary queue", e))?
            .attributes
            .and_then(|a| a.get(&Q::QueueArn).cloned())
            .unwrap_or_default();
        let pattern = scoped_pattern(r#"{"source":["smartlead.webhooks"]}"#, Some(email), None)
            .and_then(|p| only_replay(&p, &self.name))?;
        let rule_arn = self
            .eb
            .put_rule()
            .name(&self.name)
            .event_bus_name(&self.bus_name)
            .event_pattern(pattern)
            .state(RuleState::Enabled)
            .description("smartlead lead --events (deleted when it ends)")
            .send()
            .await
            .map_err(|e| eb_err("creating a temporary rule", e))?
            .rule_arn
            .unwrap_or_default();
        let temp = Temp {
            name: self.name.clone(),
            arn: rule_arn.clone(),
            targets: vec!["q".into()],
        };
        let inner = self.deliver(&queue_arn, &rule_arn, days, bar).await;
        remove(&self.eb, &self.bus_name, &[temp]).await;
        inner
    }

    /// Points the rule at the queue, replays the last `days` through it and
    /// reads what arrived.
    async fn deliver(
        &self,
        queue_arn: &str,
        rule_arn: &str,
        days: i64,
        bar: &indicatif::ProgressBar,
    ) -> Result<Vec<String>> {
        self.point_rule_at_queue(queue_arn, rule_arn).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let t = aws_sdk_eventbridge::primitives::DateTime::from_millis;
        self.eb
            .start_replay()
            .replay_name(&self.name)
            .event_source_arn(self.archive)
            .event_start_time(t(now - days * 86_400_000))
            .event_end_time(t(now))
            .destination(
                aws_sdk_eventbridge::types::ReplayDestination::builder()
                    .arn(self.bus)
                    .filter_arns(rule_arn)
                    .build()
                    .map_err(|e| anyhow!("{e}"))?,
            )
            .send()
            .await
            .map_err(|e| eb_err("starting the replay", e))?;
        let state = wait(&self.eb, &self.name, bar).await?;
        if !state.starts_with("COMPLETED") {
            bail!("replay {} ended {state}", self.name);
        }
        // Deliveries trail the replay's end by a moment.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        self.drain().await
    }

    /// Lets the rule send to the queue (and no one without TLS, as the
    /// template's queues), and makes the queue its target.
    async fn point_rule_at_queue(&self, queue_arn: &str, rule_arn: &str) -> Result<()> {
        use smartlead::aws_sdk_sqs::types::QueueAttributeName as Q;
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}
            }, {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]
        });
        self.sqs
            .set_queue_attributes()
            .queue_url(&self.queue)
            .attributes(Q::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| eb_err("allowing the rule to the queue", e))?;
        let out = self
            .eb
            .put_targets()
            .rule(&self.name)
            .event_bus_name(&self.bus_name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(queue_arn)
                    .build()
                    .map_err(|e| anyhow!("{e}"))?,
            )
            .send()
            .await
            .map_err(|e| eb_err("pointing the rule at the queue", e))?;
        targets_all_taken(&out, "pointing the rule at the queue")
    }

    /// The event lines of every message the queue holds (each deleted once
    /// read), in order, without repeats.
    async fn drain(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| eb_err("reading the temporary queue", e))?
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                break;
            }
            for m in got {
                lines.extend(event_line(m.body().unwrap_or_default()));
                let _ = self
                    .sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .set_receipt_handle(m.receipt_handle)
                    .send()
                    .await;
            }
        }
        lines.sort();
        lines.dedup();
        Ok(lines.into_iter().map(|(_, l)| l).collect())
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

    #[test]
    fn a_temporary_rule_matches_only_its_own_replay() {
        let p = only_replay(r#"{"source":["smartlead.webhooks"]}"#, "smartlead-replay-1").unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["replay-name"], json!(["smartlead-replay-1"]));
        assert_eq!(v["source"], json!(["smartlead.webhooks"]));
        assert!(only_replay("[]", "x").is_err());
    }

    #[test]
    fn an_archived_event_reads_as_time_type_campaign_key() {
        let (t, line) = event_line(
            r#"{"time":"2026-11-21T10:00:05Z","detail":{"id":"K","dedup_key":"EMAIL_REPLY:msg:2","event_type":"EMAIL_REPLY","normalized":{"campaign_id":"7","event_time":"2026-11-21T10:00:00.000Z"}}}"#,
        )
        .unwrap();
        assert_eq!(t, "2026-11-21T10:00:00.000Z");
        assert!(
            line.contains("EMAIL_REPLY")
                && line.contains("campaign 7")
                && line.ends_with("key=EMAIL_REPLY:msg:2"),
            "{line}"
        );
        assert!(event_line("not json").is_none());
    }
}
