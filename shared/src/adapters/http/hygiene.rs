//! List hygiene through SmartLead's API: unsubscribe or block the lead of a
//! bounce or unsubscribe (the rules are [`crate::app::effects::bounce_kind`]).

use crate::app::effects::{
    bounce_kind, AlertRules, BounceKind, EffectError, HygieneMode, Notifier, HYGIENE,
};
use crate::domain::event::{EventType, SmartleadEvent};
use async_trait::async_trait;
use std::time::Instant;

/// List hygiene through SmartLead's API, off by default.
pub struct Hygiene {
    pub api: crate::adapters::http::smartlead::Api,
    pub mode: HygieneMode,
    /// Act on soft (temporary, 4.x.x) bounces too (`HYGIENE_SOFT_BOUNCES`).
    pub soft_bounces: bool,
}

#[async_trait]
impl Notifier for Hygiene {
    fn effect(&self) -> &'static str {
        HYGIENE
    }
    /// Bounces and unsubscribes; a soft bounce only with `soft_bounces`.
    /// Not an unsubscribe that SmartLead scoped to some of an agency's
    /// clients: both modes act account-wide, and the lead stays sendable
    /// for the others (the scope is kept on its `SUPPRESSION` item).
    fn applies(&self, ev: &SmartleadEvent, _rules: &AlertRules) -> bool {
        match ev.event_type {
            EventType::LeadUnsubscribed => crate::domain::client::unsubscribe_scope(ev).is_none(),
            EventType::EmailBounce => self.soft_bounces || bounce_kind(ev) != BounceKind::Soft,
            _ => false,
        }
    }
    async fn notify(
        &self,
        ev: &SmartleadEvent,
        _key: &str,
        deadline: Instant,
    ) -> Result<(), EffectError> {
        // Throttled (by SmartLead or the key's budget): retried after the wait.
        let api_error = |e: crate::adapters::http::smartlead::ApiError| match e.retry_after() {
            Some(after) => EffectError::later(after, e.to_string()),
            None if e.is_retryable() => EffectError::Transient(e.into()),
            None => EffectError::Permanent(e.into()),
        };
        let n = ev.normalized();
        let r = match self.mode {
            HygieneMode::Unsubscribe => {
                let id = match (&n.lead_id, &n.lead_email) {
                    (Some(id), _) => id.to_string(),
                    // Bounces and unsubscribes carry no lead id: ask SmartLead.
                    (None, Some(email)) => {
                        match self
                            .api
                            .lead_by_email(email, deadline)
                            .await
                            .map_err(api_error)?
                        {
                            Some(id) => id,
                            None => {
                                return Err(EffectError::Permanent(
                                    "SmartLead has no lead with this address".into(),
                                ))
                            }
                        }
                    }
                    (None, None) => {
                        return Err(EffectError::Permanent(
                            "no lead id or e-mail to unsubscribe".into(),
                        ))
                    }
                };
                self.api.unsubscribe_lead(&id, deadline).await
            }
            HygieneMode::Block => match &n.lead_email {
                Some(email) => self.api.block(std::slice::from_ref(email), deadline).await,
                None => return Err(EffectError::Permanent("no e-mail to block".into())),
            },
        };
        r.map(|_| ()).map_err(api_error)
    }
}
