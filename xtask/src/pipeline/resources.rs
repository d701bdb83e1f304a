//! The AWS resources in the stand-ins, as template.yaml declares them:
//! the state table, the queues and their DLQs, the claim-check bucket, the
//! fan-out bus and the alert topic (each with a tap queue).

use super::template::Template;
use super::{
    Options, ALERT_TAP, ALERT_TOPIC, BUCKET, BUS, BUS_TAP, DLQ, EFFECTS_DLQ, EFFECTS_MAX_RECEIVE,
    EFFECTS_QUEUE, QUEUE, TABLE,
};
use anyhow::{bail, Context, Result};
use serde_json::json;
use smartlead::aws_sdk_sqs::types::QueueAttributeName;

/// Creates a DLQ and its queue `(name, dlq)` with its redrive policy
/// (idempotent). Returns (queue url, DLQ url).
pub async fn create_queues(
    sqs: &smartlead::aws_sdk_sqs::Client,
    (name, dlq): (&str, &str),
    max_receive: &str,
    visibility_secs: u32,
) -> Result<(String, String)> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(dlq)
        .send()
        .await?
        .queue_url
        .context("dlq url")?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    Ok((queue_url, dlq_url))
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("queue arn")
}

/// The fan-out bus and the alert topic (as the template declares them), each
/// with a tap queue. Returns the topic's ARN.
pub async fn create_integrations(
    cfg: &smartlead::adapters::aws::SdkConfig,
    sqs: &smartlead::aws_sdk_sqs::Client,
) -> Result<String> {
    let eb = aws_sdk_eventbridge::Client::new(cfg);
    if eb.describe_event_bus().name(BUS).send().await.is_err() {
        eb.create_event_bus().name(BUS).send().await?;
    }
    let tap = sqs
        .create_queue()
        .queue_name(BUS_TAP)
        .send()
        .await?
        .queue_url
        .context("tap url")?;
    eb.put_rule()
        .name("local-tap")
        .event_bus_name(BUS)
        .event_pattern(
            json!({"source": [smartlead::adapters::aws::eventbridge::SOURCE]}).to_string(),
        )
        .send()
        .await?;
    eb.put_targets()
        .rule("local-tap")
        .event_bus_name(BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(queue_arn(sqs, &tap).await?)
                .build()?,
        )
        .send()
        .await?;
    let sns = aws_sdk_sns::Client::new(cfg);
    let topic = sns
        .create_topic()
        .name(ALERT_TOPIC)
        .send()
        .await?
        .topic_arn
        .context("topic arn")?;
    let alert_tap = sqs
        .create_queue()
        .queue_name(ALERT_TAP)
        .send()
        .await?
        .queue_url
        .context("alert tap url")?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn(sqs, &alert_tap).await?)
        .send()
        .await?;
    Ok(topic)
}

/// What [`create_resources`] made.
pub(super) struct Created {
    pub(super) queue_url: String,
    pub(super) dlq_url: String,
    /// The webhook queue's `maxReceiveCount`.
    pub(super) max_receive: String,
    pub(super) effects_url: String,
    pub(super) effects_dlq_url: String,
    pub(super) alert_topic: String,
}

/// The table, queues, bucket, bus and topic as template.yaml declares them.
pub(super) async fn create_resources(
    t: &Template,
    ddb: &smartlead::aws_sdk_dynamodb::Client,
    moto: &smartlead::adapters::aws::SdkConfig,
    s3: &smartlead::aws_sdk_s3::Client,
    options: &Options,
) -> Result<Created> {
    let keys: Vec<String> = t.props("StateTable")?["KeySchema"]
        .as_sequence()
        .context("KeySchema")?
        .iter()
        .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
        .collect();
    if keys != ["pk", "sk"] {
        bail!(
            "template.yaml's StateTable key schema {keys:?} is not the one the code uses (pk, sk)"
        );
    }
    smartlead::adapters::aws::dynamodb::create_table(ddb, TABLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = t.props("WebhookQueue")?;
    t.resolve(&q["VisibilityTimeout"])
        .context("VisibilityTimeout")?;
    let max_receive = t
        .resolve(&q["RedrivePolicy"]["maxReceiveCount"])
        .context("maxReceiveCount")?;
    let sqs = smartlead::aws_sdk_sqs::Client::new(moto);
    let (queue_url, dlq_url) =
        create_queues(&sqs, (QUEUE, DLQ), &max_receive, options.visibility_secs).await?;
    let e = t.props("EffectsQueue")?;
    let effects_receive = t
        .resolve(&e["RedrivePolicy"]["maxReceiveCount"])
        .context("the effects queue's maxReceiveCount")?;
    if effects_receive != EFFECTS_MAX_RECEIVE {
        bail!("template.yaml's EffectsQueue maxReceiveCount {effects_receive} is not {EFFECTS_MAX_RECEIVE}");
    }
    let effects = (EFFECTS_QUEUE, EFFECTS_DLQ);
    let (effects_url, effects_dlq_url) =
        create_queues(&sqs, effects, &effects_receive, options.visibility_secs).await?;
    s3.create_bucket().bucket(BUCKET).send().await?;
    let alert_topic = create_integrations(moto, &sqs).await?;
    Ok(Created {
        queue_url,
        dlq_url,
        max_receive,
        effects_url,
        effects_dlq_url,
        alert_topic,
    })
}
