//! What every event function of a plan needs: the event, its normalized
//! view, its time and the keys of the items it may touch.

use super::bounds::key_part;
use super::{ItemUpdate, ScoreWeights, Val};
use crate::domain::event::{Normalized, SmartleadEvent};
use crate::domain::key::DedupKey;
use crate::domain::time::EventTime;

pub(super) struct Ctx<'a> {
    pub ev: &'a SmartleadEvent,
    pub n: &'a Normalized,
    pub weights: &'a ScoreWeights,
    /// The event's time (believed or clamped), ISO 8601.
    pub time: String,
    /// The same, in epoch seconds.
    pub seconds: i64,
    /// Sort key of items that keep the event whole: `<time>#<key>`.
    pub sk: String,
    /// The campaign id as a key part (`-` when the event names none).
    pub campaign: String,
    /// `LEAD#<email>`, else `LEAD#id:<lead id>`; none when it names no lead.
    pub lead_pk: Option<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        ev: &'a SmartleadEvent,
        n: &'a Normalized,
        key: &DedupKey,
        event_time: EventTime,
        weights: &'a ScoreWeights,
    ) -> Ctx<'a> {
        let time = event_time.to_string();
        let campaign = n
            .campaign_id
            .as_ref()
            .map(|c| key_part(c.as_str()).into_owned())
            .unwrap_or_else(|| "-".into());
        let lead_pk = n
            .lead_email
            .as_ref()
            .map(|e| format!("LEAD#{}", key_part(e)))
            .or_else(|| {
                n.lead_id
                    .as_ref()
                    .map(|i| format!("LEAD#id:{}", key_part(i.as_str())))
            });
        Ctx {
            ev,
            n,
            weights,
            sk: format!("{time}#{key}"),
            time,
            seconds: event_time.seconds(),
            campaign,
            lead_pk,
        }
    }

    /// `s` stamped with the event's time, as capped sets keep texts
    /// (`<epoch seconds> <s>`: see [`super::keep_greatest`]).
    pub fn stamped(&self, s: &str) -> String {
        format!("{} {s}", self.seconds)
    }

    /// The event's time as a value.
    pub fn t(&self) -> Option<Val> {
        Some(Val::S(self.time.clone()))
    }

    /// The lead's item for this campaign, written by most events. The
    /// address and the campaign id are kept in it only when its key cannot
    /// say them (cut and hashed for length); SmartLead's ids of the lead,
    /// the lead in the campaign and the thread, and the conversation's
    /// `app_url`, by the first event that carries them.
    pub fn lead_campaign(&self, pk: &str) -> ItemUpdate {
        let n = self.n;
        let hashed = |v: Option<String>| v.filter(|v| key_part(v) != v.as_str());
        ItemUpdate::new(pk.to_owned(), format!("CAMPAIGN#{}", self.campaign))
            .once(
                "campaign_id",
                hashed(n.campaign_id.as_ref().map(|c| c.to_string())),
            )
            .once("campaign_name", n.campaign_name.clone())
            .once("lead_email", hashed(n.lead_email.clone()))
            // What acting in SmartLead needs: its ids and the conversation.
            .once("app_url", n.app_url.clone())
            .once("sl_email_lead_id", id(&n.sl_email_lead_id))
            .once("sl_email_lead_map_id", id(&n.sl_email_lead_map_id))
            .once("stats_thread_id", id(&n.stats_thread_id))
            // An agency's deployment: the lead's client here (see
            // `crate::domain::client`); nothing without clients.
            .once("client_id", self.ev.client.clone())
        // No lead name here: events spell it differently ("Jane" vs "Jane Doe"),
        // and a first-writer-wins field would depend on arrival order.
    }

    /// The lead's suppression: sticky, the earliest reason wins. Its scope
    /// (see [`crate::domain::client::Scope`]): the reason's flag makes it
    /// every client's; an unsubscribe that SmartLead scoped to some
    /// clients (`scoped`) flags `client_unsubscribe` and adds them to
    /// `clients` instead.
    pub fn suppression(
        &self,
        pk: &str,
        reason: &str,
        scoped: Option<std::collections::BTreeSet<String>>,
    ) -> ItemUpdate {
        let u = ItemUpdate::new(pk.to_owned(), "SUPPRESSION".into())
            .once("lead_email", self.n.lead_email.clone());
        let u = match scoped {
            Some(clients) => u
                .flag(CLIENT_UNSUBSCRIBE)
                .add_set("clients", clients.into_iter().collect()),
            None => u.flag(reason),
        };
        u.earliest(
            "suppressed_order",
            vec![
                ("suppressed_at", self.t()),
                ("reason", Some(Val::S(reason.into()))),
                ("campaign_id", Some(Val::S(self.campaign.clone()))),
            ],
        )
    }
}

/// The flag of an unsubscribe that applies to some clients only.
pub const CLIENT_UNSUBSCRIBE: &str = "client_unsubscribe";

fn id(i: &Option<crate::domain::field_types::Id>) -> Option<String> {
    i.as_ref().map(|i| i.to_string())
}

/// `u` with the lead score moved by `w` (nothing when `w` is 0).
pub(super) fn score(mut u: ItemUpdate, w: f64) -> ItemUpdate {
    if w != 0.0 {
        u.add.push(("score", Val::N(w)));
    }
    u
}
