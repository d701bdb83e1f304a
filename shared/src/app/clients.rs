//! The client registry as the consumer reads it: re-read at most every
//! [`REGISTRY_REFRESH`], so `smartlead clients sync` and `clients set`
//! reach the functions within a minute. Without a registry (the default,
//! and a deployment without clients) nothing here changes an event.

use crate::app::effects::AlertRules;
use crate::config::refresh::Refreshing;
use crate::domain::client::{ClientSource, Registry};
use crate::domain::event::SmartleadEvent;
use crate::metrics::Metrics;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How often a function re-reads the registry item (one GetItem).
pub const REGISTRY_REFRESH: Duration = Duration::from_secs(60);

/// The registry, when this deployment keeps one.
#[derive(Clone, Default)]
pub struct Clients {
    registry: Option<Arc<Refreshing<Registry>>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.registry.is_some() {
            "Clients(registry)"
        } else {
            "Clients(none)"
        })
    }
}

impl Clients {
    /// A registry as given (tests, tools).
    pub fn fixed(r: Registry) -> Clients {
        Clients::refreshing(Refreshing::fixed(r))
    }

    /// A registry re-read now and then.
    pub fn refreshing(r: Refreshing<Registry>) -> Clients {
        Clients {
            registry: Some(Arc::new(r)),
        }
    }

    /// The registry as last read, without waiting.
    pub fn current(&self) -> Option<Arc<Registry>> {
        let r = self.registry.as_ref()?.current()?;
        (!r.is_empty()).then_some(r)
    }

    /// The event with its client resolved ([`Registry::resolve`]): the
    /// payload's, else its campaign's, else the URL's (`url`); but a
    /// client's URL (its secret authenticated it) wins over a payload or
    /// campaign naming another (counted `ClientMismatch`). An event whose
    /// client the registry does not know counts `UnknownClient` (by where
    /// its client came from, `none` when it has none, `unread` while the
    /// registry could not be read: then the campaign gives no client).
    /// Marks the event as an agency's ([`SmartleadEvent::agency`]).
    pub async fn resolve(
        &self,
        ev: SmartleadEvent,
        url: Option<&str>,
        metrics: &Metrics,
    ) -> SmartleadEvent {
        let Some(handle) = &self.registry else {
            return ev;
        };
        let mut ev = ev;
        ev.agency = true;
        // Not read yet (its cold read failed): the payload's or URL's client,
        // counted as `unread`; read but empty (before the first sync): the
        // same, not counted.
        let read = handle.get().await;
        let unread = read.is_none();
        let reg = read.unwrap_or_default();
        let n = ev.normalized();
        let found = reg.resolve(
            n.client_id.as_ref().map(|c| c.as_str()),
            n.campaign_id.as_ref().map(|c| c.as_str()),
            url,
        );
        // The URL's client was authenticated by its secret: a payload or
        // campaign naming another never files the event under it.
        let found = match (found, url) {
            (Some((c, source)), Some(u)) if c != u => {
                let source = source.name();
                tracing::warn!(
                    client_id = u,
                    other = c.as_str(),
                    source,
                    "event at a client's URL naming another client; kept as the URL's"
                );
                metrics.count("ClientMismatch", &[("Source", source)]);
                Some((u.to_owned(), ClientSource::Url))
            }
            (found, _) => found,
        };
        let unassigned = n
            .campaign_id
            .as_ref()
            .is_some_and(|c| reg.unassigned(c.as_str()));
        let source = match &found {
            _ if unread => Some("unread"),
            _ if reg.is_empty() => None,
            Some((c, _)) if reg.client(c).is_some() => None,
            // The agency's own campaign: no client, and none is missing.
            None if unassigned => None,
            Some((_, source)) => Some(source.name()),
            None => Some("none"),
        };
        if let Some(source) = source {
            tracing::warn!(
                client_id = found.as_ref().map(|(c, _)| c.as_str()),
                source,
                "event of a client the registry does not know (smartlead clients sync)"
            );
            metrics.count("UnknownClient", &[("Source", source)]);
        }
        let client = found.map(|(c, _)| c);
        ev.with_client(client.as_deref())
    }

    /// The alert rules for `ev`: its client's own alert events, if it has
    /// them, with the deployment's positive categories; else `base`.
    pub fn alert_rules<'a>(
        &self,
        ev: &SmartleadEvent,
        base: &'a AlertRules,
    ) -> Cow<'a, AlertRules> {
        let own = ev
            .client
            .as_deref()
            .and_then(|c| self.current()?.client(c)?.alert_events.clone());
        let Some(events) = own else {
            return Cow::Borrowed(base);
        };
        match AlertRules::parse(&events, "") {
            Ok(mut r) => {
                r.positive_categories = base.positive_categories.clone();
                Cow::Owned(r)
            }
            Err(e) => {
                tracing::error!(client_id = ev.client.as_deref(), error = %e, "a client's alert events do not read; the deployment's apply");
                Cow::Borrowed(base)
            }
        }
    }

    /// The SSM parameter of `client`'s own Slack URL, if it has one;
    /// `Err` while the registry could not be read yet.
    pub async fn slack_param(&self, client: &str) -> Result<Option<String>, RegistryUnread> {
        let Some(handle) = &self.registry else {
            return Ok(None);
        };
        let reg = handle.get().await.ok_or(RegistryUnread)?;
        Ok(reg.client(client).and_then(|c| c.slack_param.clone()))
    }

    /// [`Self::slack_param`] as last read, without waiting: `None` while
    /// the registry has not been read.
    pub fn slack_param_now(&self, client: &str) -> Option<Option<String>> {
        let reg = self.registry.as_ref()?.current()?;
        Some(reg.client(client).and_then(|c| c.slack_param.clone()))
    }
}

