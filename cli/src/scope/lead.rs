//! `lead --events`: a lead's archived events, replayed to a temporary
//! queue through a temporary rule narrowed to the lead.

use super::pattern::{only_replay, scoped_pattern};
use super::rules::{remove, targets_all_taken};
use super::{bus_name, eb_err, replay_name, wait, Temp};
use anyhow::{anyhow, bail, Result};
use aws_sdk_eventbridge::types::RuleState;
use serde_json::{json, Value};

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
