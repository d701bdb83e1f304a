//! Alerts to a Slack incoming webhook.

use crate::app::budget::{now_ms, Destination, RateBudget};
use crate::app::clients::Clients;
use crate::app::effects::{Alert, AlertRules, EffectError, Notifier, SLACK};
use crate::config::refresh::Refreshing;
use crate::domain::event::SmartleadEvent;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Makes the value of an SSM parameter, by name, that is re-read now and then.
pub type ParamReader = Box<dyn Fn(&str) -> Refreshing<String> + Send + Sync>;

/// Each client's own Slack channel: the registry names the SSM parameter
/// of its URL, read (and re-read) on first use.
pub struct ClientChannels {
    pub clients: Clients,
    /// A parameter's value, re-read now and then.
    pub load: ParamReader,
    urls: Mutex<HashMap<String, Arc<Refreshing<String>>>>,
}

impl ClientChannels {
    pub fn new(clients: Clients, load: ParamReader) -> ClientChannels {
        ClientChannels {
            clients,
            load,
            urls: Mutex::default(),
        }
    }

    /// The URL of the channel named by `param`.
    fn url(&self, param: &str) -> Arc<Refreshing<String>> {
        let mut urls = self.urls.lock().unwrap_or_else(|p| p.into_inner());
        urls.entry(param.to_owned())
            .or_insert_with(|| Arc::new((self.load)(param)))
            .clone()
    }
}

/// A Slack incoming webhook, one message a second at most
/// (<https://api.slack.com/docs/rate-limits>): each post takes its slot in
/// the webhook's rate budget, shared by every process posting to it. A 429
/// pauses the budget for all of them for its `Retry-After`; a slot past the
/// deadline is a transient error carrying the wait
/// ([`EffectError::retry_after`]), and the alert is retried then.
pub struct SlackNotifier {
    pub http: reqwest::Client,
    /// The incoming-webhook URL (a credential: never logged); `None` when
    /// only clients have channels.
    pub url: Option<Refreshing<String>>,
    /// An agency's clients' own channels.
    pub channels: Option<ClientChannels>,
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
    pub fn refreshing(url: Refreshing<String>) -> SlackNotifier {
        SlackNotifier::routed(Some(url), None)
    }

    /// The deployment's channel (if any) and the clients' own.
    pub fn routed(
        url: Option<Refreshing<String>>,
        channels: Option<ClientChannels>,
    ) -> SlackNotifier {
        let http = crate::adapters::http::builder().build().unwrap_or_default();
        SlackNotifier {
            http,
            url,
            channels,
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
    /// A hot event, when the deployment has a channel or its client has
    /// one (or may: the registry not read yet).
    fn applies(&self, ev: &SmartleadEvent, rules: &AlertRules) -> bool {
        let own = match (&self.channels, ev.client.as_deref()) {
            (Some(ch), Some(c)) => ch.clients.slack_param_now(c).is_none_or(|p| p.is_some()),
            _ => false,
        };
        rules.is_hot(ev) && (self.url.is_some() || own)
    }

    /// An agency's: the event's client, so that a digest holds one
    /// client's alerts (its channel is looked up when they are sent).
    fn route(&self, ev: &SmartleadEvent) -> Option<String> {
        self.channels.as_ref()?;
        ev.client.clone()
    }

    async fn notify(
        &self,
        ev: &SmartleadEvent,
        key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError> {
        let body = Alert::from_event(ev, key).slack();
        self.post(self.route(ev).as_deref(), &body, deadline).await
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
        // The worker groups an event with others of its route only.
        let route = evs.first().and_then(|(ev, _)| self.route(ev));
        let body = Alert::slack_digest(&alerts);
        self.post(route.as_deref(), &body, deadline).await
    }
}

impl SlackNotifier {
    /// The URL of the channel of `client` (`route`), if it has its own;
    /// transient while the registry cannot be read, so a client's alert
    /// never goes to the shared channel by mistake.
    async fn channel(
        &self,
        client: Option<&str>,
    ) -> Result<Option<Arc<Refreshing<String>>>, EffectError> {
        let (Some(client), Some(ch)) = (client, &self.channels) else {
            return Ok(None);
        };
        let param = ch
            .clients
            .slack_param(client)
            .await
            .map_err(|e| EffectError::Transient(Box::new(e)))?;
        Ok(param.map(|p| ch.url(&p)))
    }

    /// Posts one message to the channel of `route` (a client's own, else
    /// the deployment's), in the webhook's budget, before `deadline`.
    async fn post(
        &self,
        route: Option<&str>,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<(), EffectError> {
        let url = match (self.channel(route).await?, &self.url) {
            (Some(own), _) => own.get().await,
            (None, Some(shared)) => shared.get().await,
            // A client without a channel of its own, and no shared one.
            (None, None) => {
                return Err(EffectError::Permanent(
                    "Slack: no channel for this event's client".into(),
                ))
            }
        };
        let Some(url) = url else {
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