/// The registry could not be read yet (its cold read failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client registry could not be read yet")]
pub struct RegistryUnread;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::client::Client;
    use serde_json::json;

    fn registry() -> Registry {
        Registry {
            clients: [
                (
                    "11".to_string(),
                    Client {
                        name: "Acme".into(),
                        alert_events: Some("EMAIL_BOUNCE".into()),
                        ..Client::default()
                    },
                ),
                ("12".to_string(), Client::default()),
            ]
            .into(),
            campaigns: [("7".to_string(), "12".to_string())].into(),
        }
    }

    fn ev(body: serde_json::Value) -> SmartleadEvent {
        SmartleadEvent::from_value(body).expect("event")
    }

    #[tokio::test]
    async fn without_a_registry_an_event_is_left_as_it_came() {
        let e = ev(json!({"event_type": "EMAIL_OPEN", "campaign_id": 7}));
        let out = Clients::default()
            .resolve(e, Some("11"), &Metrics::disabled())
            .await;
        assert_eq!(out.client, None);
        // A registry not synced yet: the payload's client, but the URL's
        // (authenticated) wins all the same.
        let empty = Clients::fixed(Registry::default());
        let e = ev(json!({"event_type": "EMAIL_OPEN", "client_id": 12}));
        let pinned = empty.resolve(e, Some("11"), &Metrics::disabled()).await;
        assert_eq!(pinned.client.as_deref(), Some("11"));
        let e = ev(json!({"event_type": "EMAIL_OPEN", "client_id": 11}));
        let out = empty.resolve(e, None, &Metrics::disabled()).await;
        assert_eq!(out.client.as_deref(), Some("11"));
        assert_eq!(
            out.normalized().client_id.map(|c| c.to_string()).as_deref(),
            Some("11")
        );
    }

    #[tokio::test]
    async fn the_client_comes_from_the_payload_the_campaign_or_the_url() {
        let c = Clients::fixed(registry());
        let m = Metrics::disabled();
        let of = |e: SmartleadEvent| e.normalized().client_id.map(|c| c.to_string());
        let e = c
            .resolve(
                ev(json!({"event_type": "EMAIL_OPEN", "campaign_id": 7})),
                None,
                &m,
            )
            .await;
        assert_eq!(e.client.as_deref(), Some("12"));
        assert!(e.agency);
        assert_eq!(of(e).as_deref(), Some("12"), "the bus detail carries it");
        // At client 11's URL (its secret authenticated it), a campaign or
        // payload naming another client does not file it under that one.
        for body in [
            json!({"event_type": "EMAIL_OPEN", "campaign_id": 7}),
            json!({"event_type": "EMAIL_OPEN", "client_id": 12}),
        ] {
            let e = c.resolve(ev(body), Some("11"), &m).await;
            assert_eq!(e.client.as_deref(), Some("11"));
            assert_eq!(of(e).as_deref(), Some("11"), "on the bus too");
        }
        let e = c
            .resolve(
                ev(json!({"event_type": "EMAIL_OPEN", "campaign_id": 8})),
                Some("11"),
                &m,
            )
            .await;
        assert_eq!(e.client.as_deref(), Some("11"));
        let e = c
            .resolve(
                ev(json!({"event_type": "EMAIL_OPEN", "client_id": 13})),
                None,
                &m,
            )
            .await;
        assert_eq!(
            e.client.as_deref(),
            Some("13"),
            "kept, and counted as unknown"
        );
    }

    #[tokio::test]
    async fn a_client_s_own_alert_events_replace_the_deployment_s() {
        let c = Clients::fixed(registry());
        let base = AlertRules::default();
        let m = Metrics::disabled();
        let bounce = c
            .resolve(
                ev(json!({"event_type": "EMAIL_BOUNCE", "client_id": 11})),
                None,
                &m,
            )
            .await;
        assert!(c.alert_rules(&bounce, &base).is_hot(&bounce));
        assert!(!base.is_hot(&bounce));
        let reply = c
            .resolve(
                ev(json!({"event_type": "EMAIL_REPLY", "client_id": 11})),
                None,
                &m,
            )
            .await;
        assert!(!c.alert_rules(&reply, &base).is_hot(&reply));
        let other = c
            .resolve(
                ev(json!({"event_type": "EMAIL_REPLY", "client_id": 12})),
                None,
                &m,
            )
            .await;
        assert!(c.alert_rules(&other, &base).is_hot(&other));
    }
}
