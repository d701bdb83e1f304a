//! Alerts to an SNS topic.

use super::error::AwsError;
use crate::app::effects::{Alert, EffectError, Notifier, SNS};
use crate::domain::event::SmartleadEvent;
use async_trait::async_trait;
use std::time::Instant;

/// An SNS topic (e-mail, SMS, chat bots, anything subscribed).
pub struct SnsNotifier {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn effect(&self) -> &'static str {
        SNS
    }
    async fn notify(
        &self,
        ev: &SmartleadEvent,
        key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError> {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(EffectError::Transient(
                "SNS: no time left in this invocation".into(),
            ));
        };
        let alert = Alert::from_event(ev, key);
        let subject: String = alert
            .title
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        let sent = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(alert.text())
            .message_attributes(
                "event_type",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&alert.event_type)
                    .build()
                    .map_err(|e| EffectError::Transient(e.into()))?,
            )
            .send();
        let sent = tokio::time::timeout(left, sent).await.map_err(|_| {
            EffectError::Transient("SNS: timed out at the invocation's deadline".into())
        })?;
        sent.map(|_| ()).map_err(|e| {
            use aws_sdk_sns::error::ProvideErrorMetadata;
            // The topic refuses the message itself (a 4xx): for good.
            let refused = matches!(
                e.code(),
                Some("InvalidParameter" | "InvalidParameterValue" | "NotFound")
            );
            let e = AwsError::from_sdk("Publish", e).into();
            if refused {
                EffectError::Permanent(e)
            } else {
                EffectError::Transient(e)
            }
        })
    }
}
