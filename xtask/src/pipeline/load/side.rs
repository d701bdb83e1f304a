//! The load's own motos. One moto process (Python: one core at a time, and
//! every receive walks the whole queue) serving the webhook queue, the
//! effects queue's backlog, `PutEvents` and `Publish` of a wave is the
//! run's bottleneck, and it slows the webhooks as the effects back up,
//! which SQS does not. So the effects queue (with its DLQ), and the bus and
//! alert topic (with their tap queues), each run on a moto of their own,
//! and the consumer's SQS, EventBridge and SNS endpoints point there (the
//! consumer calls SQS only for the effects queue; the pollers do the rest).

use super::{patient_timeouts, template_number};
use crate::pipeline::template::Template;
use crate::pipeline::{EFFECTS_DLQ, EFFECTS_QUEUE};
use anyhow::{Context, Result};
use test_support::standins;

/// A queue and the client that reaches it.
#[derive(Clone)]
pub struct Queue {
    pub sqs: smartlead::aws_sdk_sqs::Client,
    pub url: String,
}

pub struct Side {
    /// EventBridge and SNS, with the tap queues of the bus and the topic.
    pub integrations: standins::Service,
    pub taps: smartlead::aws_sdk_sqs::Client,
    pub topic: String,
    /// The effects queue and its DLQ.
    pub effects_moto: standins::Service,
    pub effects: Queue,
    pub effects_dlq: Queue,
}

/// An SQS client for a moto, patient with it.
async fn client(
    moto: &standins::Service,
) -> (
    smartlead::adapters::aws::SdkConfig,
    smartlead::aws_sdk_sqs::Client,
) {
    let cfg = smartlead::adapters::aws::local_sdk_config(&moto.endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::from_conf(
        smartlead::aws_sdk_sqs::config::Builder::from(&cfg)
            .timeout_config(patient_timeouts())
            .build(),
    );
    (cfg, sqs)
}

impl Side {
    /// Starts both motos and creates in them what template.yaml declares:
    /// the effects queue (its visibility timeout, or `visibility`) and DLQ,
    /// the bus, the topic.
    pub async fn start(t: &Template, visibility: Option<u32>) -> Result<Side> {
        let integrations =
            standins::start_moto_any().context("starting moto for the bus and topic")?;
        let (cfg, taps) = client(&integrations).await;
        let topic = crate::pipeline::create_integrations(&cfg, &taps).await?;
        let effects_moto =
            standins::start_moto_any().context("starting moto for the effects queue")?;
        let (_, sqs) = client(&effects_moto).await;
        let receives: String =
            template_number::<u32>(t, "EffectsQueue", &["RedrivePolicy", "maxReceiveCount"])?
                .to_string();
        let visibility = match visibility {
            Some(v) => v,
            None => template_number(t, "EffectsQueue", &["VisibilityTimeout"])?,
        };
        let (url, dlq_url) = crate::pipeline::create_queues(
            &sqs,
            (EFFECTS_QUEUE, EFFECTS_DLQ),
            &receives,
            visibility,
        )
        .await?;
        Ok(Side {
            integrations,
            taps,
            topic,
            effects_moto,
            effects: Queue {
                sqs: sqs.clone(),
                url,
            },
            effects_dlq: Queue { sqs, url: dlq_url },
        })
    }

    /// Points the consumer's environment at these motos.
    pub fn point(&self, env: &mut Vec<(String, String)>) {
        let integrations = self.integrations.endpoint();
        let set = [
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", integrations.clone()),
            ("AWS_ENDPOINT_URL_SNS", integrations),
            ("ALERT_TOPIC_ARN", self.topic.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.effects_moto.endpoint()),
            ("EFFECTS_QUEUE_URL", self.effects.url.clone()),
        ];
        // The webhook queue is in the other moto, which this SQS endpoint
        // does not reach: a webhook whose effects are not queued is left to
        // SQS's redelivery, not sent back.
        env.retain(|(k, _)| k != "WEBHOOK_QUEUE_URL" && !set.iter().any(|(s, _)| s == k));
        env.extend(set.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
}
