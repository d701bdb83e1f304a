//! Alerts to a Slack incoming webhook.

use crate::app::budget::{now_ms, Destination, RateBudget};
use crate::app::effects::{Alert, EffectError, Notifier, SLACK};
use crate::domain::event::SmartleadEvent;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Slack incoming webhook, one message a second at most
/// (<https://api.slack.com/docs/rate-limits>): each post takes its slot in
/// the webhook's rate budget, shared by every process posting to it. A 429
/// pauses the budget for all of them for its `Retry-After`; a slot past the
/// deadline is a transient error carrying the wait
/// ([`EffectError::retry_after`]), and the alert is retried then.
pub struct SlackNotifier {
    pub http: reqwest::Client,
    /// The incoming-webhook URL (a credential: never logged).
    pub url: crate::config::refresh::Refreshing<String>,
    /// Per request, lowered to what is left of the invocation.
    pub timeout: Duration,
    /// The webhook's rate budget (by default this process's alone).
    pub budget: Arc<dyn RateBudget>,
}

impl SlackNotifier {
    pub fn new(url: String) -> SlackNotifier {
        SlackNotifier::refreshing(crate::config::refresh::Refreshing::fixed(url))
    }

    /// With a URL re-read from SSM now and then.
    pub fn refreshing(url: crate::config::refresh::Refreshing<String>) -> SlackNotifier {
        let http = crate::adapters::http::builder().build().unwrap_or_default();
        SlackNotifier {
            http,
            url,
            timeout: Duration::from_secs(5),
            budget: Arc::new(crate::app::budget::InProcess::default()),
        }
    }

    /// Paced by `budget`, shared with the other processes posting alerts.
    pub fn with_budget(self, budget: Arc<dyn RateBudget>) -> SlackNotifier {
        SlackNotifier { budget, ..self }
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn effect(&self) -> &'static str {
        SLACK
    }
    async fn notify(
        &self,
        ev: &SmartleadEvent,
        key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError> {
        self.post(&Alert::from_event(ev, key).slack(), deadline)
            .await
    }

    /// A wave of alerts goes as digests of ten, one slot each.
    fn batch_limit(&self) -> usize {
        10
    }

    async fn notify_all(
        &self,
        evs: &[(&SmartleadEvent, &str)],
        deadline: Instant,
    ) -> Result<(), EffectError> {
        let alerts: Vec<Alert> = evs
            .iter()
            .map(|(ev, key)| Alert::from_event(ev, key))
            .collect();
        self.post(&Alert::slack_digest(&alerts), deadline).await
    }
}

impl SlackNotifier {
    /// Posts one message in the webhook's budget before `deadline`.
    async fn post(&self, body: &serde_json::Value, deadline: Instant) -> Result<(), EffectError> {
        let Some(url) = self.url.get().await else {
            // The parameter could not be read yet (it is read again with
            // backoff): the alert waits, the event's state does not.
            return Err(EffectError::Transient(
                "Slack: the webhook URL parameter could not be read yet".into(),
            ));
        };
        let dest = Destination::slack(&url);
        loop {
            self.budget
                .acquire(&dest, crate::adapters::http::latest_slot(deadline))
                .await
                .map_err(|e| match e.retry_after() {
                    Some(after) => EffectError::later(after, "Slack: no slot in its rate budget"),
                    None => EffectError::Transient(Box::new(e)),
                })?;
            let Some(timeout) = crate::adapters::http::timeout_until(self.timeout, deadline) else {
                return Err(EffectError::Transient(
                    "Slack: no time left in this invocation".into(),
                ));
            };
            let r = self
                .http
                .post(url.as_str())
                .timeout(timeout)
                .json(body)
                .send()
                .await
                .map_err(|e| {
                    EffectError::Transient(
                        format!("Slack: {}", crate::adapters::http::error_text(e)).into(),
                    )
                })?;
            let status = r.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            if status == 429 {
                // Every process waits; the next slot is after the pause, or
                // past the deadline (then the error carries the wait).
                let wait = crate::adapters::http::retry_after(r.headers())
                    .unwrap_or(Duration::from_secs(1));
                let until = now_ms().saturating_add(wait.as_millis() as i64);
                self.budget
                    .pause(&dest, until)
                    .await
                    .map_err(|e| EffectError::later(wait, format!("Slack rate limit ({e})")))?;
                continue;
            }
            // A 4xx (a revoked hook, an archived channel, a payload Slack
            // refuses) fails the same way every time: recorded, not retried.
            if (400..500).contains(&status) && status != 408 {
                return Err(EffectError::Permanent(
                    format!("Slack answered {status}").into(),
                ));
            }
            return Err(EffectError::Transient(
                format!("Slack answered {status}").into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A port nobody listens on, and a server that drops every connection.
    async fn failing_endpoints() -> Vec<String> {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let dropping = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let dropping_url = format!("http://{}", dropping.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((sock, _)) = dropping.accept().await {
                drop(sock);
            }
        });
        vec![closed_url, dropping_url]
    }

    fn ev(v: serde_json::Value) -> SmartleadEvent {
        SmartleadEvent::from_slice(v.to_string().as_bytes()).expect("event")
    }

    #[tokio::test]
    async fn slack_errors_never_carry_the_webhook_url() {
        let secret_path = "/services/T0SECRET/B0SECRET/xoxSECRETtoken";
        let e = ev(json!({"event_type": "EMAIL_REPLY", "to_email": "a@b.c"}));
        for base in failing_endpoints().await {
            let slack = SlackNotifier::new(format!("{base}{secret_path}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            let err = slack
                .notify(&e, "k", deadline)
                .await
                .expect_err("nothing answers")
                .to_string();
            assert!(err.starts_with("Slack: "), "{err}");
            for leak in ["SECRET", "services", base.as_str(), "http://"] {
                assert!(!err.contains(leak), "{leak} in {err}");
            }
        }
    }

    #[tokio::test]
    async fn slack_stays_inside_the_invocation_and_survives_an_absurd_retry_after() {
        let e = ev(json!({"event_type": "EMAIL_REPLY", "to_email": "a@b.c"}));
        // A slow Slack and 500 ms left: the request gives up with the invocation.
        let slack = crate::adapters::http::stand_in::slow_then_throttled().await;
        let notifier = SlackNotifier::new(format!("{}/services/x", slack.uri()));
        let started = Instant::now();
        let r = notifier
            .notify(&e, "k", started + Duration::from_millis(500))
            .await;
        assert!(matches!(r, Err(EffectError::Transient(_))), "{r:?}");
        // Far sooner than the stand-in answers (8 s), however busy the machine.
        assert!(started.elapsed() < Duration::from_secs(5));
        // Retry-After: u64::MAX seconds must not overflow Instant + Duration.
        let r = notifier
            .notify(&e, "k", Instant::now() + Duration::from_secs(10))
            .await;
        assert!(matches!(r, Err(EffectError::Transient(_))), "{r:?}");
        // No time left at all: no request.
        let before = slack.received_requests().await.unwrap_or_default().len();
        let r = notifier.notify(&e, "k", Instant::now()).await;
        assert!(matches!(r, Err(EffectError::Transient(_))), "{r:?}");
        assert_eq!(
            slack.received_requests().await.unwrap_or_default().len(),
            before
        );
        slack.verify().await;
    }
}
